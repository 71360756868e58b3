"""Distinguished names and the strings that become Common Names.

The OpenSSL walk-throughs ask for a subject interactively, where a typo silently ends up in
a ten-year CA certificate. Here a subject is one string, ``C=CN,ST=ZJ,L=HZ,O=...,CN=...``,
and anything we do not recognise is refused before a key is generated.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.x509.oid import NameOID

from acmeali.errors import UsageError

# Short names people type (OpenSSL's spelling) -> OID. emailAddress is in the seed's config.
_ATTRIBUTES: dict[str, x509.ObjectIdentifier] = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
}
_SPELLING = "C, ST, L, O, OU, CN, emailAddress"

# X.520 upper bounds (RFC 5280 appendix A): longer values make certificates other
# stacks refuse to parse.
_MAX_LEN = {NameOID.COUNTRY_NAME: 2, NameOID.COMMON_NAME: 64, NameOID.EMAIL_ADDRESS: 255}
_DEFAULT_MAX = 128

# A device id becomes the CN and, with mosquitto's use_identity_as_username or Alibaba's
# device registry, an identity; it also names the output files, so it stays filename-safe.
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def _split(text: str) -> list[str]:
    """Split on commas that are not escaped with a backslash; unescape ``\\,``."""
    parts: list[str] = []
    cur: list[str] = []
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            cur.append(nxt)
        elif ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_subject(text: str, *, option: str = "--subject") -> x509.Name:
    """``"C=CN,ST=ZJ,O=ALI,CN=x"`` (also ``/C=CN/O=ALI`` as ``openssl -subj`` writes it)."""
    raw = text.strip()
    if not raw:
        raise UsageError(f"{option}: empty subject; write e.g. \"C=CN,O=Example,CN=Example CA\"")
    if raw.startswith("/"):
        raw = ",".join(p.replace(",", "\\,") for p in raw[1:].split("/"))
    attrs: list[x509.NameAttribute[str]] = []
    for part in _split(raw):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise UsageError(f"{option}: {part.strip()!r} is not KEY=VALUE; "
                             f"write e.g. \"C=CN,O=Example,CN=Example CA\"")
        oid = _ATTRIBUTES.get(key.upper())
        if oid is None:
            raise UsageError(f"{option}: unknown attribute {key!r}; use {_SPELLING}")
        if not value:
            raise UsageError(f"{option}: {key} has an empty value")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise UsageError(f"{option}: {key} contains control characters")
        limit = _MAX_LEN.get(oid, _DEFAULT_MAX)
        if oid == NameOID.COUNTRY_NAME:
            if not (len(value) == 2 and value.isascii() and value.isalpha()):
                raise UsageError(f"{option}: C={value!r} must be a two-letter country code "
                                 "such as CN")
            value = value.upper()
        elif len(value) > limit:
            raise UsageError(f"{option}: {key} is {len(value)} characters; at most {limit}")
        attrs.append(x509.NameAttribute(oid, value))
    return x509.Name(attrs)


def common_name(name: x509.Name) -> str | None:
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else None


def check_registration_code(code: str) -> str:
    """The code from GetRegisterCode becomes the CN verbatim, so it must fit one."""
    value = code.strip()
    if not value:
        raise UsageError("--code: the registration code is empty; copy it from the console "
                         "(CA certificate > Register Certificate) or let "
                         "`acmeali mqtt register-ca` fetch it")
    if len(value) > 64 or any(c.isspace() or ord(c) < 32 for c in value):
        raise UsageError(f"--code {value[:80]!r}: a registration code is at most 64 characters "
                         "without spaces")
    return value


def check_device_id(device_id: str) -> str:
    if not _DEVICE_ID.match(device_id):
        raise UsageError(f"--device-id {device_id[:80]!r}: a device id becomes the certificate's "
                         "CN and its file names: 1-64 letters, digits, '.', '_', '@' or '-', "
                         "starting with a letter or digit")
    return device_id
