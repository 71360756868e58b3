"""OSS: bucket custom domains (CNAMEs) and their certificates, behind OSS's own signature.

OSS is neither RPC nor ROA: requests are signed with ``OSS4-HMAC-SHA256`` (signature V4),
address a bucket (path-style on an IP endpoint such as this emulator), carry XML and
answer XML. server.py hands every request whose ``Authorization`` starts with ``OSS`` to
:func:`serve` before its own pipeline.

Sources: the OSS "Signature V4" documentation and what alibabacloud_oss_v2 1.4.1 sends
(signer/v4.py: canonical request = method, URI ``/<bucket>/<key>``, sorted query with bare
keys for empty values, the ``x-oss-*``/content-type/content-md5 headers, additional headers,
``x-oss-content-sha256``; scope ``<date>/<region>/oss/aliyun_v4_request``; signing key
HMAC chain from ``"aliyun_v4" + secret``); operations/bucket_cname.py (PutCname: POST
``?cname&comp=add`` with Content-MD5 and a BucketCnameConfiguration body; ListCname: GET
``?cname``); models/bucket_cname.py (element names); the PutCname API reference
(``PreviousCertId`` / ``Force`` rules, error ``AccessDenied`` 403 for RAM) and the OSS
error page 0018-00000209 (PreviousCertId mismatch).

State ``state.extra["oss"]``: "buckets": name -> {"Region", "Cnames": {domain:
{"Domain", "Status", "LastModified", "Certificate": {...} | None, "Settings": {...}}}}.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import uuid
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote, unquote

from .casref import by_identifier, st
from .products import CAS_USER_SOURCES
from .signature import MAX_CLOCK_SKEW
from .state import ApiError, Backend

OSS = "oss"
ALGORITHM = "OSS4-HMAC-SHA256"


def _st(x: Any) -> dict[str, Any]:
    return st(x, OSS, buckets=dict)


def add_cname(emu: Any, bucket: str, domain: str, *, region: str = "cn-hangzhou",
              certificate: str | None = None) -> dict[str, Any]:
    """A verified custom domain of ``bucket`` (with a certificate identifier or none)."""
    with emu.state.lock:
        b = _st(emu)["buckets"].setdefault(bucket, {"Region": region, "Cnames": {}})
        row = {"Domain": domain, "Status": "Enabled", "LastModified": "2026-01-02T03:04:05Z",
               "IsWildCard": "false",
               "Certificate": ({"Type": "CAS", "CertId": certificate, "Status": "Enabled"}
                               if certificate else None),
               # settings a CNAME has that acmeali never sends (console: CDN acceleration)
               "Settings": {"Acceleration": "Disabled", "Token": "tok-keep-me"}}
        b["Cnames"][domain] = row
        return row


# ------------------------------------------------------------------------------ wire
def _xml(root: str, children: list[Any]) -> bytes:
    el = ET.Element(root)
    for child in children:
        el.append(child)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(el)


def _el(tag: str, text: Any = None, *children: Any) -> ET.Element:
    e = ET.Element(tag)
    if text is not None:
        e.text = str(text)
    for c in children:
        if c is not None:
            e.append(c)
    return e


def _error(status: int, code: str, message: str, request_id: str) -> tuple[int, bytes]:
    # OSS error body: <Error><Code/><Message/><RequestId/><HostId/></Error>
    return status, _xml("Error", [_el("Code", code), _el("Message", message),
                                  _el("RequestId", request_id),
                                  _el("HostId", "oss-cn-hangzhou.aliyuncs.com")])


class _SigError(Exception):
    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _verify(emu: Any, method: str, raw_path: str, raw_query: str,
            headers: dict[str, list[str]], body: bytes) -> str:
    """Check the V4 signature; return the scope's region."""
    auth = headers["authorization"][0]
    fields: dict[str, str] = {}
    for part in auth[len(ALGORITHM):].strip().split(","):
        k, _, v = part.strip().partition("=")
        fields[k] = v
    cred, sig = fields.get("Credential", ""), fields.get("Signature", "")
    try:
        ak, date, region, product, terminator = cred.split("/")
    except ValueError:
        raise _SigError("InvalidArgument", "Credential is malformed.", 400) from None
    if product != "oss" or terminator != "aliyun_v4_request":
        raise _SigError("InvalidArgument", "Credential scope is wrong.", 400)
    secret = emu._keys.get(ak)
    if secret is None:
        raise _SigError("InvalidAccessKeyId", "The OSS Access Key Id you provided does not "
                        "exist in our records.")
    stamp = (headers.get("x-oss-date") or [""])[0]
    try:
        when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise _SigError("AccessDenied", "x-oss-date is missing or malformed.") from None
    if abs(dt.datetime.now(dt.timezone.utc) - when) > MAX_CLOCK_SKEW or stamp[:8] != date:
        raise _SigError("RequestTimeTooSkewed", "The difference between the request time and "
                        "the current time is too large.")
    md5 = (headers.get("content-md5") or [""])[0]
    if body and md5 and base64.b64encode(hashlib.md5(body).digest()).decode() != md5:
        raise _SigError("InvalidDigest", "The Content-MD5 you specified is not valid.", 400)
    additional = [h for h in fields.get("AdditionalHeaders", "").split(";") if h]
    pairs = []
    for item in raw_query.split("&") if raw_query else []:
        k, _, v = item.partition("=")
        pairs.append(f"{k}={v}" if v else k)
    canon_headers = sorted(
        (k, v[0]) for k, v in headers.items()
        if k.startswith("x-oss-") or k in ("content-type", "content-md5") or k in additional)
    canonical = "\n".join([
        method, quote(unquote(raw_path), safe="/"), "&".join(sorted(pairs)),
        "".join(f"{k}:{v}\n" for k, v in canon_headers), ";".join(additional),
        (headers.get("x-oss-content-sha256") or ["UNSIGNED-PAYLOAD"])[0]])
    sts = "\n".join([ALGORITHM, stamp, f"{date}/{region}/oss/aliyun_v4_request",
                     hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("aliyun_v4" + secret).encode()
    for part in (date, region, "oss", "aliyun_v4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(hmac.new(key, sts.encode(), hashlib.sha256).hexdigest(), sig):
        raise _SigError("SignatureDoesNotMatch", "The request signature we calculated does "
                        f"not match the signature you provided. {sts!r}")
    return region


def serve(emu: Any, handler: Any, req: Any) -> bool:
    """Answer an OSS request (True), or leave it to the RPC/ROA pipeline (False)."""
    if not (req.headers.get("authorization") or [""])[0].startswith("OSS"):
        return False
    raw_query = handler.path.partition("?")[2]
    status, body = handle(emu, req, raw_query)
    handler.send_response(status)
    handler.send_header("Content-Type", "application/xml")
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("x-oss-request-id", uuid.uuid4().hex.upper()[:24])
    handler.end_headers()
    handler.wfile.write(body)
    return True


def handle(emu: Any, req: Any, raw_query: str) -> tuple[int, bytes]:
    request_id = uuid.uuid4().hex.upper()[:24]
    query = dict(req.query_pairs)
    action = ("PutCname" if req.method == "POST" and query.get("comp") == "add" else
              "ListCname" if req.method == "GET" and "cname" in query else "")
    entry: dict[str, Any] = {"action": action, "auth": ALGORITHM, "method": req.method,
                             "status": 200, "code": None}
    emu.log.append(entry)
    try:
        if not (req.headers["authorization"][0].startswith(ALGORITHM)):
            # assumption: only V4 is modelled (the SDK's default); V1 "OSS ak:sig" refused.
            raise _SigError("AccessDenied", "Only OSS4-HMAC-SHA256 is accepted here.")
        region = _verify(emu, req.method, req.path, raw_query, req.headers, req.body)
        bucket_name = req.path.strip("/").split("/")[0]
        with emu.state.lock:
            bucket = _st(emu)["buckets"].get(bucket_name)
        if bucket is None:
            raise ApiError(404, "NoSuchBucket", "The specified bucket does not exist.")
        if bucket["Region"] != region:
            # OSS: a request signed for another region is refused (the bucket lives in one).
            raise _SigError("SignatureDoesNotMatch", f"The bucket is in {bucket['Region']}, "
                            f"not {region}.")
        if not action:
            raise ApiError(400, "InvalidArgument", "Only PutCname and ListCname are modelled.")
        fault = emu.faults.take(action)
        if fault is not None:
            if fault.code == "Forbidden.RAM":  # OSS's answer to a missing RAM permission
                fault = ApiError(403, "AccessDenied", "You have no right to access this "
                                 f"object because of bucket acl or policy ({action}).")
            raise fault
        params = {"Bucket": bucket_name}
        if action == "PutCname":
            params.update(_parse_put(req.body))
        emu.calls.append((action, params))
        with emu.state.lock:
            if action == "ListCname":
                return 200, _list(bucket_name, bucket)
            _put(emu._backend, bucket, params)
            return 200, b""
    except _SigError as err:
        emu.errors.append((action, err.code))
        entry.update(status=err.status, code=err.code)
        return _error(err.status, err.code, err.message, request_id)
    except ApiError as err:
        emu.errors.append((action, err.code))
        entry.update(status=err.status, code=err.code)
        return _error(err.status, err.code, err.message, request_id)


def _parse_put(body: bytes) -> dict[str, str]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise ApiError(400, "MalformedXML", "The XML you provided was not well-formed.") from None
    cname = root.find("Cname")
    if root.tag != "BucketCnameConfiguration" or cname is None:
        raise ApiError(400, "MalformedXML", "BucketCnameConfiguration/Cname is required.")
    out = {"Domain": cname.findtext("Domain") or ""}
    conf = cname.find("CertificateConfiguration")
    if conf is not None:
        for tag in ("CertId", "PreviousCertId", "Force", "DeleteCertificate", "Certificate",
                    "PrivateKey"):
            if conf.find(tag) is not None:
                out[tag] = conf.findtext(tag) or ""
    return out


def _put(b: Backend, bucket: dict[str, Any], p: dict[str, str]) -> None:
    row = bucket["Cnames"].get(p["Domain"].lower())
    if row is None:
        # PutCname reference: the domain must be verified (CNAME token) first.
        # assumption: code.
        raise ApiError(400, "NeedVerifyDomainOwnership", "The domain is not verified for "
                       "this bucket.")
    if "CertId" not in p:
        return  # no certificate change requested
    current = (row.get("Certificate") or {}).get("CertId")
    force = p.get("Force", "").lower() == "true"
    if not force and "PreviousCertId" not in p:
        # PutCname reference, PreviousCertId: "If you do not specify the PreviousCertId
        # parameter when you bind a certificate, you must set the Force parameter to true"
        # (read strictly: also for a domain without a certificate). assumption: code.
        raise ApiError(400, "InvalidArgument", "Force must be true without PreviousCertId.")
    if not force and p.get("PreviousCertId") != current:
        # help.aliyun.com/zh/oss/user-guide/0018-00000209: a PreviousCertId that is not the
        # domain's current certificate is refused. assumption: code and status.
        raise ApiError(409, "CertificateConflict", "PreviousCertId does not match the "
                       "domain's current certificate (EC 0018-00000209).")
    by_identifier(b, p["CertId"], "OSS")
    row["Certificate"] = {"Type": "CAS", "CertId": p["CertId"], "Status": "Enabled"}


def _list(name: str, bucket: dict[str, Any]) -> bytes:
    items = []
    for row in bucket["Cnames"].values():
        cert = row.get("Certificate")
        items.append(_el("Cname", None, _el("Domain", row["Domain"]),
                         _el("LastModified", row["LastModified"]),
                         _el("Status", row["Status"]), _el("IsWildCard", row["IsWildCard"]),
                         _el("Certificate", None, *[_el(k, v) for k, v in cert.items()])
                         if cert else None))
    return _xml("ListCnameResult", [_el("Bucket", name), _el("Owner", "1234567890123456"),
                                    *items])


def _cas_users(b: Backend, cert_id: int) -> list[dict[str, Any]]:
    """CAS ListCertificates UsingProductList: OSS custom domains on the certificate."""
    ident = f"{cert_id}-{b.state.cas_region}"
    return [{"CloudProduct": "OSS", "Domain": d}
            for v in _st(b)["buckets"].values() for d, r in v["Cnames"].items()
            if (r.get("Certificate") or {}).get("CertId") == ident]


CAS_USER_SOURCES.append(_cas_users)
