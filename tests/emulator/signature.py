"""Server-side verification of Alibaba Cloud request signatures.

Two schemes, both re-derived from what the installed SDKs send (alibabacloud_tea_openapi
0.4.6 ``Utils.get_authorization`` / ``Utils.get_rpcsignature``), not from the SDK code
itself: the emulator recomputes everything from the bytes on the wire, so a client that
builds its request differently from the SDK fails here exactly as it would at Alibaba.

* V3, ``ACS3-HMAC-SHA256`` (the SDK default): ``Authorization`` header, signed headers,
  hashed payload in ``x-acs-content-sha256``.
* Legacy RPC v1 signature, ``HMAC-SHA1`` (``Config(signature_algorithm='v2')`` in the SDK,
  and every hand-written client of the last decade): ``Signature`` etc. in the query.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

V3_ALGORITHM = "ACS3-HMAC-SHA256"

#: Query parameters that belong to the legacy RPC signature envelope, not to the action.
RPC_COMMON_PARAMS = frozenset({
    "Action", "Version", "Format", "Timestamp", "SignatureNonce", "SignatureMethod",
    "SignatureVersion", "SignatureType", "AccessKeyId", "Signature", "SecurityToken",
})

#: How far a client clock may be off. Guess at the real value: Alibaba documents 15 minutes
#: for the legacy ``Timestamp``; we apply the same window to ``x-acs-date``.
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)


class SignatureError(Exception):
    """A request failed authentication; carries Alibaba's error code and HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def pct(value: str) -> str:
    """RFC 3986 percent-encoding: unreserved ``A-Za-z0-9-_.~`` kept, uppercase hex."""
    return quote(value, safe="~", encoding="utf-8")


def canonical_query(pairs: Sequence[tuple[str, str]]) -> str:
    """``pct(k)=pct(v)`` pairs sorted and joined by ``&`` (V3 canonical query string)."""
    encoded = sorted((pct(k), pct(v)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class V3Authorization:
    algorithm: str
    access_key_id: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_v3_authorization(value: str) -> V3Authorization:
    """Split ``ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..``."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != V3_ALGORITHM:
        raise SignatureError(400, "IncompleteSignature",
                             f"The signature algorithm {algorithm!r} is not supported; "
                             f"expected {V3_ALGORITHM}.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        raise SignatureError(400, "IncompleteSignature",
                             f"The Authorization header lacks {', '.join(missing)}.")
    signed = tuple(fields["SignedHeaders"].split(";"))
    return V3Authorization(algorithm, fields["Credential"], signed, fields["Signature"])


def v3_string_to_sign(method: str, path: str, query_pairs: Sequence[tuple[str, str]],
                      headers: Mapping[str, Sequence[str]], signed_headers: Sequence[str],
                      hashed_payload: str) -> str:
    """The V3 string to sign, built from the request as received.

    ``headers`` maps lowercase names to every value received under that name; repeated
    headers are joined by ``,`` after sorting, as the SDK does.
    """
    canon_headers = "".join(
        f"{name}:{','.join(sorted(v.strip() for v in headers.get(name, ())))}\n"
        for name in signed_headers)
    canonical_request = "\n".join([
        method.upper(), path or "/", canonical_query(query_pairs), canon_headers,
        ";".join(signed_headers), hashed_payload])
    return f"{V3_ALGORITHM}\n{sha256_hex(canonical_request.encode())}"


def v3_signature(secret: str, string_to_sign: str) -> str:
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def rpc_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """Legacy RPC: ``METHOD&%2F&pct(canonical query)`` over every parameter but Signature."""
    canon = "&".join(f"{pct(k)}={pct(v)}" for k, v in sorted(params.items())
                     if k != "Signature")
    return f"{method.upper()}&{pct('/')}&{pct(canon)}"


def rpc_signature(secret: str, string_to_sign: str) -> str:
    digest = hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def check_clock(value: str, fmt: str = "%Y-%m-%dT%H:%M:%SZ",
                now: dt.datetime | None = None) -> None:
    """Refuse timestamps that are malformed or too far from our clock."""
    try:
        when = dt.datetime.strptime(value, fmt).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise SignatureError(400, "InvalidTimeStamp.Format",
                             f"Specified time stamp or date value {value!r} is not "
                             "well formatted.") from None
    now = now or dt.datetime.now(dt.timezone.utc)
    if abs(now - when) > MAX_CLOCK_SKEW:
        raise SignatureError(400, "InvalidTimeStamp.Expired",
                             f"Specified time stamp or date value {value!r} is expired.")


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
