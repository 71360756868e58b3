"""Identifier names: validation and normalisation shared by the CLI, config and CSRs.

Stdlib only: config loading (a start-up path) validates names with it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


class InvalidName(ValueError):
    """A name that no CA would accept; the message names it and says what is wrong."""


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def normalize_name(raw: str) -> str:
    """Lower-case, punycode an internationalised name, drop a trailing dot; or canonical IP.

    Raises InvalidName for empty labels, labels over 63 or names over 253 octets,
    spaces, leading/trailing hyphens and wildcards anywhere but the whole leftmost label.
    """
    name = raw.strip()
    if not name:
        raise InvalidName("empty name; give a DNS name such as example.com")
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        pass
    if any(c.isspace() for c in name):
        raise InvalidName(f"{raw!r} contains white space")
    if name.endswith("."):
        name = name[:-1]
    labels = name.split(".")
    out: list[str] = []
    for i, label in enumerate(labels):
        if label == "":
            raise InvalidName(f"{raw!r} has an empty label")
        if "*" in label:
            if label != "*" or i != 0:
                raise InvalidName(
                    f"{raw!r}: a wildcard must be the whole leftmost label (*.example.com)")
            if len(labels) < 3:
                raise InvalidName(f"{raw!r}: a wildcard needs at least two labels after it")
            out.append("*")
            continue
        try:
            ascii_label = label.encode("idna").decode("ascii") if not label.isascii() else label
        except UnicodeError:
            raise InvalidName(f"{raw!r}: label {label!r} cannot be encoded as IDNA") from None
        ascii_label = ascii_label.lower()
        if len(ascii_label) > 63:
            raise InvalidName(f"{raw!r}: label {label!r} is longer than 63 characters")
        if ascii_label.startswith("-") or ascii_label.endswith("-"):
            raise InvalidName(f"{raw!r}: label {label!r} starts or ends with a hyphen")
        if not _LABEL.match(ascii_label):
            raise InvalidName(f"{raw!r}: label {label!r} has characters other than "
                              "letters, digits and hyphens")
        out.append(ascii_label)
    result = ".".join(out)
    if len(result) > 253:
        raise InvalidName(f"{raw!r} is longer than 253 characters")
    if out[-1].isdigit():
        # Not an IP address (checked above), yet numeric at the top: no such TLD can
        # exist (RFC 3696 §2), and CAs refuse it after an order was already placed.
        raise InvalidName(f"{raw!r}: the last label {out[-1]!r} is all digits; give a DNS "
                          "name (example.com) or a complete IP address")
    if len(out) < 2 and result != "localhost":
        raise InvalidName(f"{raw!r} is not a fully qualified name (expected e.g. example.com)")
    return result


def normalize_names(raws: Iterable[str]) -> tuple[list[str], list[str]]:
    """Normalise and de-duplicate, keeping order; returns (names, notices about dropped dups)."""
    names: list[str] = []
    notices: list[str] = []
    for raw in raws:
        name = normalize_name(raw)
        if name in names:
            notices.append(f"{raw!r} is listed more than once; using it once")
            continue
        names.append(name)
    if not names:
        raise InvalidName("no names given; use -d NAME at least once")
    return names, notices


def covers(pattern: str, name: str) -> bool:
    """Whether certificate name ``pattern`` (maybe ``*.x``) covers ``name`` (one label deep)."""
    if pattern == name:
        return True
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and head != "*" and rest == pattern[2:]
    return False
