"""One check per kind of value, shared by the CLI, the config file and the store.

Each check raises :class:`InvalidValue` (a ValueError) whose message names the value and
says what is expected; callers add where it came from (``--days``, ``renewal.jitter``,
``lineage 'x'``) by wrapping it in their own error (UsageError, ConfigError, StoreError),
so the same value is judged the same way wherever it enters.

Stdlib only: config loading and ``renew`` with nothing due use it.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

MAX_INPUT_BYTES = 1 << 20
"""Largest config file, key, CSR, certificate or passphrase file read (1 MiB: real ones
are a few KiB; a bigger one is a mistake, such as /dev/zero, and must not eat memory)."""

MAX_CA_BUNDLE_BYTES = 8 << 20  # a system trust store is ~250 KiB; leave room

MAX_LINEAGE_NAME = 200
_WILDCARD = "wildcard_"  # the store's on-disk spelling of "*" (store.files.safe_name)


class InvalidValue(ValueError):
    """A value no part of acmeali accepts; ``str()`` says what is wrong and what to give."""


# --------------------------------------------------------------------------- numbers
def number(value: float, *, lo: float, hi: float, what: str = "value") -> float:
    """A finite number in ``[lo, hi]``: NaN and infinities are refused, not compared
    (``nan < 0`` is False, so a plain range check lets them through to hang a sleep)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValue(f"{what}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise InvalidValue(f"{what}: expected a number from {lo:g} to {hi:g}, got {value}")
    return float(value)


def integer(value: int, *, lo: int, hi: int, what: str = "value") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(f"{what}: expected an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise InvalidValue(f"{what}: expected an integer from {lo} to {hi}, got {value}")
    return value


# The ranges, in one place (config keys and flags of the same meaning share them).
# Days before expiry: more than any lifetime means "always due" (tests and cron jobs use
# 100000); the bound keeps timedelta arithmetic from overflowing.
DAYS = (0.0, 100000.0)
JITTER = (0.0, 86400.0)
TIMEOUT = (1.0, 86400.0)
RUN_TIMEOUT = (0.0, 604800.0)  # a whole renew run; 0 = no limit


# --------------------------------------------------------------------------- names
def lineage_name(name: str) -> str:
    """A lineage name the state directory can hold, as the store will spell it on disk.

    One path component (no ``/``, ``\\``, leading ``.``), printable (no control
    characters: they end up in file names, logs and hook environments), at most 200
    characters also after ``*`` becomes ``wildcard_`` (the store's file names add a
    suffix and must stay under the 255-byte limit), and not containing ``wildcard_``
    itself (the store could not map it back).
    """
    if not isinstance(name, str) or not name:
        raise InvalidValue("empty lineage name; give a name such as example.com")
    if name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise InvalidValue(f"{name!r} is not usable as a lineage name (no '/', no '\\', "
                           "no leading '.')")
    if not name.isprintable():
        raise InvalidValue(f"{name!r} is not usable as a lineage name (control characters)")
    if _WILDCARD in name:
        raise InvalidValue(f"{name!r} is not usable as a lineage name ('{_WILDCARD}' is "
                           "reserved for '*')")
    if len(name) > MAX_LINEAGE_NAME or len(
            name.replace("*", _WILDCARD).encode("utf-8", "surrogatepass")) > MAX_LINEAGE_NAME:
        raise InvalidValue(f"lineage name {name[:40]!r}... is longer than "
                           f"{MAX_LINEAGE_NAME} characters")
    return name


def target_domain(raw: str) -> str:
    """A deploy target's domain (``cdn:<domain>``, ``apigateway:<g>:<domain>``, ...), checked
    as a DNS name like every name acmeali takes. Alibaba Cloud's leading-dot spelling of a
    wildcard (``.example.com``) is kept as given."""
    from acmeali.names import InvalidName, normalize_name

    try:
        if raw.startswith(".") and not raw.startswith(".."):
            return normalize_name("*" + raw)[1:]
        return normalize_name(raw)
    except InvalidName as exc:
        raise InvalidValue(str(exc)) from None


# --------------------------------------------------------------------------- input files
def read_input_file(path: str | os.PathLike[str], what: str, *,
                    limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; InvalidValue otherwise.

    Opened non-blocking, so a FIFO with no writer cannot hang the open; then refused,
    like a device (``/dev/zero`` would never end) or a directory, before anything is read.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(Path(path), flags)
    except FileNotFoundError:
        raise InvalidValue(f"{what}: no such file") from None
    except OSError as exc:
        raise InvalidValue(f"{what}: cannot open it ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InvalidValue(f"{what}: is a directory, not a file")
        if stat.S_ISCHR(st.st_mode) and _is_devnull(st):
            return b""  # `--config /dev/null`: the usual way to say "no file", kept working
        if not stat.S_ISREG(st.st_mode):
            raise InvalidValue(f"{what}: not a regular file (a device, FIFO or socket); "
                               "give the path of a file")
        if st.st_size > limit:
            raise InvalidValue(f"{what}: {st.st_size} bytes, more than the {limit}-byte "
                               "limit; is it the right file?")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise InvalidValue(f"{what}: more than the {limit}-byte limit; is it the right "
                               "file?")
        return b"".join(chunks)
    except OSError as exc:
        raise InvalidValue(f"{what}: cannot read it ({exc.strerror})") from None
    finally:
        os.close(fd)


def _is_devnull(st: os.stat_result) -> bool:
    try:
        null = os.stat(os.devnull)
    except OSError:
        return False
    return (st.st_rdev, st.st_dev, st.st_ino) == (null.st_rdev, null.st_dev, null.st_ino)
