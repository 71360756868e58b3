"""The emulated actions of CAS, CDN, DCDN, API Gateway and Alidns (MQTT is in mqtt.py).

Each handler takes the backend and the action's parameters (strings, as on the wire) and
returns the response body without ``RequestId``; it raises :class:`ApiError` for business
errors. Response fields follow the SDK response models of the installed versions, because
acmeali reads them through those models: a field we misspell is a field acmeali sees as
``None``. Error codes marked GUESS are plausible but not confirmed against the real service.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .state import (
    ApiError,
    Backend,
    common_name,
    dns_sans,
    fingerprints,
    key_algorithm,
    key_matches,
    load_chain,
    load_key,
    now_utc,
    org_name,
    serial_hex,
    to_ms,
    validity,
)

Params = dict[str, str]
Handler = Callable[[Backend, Params], dict[str, Any]]

CAS, CDN, DCDN, APIGW, ALIDNS, MQTT = "cas", "cdn", "dcdn", "apigateway", "alidns", "mqtt"

#: API version -> product; the emulator routes on ``x-acs-version`` (or ``Version``).
VERSIONS: dict[str, str] = {
    "2020-04-07": CAS, "2018-05-10": CDN, "2018-01-15": DCDN, "2016-07-14": APIGW,
    "2015-01-09": ALIDNS, "2020-04-20": MQTT,
}
#: Real host names, used as ``HostId`` in error bodies.
HOSTS: dict[str, str] = {
    CAS: "cas.aliyuncs.com", CDN: "cdn.aliyuncs.com", DCDN: "dcdn.aliyuncs.com",
    APIGW: "apigateway.cn-hangzhou.aliyuncs.com", ALIDNS: "alidns.aliyuncs.com",
    MQTT: "onsmqtt.cn-hangzhou.aliyuncs.com",
}


@dataclass(frozen=True)
class ActionSpec:
    product: str
    name: str
    required: tuple[str, ...]
    handler: Handler


ACTIONS: dict[tuple[str, str], ActionSpec] = {}


def action(product: str, name: str, *required: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``(product, name)`` with its required parameters."""
    def register(fn: Handler) -> Handler:
        ACTIONS[(product, name)] = ActionSpec(product, name, required, fn)
        return fn
    return register


# ----------------------------------------------------------------------- helpers
def int_param(p: Params, name: str, default: int, *, low: int = 1,
              high: int | None = None) -> int:
    raw = p.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"Invalid{name}", f"The specified {name} {raw!r} is not an "
                       "integer.") from None
    if value < low or (high is not None and value > high):
        raise ApiError(400, f"Invalid{name}",
                       f"The specified {name} {value} is out of range [{low}, {high}].")
    return value


def bool_param(p: Params, name: str, default: bool = False) -> bool:
    """The SDK sends Python booleans as ``True``/``False``; accept any case."""
    raw = p.get(name)
    return default if raw is None else raw.strip().lower() == "true"


def page(items: list[Any], number: int, size: int) -> list[Any]:
    return items[(number - 1) * size: number * size]


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_leaf_and_key(cert_pem: str, key_pem: str, what: str) -> Any:
    """Parse a PEM chain and key and check the key belongs to the leaf."""
    chain = load_chain(cert_pem, f"{what} certificate")
    key = load_key(key_pem, f"{what} private key")
    if not key_matches(chain[0], key):
        # GUESS: code; the real services refuse a mismatched pair, wording unknown.
        raise ApiError(400, "CertificateKeyMismatch",
                       "The private key does not match the certificate.")
    return chain


# =============================================================================== CAS
CERT_WILL_EXPIRE = dt.timedelta(days=30)


def cas_status(cert: dict[str, Any]) -> str:
    end = dt.datetime.fromtimestamp(cert["NotAfter"] / 1000, dt.timezone.utc)
    now = now_utc()
    if end < now:
        return "EXPIRED"
    if end - now < CERT_WILL_EXPIRE:
        return "WILLEXPIRED"
    return "ISSUED"


def cas_get(backend: Backend, raw_id: str) -> dict[str, Any]:
    try:
        cert_id = int(raw_id)
    except ValueError:
        cert_id = -1
    cert = backend.state.cas_certs.get(cert_id)
    if cert is None:
        # GUESS: code and status.
        raise ApiError(404, "CertificateNotFound",
                       f"The certificate {raw_id} does not exist.")
    return cert


@action(CAS, "UploadUserCertificate", "Name", "Cert", "Key")
def upload_user_certificate(b: Backend, p: Params) -> dict[str, Any]:
    """Store an uploaded certificate; names are unique per account, at most 63 chars.

    GUESS: uploading the same certificate twice under two names is allowed here (we
    found no statement either way); the duplicate *name* is refused as documented.
    """
    name = p["Name"]
    if len(name) > 63:
        raise ApiError(400, "InvalidName", "The certificate name cannot exceed 63 "
                       "characters.")  # GUESS: code
    chain = parse_leaf_and_key(p["Cert"], p["Key"], "uploaded")
    leaf = chain[0]
    st = b.state
    if any(c["Name"] == name for c in st.cas_certs.values()):
        # GUESS: code "NameRepeat"; the message is the documented one.
        raise ApiError(400, "NameRepeat", "The certificate name already exists.")
    cert_id = st.next_cert_id()
    sha1, sha2 = fingerprints(leaf)
    start, end = validity(leaf)
    sans = dns_sans(leaf)
    st.cas_certs[cert_id] = {
        "Id": cert_id, "Name": name, "Cert": p["Cert"], "Key": p["Key"],
        "Fingerprint": sha1, "Sha2": sha2, "SerialNo": serial_hex(leaf),
        "Common": common_name(leaf.subject) or (sans[0] if sans else ""),
        "Sans": ",".join(sans), "Issuer": org_name(leaf.issuer) or common_name(leaf.issuer),
        "Algorithm": key_algorithm(leaf), "NotBefore": to_ms(start), "NotAfter": to_ms(end),
        "StartDate": start.strftime("%Y-%m-%d"), "EndDate": end.strftime("%Y-%m-%d"),
        "InstanceId": f"cas-upload-{uuid.uuid4().hex[:8]}",
        "CertIdentifier": f"{cert_id}-{st.cas_region}", "Region": st.cas_region,
    }
    return {"CertId": cert_id, "ResourceId": st.cas_certs[cert_id]["InstanceId"]}


@action(CAS, "ListUserCertificateOrder")
def list_user_certificate_order(b: Backend, p: Params) -> dict[str, Any]:
    """Uploads are listed only for OrderType CERT or UPLOAD (default CPACK lists orders,
    of which the emulator has none). Without Status only valid certificates (ISSUED,
    WILLEXPIRED) are listed, as the API documents."""
    order_type = (p.get("OrderType") or "CPACK").upper()
    current = int_param(p, "CurrentPage", 1)
    size = int_param(p, "ShowSize", 50, high=1000)
    items: list[dict[str, Any]] = []
    if order_type in ("CERT", "UPLOAD"):
        keyword = (p.get("Keyword") or "").lower()
        status = p.get("Status")
        for cid in sorted(b.state.cas_certs):
            c = b.state.cas_certs[cid]
            st = cas_status(c)
            if status and st != status:
                continue
            if not status and st not in ("ISSUED", "WILLEXPIRED"):
                continue
            hay = " ".join([c["Common"], c["Sans"], c["Name"], c["InstanceId"], str(cid)])
            if keyword and keyword not in hay.lower():
                continue
            items.append({
                "CertificateId": cid, "Name": c["Name"], "CommonName": c["Common"],
                "Sans": c["Sans"], "SerialNo": c["SerialNo"], "Fingerprint": c["Fingerprint"],
                "Sha2": c["Sha2"], "Issuer": c["Issuer"], "Algorithm": c["Algorithm"],
                "StartDate": c["StartDate"], "EndDate": c["EndDate"],
                "CertStartTime": c["NotBefore"], "CertEndTime": c["NotAfter"],
                "Expired": st == "EXPIRED", "Status": st, "Upload": True,
                "InstanceId": c["InstanceId"], "SourceType": "upload",
                "ResourceGroupId": "rg-default",
            })
    return {"CertificateOrderList": page(items, current, size), "CurrentPage": current,
            "ShowSize": size, "TotalCount": len(items)}


@action(CAS, "GetUserCertificateDetail", "CertId")
def get_user_certificate_detail(b: Backend, p: Params) -> dict[str, Any]:
    c = cas_get(b, p["CertId"])
    st = cas_status(c)
    out: dict[str, Any] = {
        "Id": c["Id"], "Name": c["Name"], "Common": c["Common"], "Sans": c["Sans"],
        "SerialNo": c["SerialNo"], "Fingerprint": c["Fingerprint"], "Sha2": c["Sha2"],
        "CertSha2": c["Sha2"], "Issuer": c["Issuer"], "Algorithm": c["Algorithm"],
        "NotBefore": c["NotBefore"], "NotAfter": c["NotAfter"], "StartDate": c["StartDate"],
        "EndDate": c["EndDate"], "Expired": st == "EXPIRED", "BuyInAliyun": False,
        "CertIdentifier": c["CertIdentifier"], "InstanceId": c["InstanceId"],
        "ResourceGroupId": "rg-default", "Tags": [],
    }
    chain = load_chain(c["Cert"], "stored certificate")
    now = now_utc()
    out["CertChain"] = [{
        "CommonName": common_name(x.subject), "IssuerCommonName": common_name(x.issuer),
        "NotBefore": to_ms(x.not_valid_before_utc), "NotAfter": to_ms(x.not_valid_after_utc),
        "RemainDay": max(0, (x.not_valid_after_utc - now).days)} for x in chain]
    if not bool_param(p, "CertFilter"):
        out["Cert"], out["Key"] = c["Cert"], c["Key"]
    return out


@action(CAS, "DeleteUserCertificate", "CertId")
def delete_user_certificate(b: Backend, p: Params) -> dict[str, Any]:
    """Delete an upload. ASSUMPTION: like the console, CAS refuses to delete a certificate
    that a CDN or DCDN domain still serves (we believe the real API does the same; the
    exact code is a GUESS)."""
    c = cas_get(b, p["CertId"])
    users = [f"cdn:{d}" for d, v in b.state.cdn_domains.items() if v.get("CertId") == c["Id"]]
    users += [f"dcdn:{d}" for d, v in b.state.dcdn_domains.items()
              if v.get("CertId") == c["Id"]]
    if users:
        raise ApiError(400, "CertificateInUse",
                       f"The certificate is in use by cloud resources: {', '.join(users)}.")
    del b.state.cas_certs[c["Id"]]
    return {}


# ====================================================================== CDN / DCDN
def _cdn_domains(b: Backend, product: str) -> dict[str, dict[str, Any]]:
    return b.state.cdn_domains if product == CDN else b.state.dcdn_domains


def new_cdn_domain(b: Backend, name: str, product: str) -> dict[str, Any]:
    suffix = "w.kunlunsl.com" if product == CDN else "w.kunlungr.com"
    return {
        "DomainName": name, "DomainStatus": "online", "SslProtocol": "off",
        "CertType": None, "CertId": None, "CertName": None, "CertRegion": None,
        "SSLPub": None, "SSLPri": None, "CertUpdateTime": None,
        "GmtCreated": iso(now_utc()), "DomainId": b.state.next_domain_id(),
        "Cname": f"{name}.{suffix}",
    }


def _cdn_domain(b: Backend, product: str, name: str) -> dict[str, Any]:
    dom = _cdn_domains(b, product).get(name.lower())
    if dom is None:
        raise ApiError(404, "InvalidDomain.NotFound",
                       "The domain provided does not belong to you.")
    return dom


def _set_ssl(b: Backend, p: Params, product: str) -> dict[str, Any]:
    dom = _cdn_domain(b, product, p["DomainName"])
    proto = p["SSLProtocol"].lower()
    if proto not in ("on", "off"):
        raise ApiError(400, "InvalidSSLProtocol.ValueNotSupported",
                       "The specified value of parameter SSLProtocol is not supported.")
    if proto == "off":
        dom.update(SslProtocol="off", CertType=None, CertId=None, CertName=None,
                   CertRegion=None, SSLPub=None, SSLPri=None,
                   CertUpdateTime=iso(now_utc()))
        return {}
    cert_type = (p.get("CertType") or ("cas" if p.get("CertId") else "upload")).lower()
    if cert_type == "cas":
        if not p.get("CertId"):
            raise ApiError(400, "MissingCertId", "CertId is mandatory when CertType is cas.")
        region = p.get("CertRegion") or "cn-hangzhou"
        if region not in ("cn-hangzhou", "ap-southeast-1"):
            raise ApiError(400, "InvalidCertRegion.ValueNotSupported",
                           f"The specified CertRegion {region!r} is not supported.")
        try:
            cert = b.state.cas_certs.get(int(p["CertId"]))
        except ValueError:
            cert = None
        if cert is None or cert["Region"] != region:
            # GUESS: code. The CAS region is part of the lookup: a China-site certificate
            # is not found under ap-southeast-1.
            raise ApiError(400, "InvalidCertificate.NotFound",
                           f"The certificate {p['CertId']} does not exist in CAS region "
                           f"{region}.")
        dom.update(SslProtocol="on", CertType="cas", CertId=cert["Id"],
                   CertName=p.get("CertName") or cert["Name"], CertRegion=region,
                   SSLPub=cert["Cert"], SSLPri=None, CertUpdateTime=iso(now_utc()))
    elif cert_type == "upload":
        for name in ("SSLPub", "SSLPri"):
            if not p.get(name):
                raise ApiError(400, f"Missing{name}",
                               f"{name} is mandatory when CertType is upload.")
        parse_leaf_and_key(p["SSLPub"], p["SSLPri"], "SSLPub")
        # GUESS/simplification: the real CDN also files an upload in CAS; we do not.
        dom.update(SslProtocol="on", CertType="upload", CertId=None,
                   CertName=p.get("CertName") or dom["DomainName"], CertRegion=None,
                   SSLPub=p["SSLPub"], SSLPri=p["SSLPri"], CertUpdateTime=iso(now_utc()))
    else:
        raise ApiError(400, "InvalidCertType.ValueNotSupported",
                       f"The specified CertType {cert_type!r} is not supported.")
    return {}


def _cert_info(dom: dict[str, Any], product: str) -> dict[str, Any]:
    info: dict[str, Any] = {"DomainName": dom["DomainName"], "Status": "success"}
    if product == CDN:
        info["ServerCertificateStatus"] = dom["SslProtocol"]
        info["DomainCnameStatus"] = "online"
    else:
        info["SSLProtocol"] = dom["SslProtocol"]
    if dom["SslProtocol"] == "on" and dom["SSLPub"]:
        leaf = load_chain(dom["SSLPub"], "bound certificate")[0]
        start, end = validity(leaf)
        months = max(1, round((end - start).days / 30))
        info.update({
            "CertId": str(dom["CertId"]) if dom["CertId"] is not None else "",
            "CertName": dom["CertName"], "CertType": dom["CertType"],
            "CertRegion": dom["CertRegion"] or "", "CertDomainName": common_name(leaf.subject),
            "CertOrg": org_name(leaf.issuer) or common_name(leaf.issuer),
            # GUESS: format of the time fields (ISO 8601 UTC).
            "CertExpireTime": iso(end), "CertLife": f"{months} months",
        })
        if product == CDN:
            info.update(CertStartTime=iso(start), CertUpdateTime=dom["CertUpdateTime"],
                        ServerCertificate=dom["SSLPub"])
        else:
            info["SSLPub"] = dom["SSLPub"]
    return info


def _describe_cert_info(b: Backend, p: Params, product: str) -> dict[str, Any]:
    infos = []
    for name in p["DomainName"].split(","):
        infos.append(_cert_info(_cdn_domain(b, product, name.strip()), product))
    return {"CertInfos": {"CertInfo": infos}}


def _match_domain(name: str, query: str, mode: str) -> bool:
    name, query = name.lower(), query.lower()
    if mode == "full_match":
        return name == query
    if mode == "pre_match":
        return name.startswith(query)
    if mode == "suf_match":
        return name.endswith(query)
    return query in name  # fuzzy_match, the default


def _user_domains(b: Backend, p: Params, product: str) -> dict[str, Any]:
    number = int_param(p, "PageNumber", 1, high=100000)
    size = int_param(p, "PageSize", 20, high=500)
    mode = p.get("DomainSearchType") or "fuzzy_match"
    if mode not in ("fuzzy_match", "pre_match", "suf_match", "full_match"):
        raise ApiError(400, "InvalidDomainSearchType.ValueNotSupported",
                       f"The specified DomainSearchType {mode!r} is not supported.")
    query, status = p.get("DomainName"), p.get("DomainStatus")
    rows = []
    for name in sorted(_cdn_domains(b, product)):
        d = _cdn_domains(b, product)[name]
        if query and not _match_domain(name, query, mode):
            continue
        if status and d["DomainStatus"] != status:
            continue
        row: dict[str, Any] = {
            "DomainName": name, "DomainStatus": d["DomainStatus"], "Cname": d["Cname"],
            "DomainId": d["DomainId"], "GmtCreated": d["GmtCreated"],
            "GmtModified": d["CertUpdateTime"] or d["GmtCreated"], "Description": "",
            "ResourceGroupId": "rg-default", "Sandbox": "normal",
            "Sources": {"Source": [{"Content": f"origin.{name}", "Type": "domain",
                                    "Port": 443, "Priority": "20", "Weight": "10"}]},
        }
        if product == CDN:
            row.update(SslProtocol=d["SslProtocol"], CdnType="web", Coverage="domestic")
        else:
            row.update(SSLProtocol=d["SslProtocol"], Scene="apiscene", FunctionType="")
        rows.append(row)
    return {"Domains": {"PageData": page(rows, number, size)}, "PageNumber": number,
            "PageSize": size, "TotalCount": len(rows)}


@action(CDN, "SetCdnDomainSSLCertificate", "DomainName", "SSLProtocol")
def set_cdn_ssl(b: Backend, p: Params) -> dict[str, Any]:
    return _set_ssl(b, p, CDN)


@action(CDN, "DescribeDomainCertificateInfo", "DomainName")
def describe_cdn_cert(b: Backend, p: Params) -> dict[str, Any]:
    return _describe_cert_info(b, p, CDN)


@action(CDN, "DescribeUserDomains")
def describe_user_domains(b: Backend, p: Params) -> dict[str, Any]:
    return _user_domains(b, p, CDN)


@action(CDN, "DescribeCdnHttpsDomainList")
def describe_cdn_https_domain_list(b: Backend, p: Params) -> dict[str, Any]:
    """Domains with HTTPS on; CertStatus ok / expire_soon / expired (GUESS: values)."""
    number = int_param(p, "PageNumber", 1)
    size = int_param(p, "PageSize", 20, high=1000)
    keyword = (p.get("Keyword") or "").lower()
    rows = []
    now = now_utc()
    for name in sorted(b.state.cdn_domains):
        d = b.state.cdn_domains[name]
        if d["SslProtocol"] != "on" or not d["SSLPub"] or keyword not in name:
            continue
        leaf = load_chain(d["SSLPub"], "bound certificate")[0]
        start, end = validity(leaf)
        status = "expired" if end < now else (
            "expire_soon" if end - now < CERT_WILL_EXPIRE else "ok")
        rows.append({"DomainName": name, "CertName": d["CertName"],
                     "CertType": d["CertType"], "CertCommonName": common_name(leaf.subject),
                     "CertStartTime": iso(start), "CertExpireTime": iso(end),
                     "CertUpdateTime": d["CertUpdateTime"], "CertStatus": status})
    return {"CertInfos": {"CertInfo": page(rows, number, size)}, "TotalCount": len(rows)}


@action(DCDN, "SetDcdnDomainSSLCertificate", "DomainName", "SSLProtocol")
def set_dcdn_ssl(b: Backend, p: Params) -> dict[str, Any]:
    return _set_ssl(b, p, DCDN)


@action(DCDN, "DescribeDcdnDomainCertificateInfo", "DomainName")
def describe_dcdn_cert(b: Backend, p: Params) -> dict[str, Any]:
    return _describe_cert_info(b, p, DCDN)


@action(DCDN, "DescribeDcdnUserDomains")
def describe_dcdn_user_domains(b: Backend, p: Params) -> dict[str, Any]:
    return _user_domains(b, p, DCDN)


# ====================================================================== API Gateway
def _apigw_group(b: Backend, group_id: str) -> list[dict[str, Any]]:
    doms = [d for (g, _), d in sorted(b.state.apigw_domains.items()) if g == group_id]
    if not doms:
        # GUESS: code/status for an unknown group.
        raise ApiError(404, "NotFoundApiGroup", f"The API group {group_id} does not exist.")
    return doms


def _apigw_domain(b: Backend, group_id: str, domain: str) -> dict[str, Any]:
    _apigw_group(b, group_id)
    dom = b.state.apigw_domains.get((group_id, domain.lower()))
    if dom is None:
        # GUESS: code for a domain not bound to the group.
        raise ApiError(404, "NotFoundDomain",
                       f"The domain {domain} is not bound to API group {group_id}.")
    return dom


def new_apigw_domain(group_id: str, domain: str, region: str) -> dict[str, Any]:
    return {"GroupId": group_id, "DomainName": domain, "Region": region,
            "CertificateId": None, "CertificateName": None, "CertificateBody": None,
            "CertificatePrivateKey": None, "CaCertificateBody": None,
            "CertificateValidStart": None, "CertificateValidEnd": None,
            "DomainBindingStatus": "BINDING"}


def _apigw_view(d: dict[str, Any]) -> dict[str, Any]:
    out = {"DomainName": d["DomainName"], "DomainBindingStatus": d["DomainBindingStatus"],
           "DomainCNAMEStatus": "RESOLVED", "DomainLegalStatus": "NORMAL",
           "DomainWebSocketStatus": "CLOSE", "DomainRemark": ""}
    if d["CertificateId"]:
        out.update({k: d[k] for k in ("CertificateId", "CertificateName",
                                      "CertificateValidStart", "CertificateValidEnd")})
    return out


@action(APIGW, "SetDomainCertificate", "GroupId", "DomainName", "CertificateName")
def set_domain_certificate(b: Backend, p: Params) -> dict[str, Any]:
    """Bind a certificate body + key to a custom domain of a group. Each call creates a new
    CertificateId (GUESS: 32 uppercase hex digits, the shape seen in examples)."""
    dom = _apigw_domain(b, p["GroupId"], p["DomainName"])
    for name in ("CertificateBody", "CertificatePrivateKey"):
        if not p.get(name):
            raise ApiError(400, f"Missing{name}", f"{name} is mandatory for this action.")
    chain = parse_leaf_and_key(p["CertificateBody"], p["CertificatePrivateKey"],
                               "CertificateBody")
    start, end = validity(chain[0])
    dom.update(CertificateId=uuid.uuid4().hex.upper(), CertificateName=p["CertificateName"],
               CertificateBody=p["CertificateBody"],
               CertificatePrivateKey=p["CertificatePrivateKey"],
               CaCertificateBody=p.get("CaCertificateBody"),
               CertificateValidStart=to_ms(start), CertificateValidEnd=to_ms(end))
    return {}


@action(APIGW, "DescribeDomain", "GroupId", "DomainName")
def describe_domain(b: Backend, p: Params) -> dict[str, Any]:
    """GUESS: the real response may include CertificatePrivateKey; we never return it."""
    d = _apigw_domain(b, p["GroupId"], p["DomainName"])
    out = _apigw_view(d)
    out.update(GroupId=d["GroupId"], SubDomain=f"{d['GroupId']}-{d['Region']}.alicloudapi.com")
    if d["CertificateId"]:
        out["CertificateBody"] = d["CertificateBody"]
    return out


@action(APIGW, "DescribeApiGroup", "GroupId")
def describe_api_group(b: Backend, p: Params) -> dict[str, Any]:
    doms = _apigw_group(b, p["GroupId"])
    gid, region = p["GroupId"], doms[0]["Region"]
    return {
        "GroupId": gid, "GroupName": f"group-{gid[:8]}", "RegionId": region,
        "SubDomain": f"{gid}-{region}.alicloudapi.com", "BasePath": "/", "Status": "NORMAL",
        "BillingStatus": "NORMAL", "IllegalStatus": "NORMAL", "InstanceType": "VPC_SHARED",
        "InstanceId": f"api-shared-vpc-{region}", "HttpsPolicy": "HTTPS2_TLS1_2",
        "CreatedTime": iso(now_utc()), "Description": "",
        "CustomDomains": {"DomainItem": [
            dict(_apigw_view(d), CustomDomainType="NORMAL", IsHttpRedirectToHttps=False)
            for d in doms]},
        "StageItems": {"StageInfo": [{"StageName": n, "StageId": f"stage-{n.lower()}",
                                      "Description": ""} for n in ("RELEASE", "TEST")]},
    }


@action(APIGW, "DeleteDomainCertificate", "GroupId", "DomainName", "CertificateId")
def delete_domain_certificate(b: Backend, p: Params) -> dict[str, Any]:
    d = _apigw_domain(b, p["GroupId"], p["DomainName"])
    if d["CertificateId"] != p["CertificateId"]:
        raise ApiError(404, "NotFoundCertificate",  # GUESS: code
                       f"The certificate {p['CertificateId']} is not bound to "
                       f"{p['DomainName']}.")
    d.update(new_apigw_domain(d["GroupId"], d["DomainName"], d["Region"]))
    return {}


# ========================================================================== Alidns
RECORD_TYPES = {"A", "AAAA", "CNAME", "TXT", "MX", "NS", "SRV", "CAA", "REDIRECT_URL",
                "FORWARD_URL"}


def zone_for(b: Backend, name: str) -> str | None:
    """The longest registered zone that is ``name`` or a parent of it."""
    name = name.lower().rstrip(".")
    best = None
    for zone in b.state.dns_zones:
        if (name == zone or name.endswith("." + zone)) and (best is None or len(zone) > len(best)):
            best = zone
    return best


def fqdn(zone: str, rr: str) -> str:
    return zone if rr in ("@", "") else f"{rr}.{zone}"


def _zone(b: Backend, zone: str) -> dict[str, dict[str, Any]]:
    records = b.state.dns_zones.get(zone.lower().rstrip("."))
    if records is None:
        raise ApiError(400, "IncorrectDomainUser", "The domain name does not belong to you.")
    return records


def forward_txt(b: Backend, zone: str, rr: str) -> None:
    """Mirror every TXT value now on ``rr.zone`` into challtestsrv.

    challtestsrv keeps a list per name and ``clear-txt`` drops all of them, so after any
    change we clear and re-add what remains; apex and wildcard values both stay visible.
    """
    if b.challtestsrv is None:
        return
    host = fqdn(zone, rr)
    values = [r["Value"] for r in b.state.dns_zones[zone].values()
              if r["Type"] == "TXT" and fqdn(zone, r["RR"]) == host]
    b.challtestsrv.clear_txt(host)
    for value in values:
        b.challtestsrv.set_txt(host, value)


@action(ALIDNS, "GetMainDomainName", "InputString")
def get_main_domain_name(b: Backend, p: Params) -> dict[str, Any]:
    """ASSUMPTION: the real action splits the input by the public suffix list whether or
    not the zone is in the account; the emulator only knows zones added with
    ``add_dns_zone`` and refuses the rest (GUESS: code). RR is ``@`` for the apex (GUESS)."""
    name = p["InputString"].strip().lower().rstrip(".")
    zone = zone_for(b, name)
    if zone is None:
        raise ApiError(400, "InvalidDomainName.NoExist",
                       f"The domain name {name!r} does not exist in this account.")
    rr = name[: -len(zone) - 1] if name != zone else "@"
    level = len(name.split(".")) - len(zone.split(".")) + 1
    return {"DomainName": zone, "RR": rr, "DomainLevel": level}


def _record_view(r: dict[str, Any]) -> dict[str, Any]:
    return dict(r)


@action(ALIDNS, "AddDomainRecord", "DomainName", "RR", "Type", "Value")
def add_domain_record(b: Backend, p: Params) -> dict[str, Any]:
    zone = p["DomainName"].lower().rstrip(".")
    records = _zone(b, zone)
    rr, rtype, value = p["RR"].strip().lower() or "@", p["Type"].upper(), p["Value"]
    if rtype not in RECORD_TYPES:
        raise ApiError(400, "InvalidRecordType.ValueNotSupported",
                       f"The specified record type {rtype!r} is not supported.")
    ttl = int_param(p, "TTL", 600, low=1, high=86400)
    same_rr = [r for r in records.values() if r["RR"] == rr]
    if any(r["Type"] == rtype and r["Value"] == value for r in same_rr):
        raise ApiError(400, "DomainRecordDuplicate", "The DNS record already exists.")
    if any((r["Type"] == "CNAME") != (rtype == "CNAME") for r in same_rr):
        raise ApiError(400, "DomainRecordConflict",
                       "The DNS record conflicts with an existing CNAME record.")
    rid = b.state.next_record_id()
    records[rid] = {"RecordId": rid, "DomainName": zone, "RR": rr, "Type": rtype,
                    "Value": value, "TTL": ttl, "Line": p.get("Line") or "default",
                    "Status": "ENABLE", "Locked": False, "Weight": 1,
                    "Priority": int(p["Priority"]) if p.get("Priority") else None,
                    "CreateTimestamp": to_ms(now_utc()), "UpdateTimestamp": to_ms(now_utc())}
    if records[rid]["Priority"] is None:
        del records[rid]["Priority"]
    if rtype == "TXT":
        forward_txt(b, zone, rr)
    return {"RecordId": rid}


@action(ALIDNS, "DeleteDomainRecord", "RecordId")
def delete_domain_record(b: Backend, p: Params) -> dict[str, Any]:
    rid = p["RecordId"]
    for zone, records in b.state.dns_zones.items():
        if rid in records:
            rec = records.pop(rid)
            if rec["Type"] == "TXT":
                forward_txt(b, zone, rec["RR"])
            return {"RecordId": rid}
    raise ApiError(400, "DomainRecordNotBelongToUser",
                   "The DNS record does not belong to you.")


def _filtered(records: list[dict[str, Any]], p: Params, default_size: int = 20
              ) -> dict[str, Any]:
    number = int_param(p, "PageNumber", 1)
    size = int_param(p, "PageSize", default_size, high=500)
    records = sorted(records, key=lambda r: int(r["RecordId"]))
    return {"DomainRecords": {"Record": [_record_view(r) for r in page(records, number, size)]},
            "PageNumber": number, "PageSize": size, "TotalCount": len(records)}


@action(ALIDNS, "DescribeSubDomainRecords", "SubDomain")
def describe_sub_domain_records(b: Backend, p: Params) -> dict[str, Any]:
    name = p["SubDomain"].strip().lower().rstrip(".")
    zone = (p.get("DomainName") or "").lower().rstrip(".") or zone_for(b, name)
    if zone is None:
        raise ApiError(400, "IncorrectDomainUser", "The domain name does not belong to you.")
    records = _zone(b, zone)
    rtype = (p.get("Type") or "").upper()
    hits = [r for r in records.values()
            if fqdn(zone, r["RR"]) == name and (not rtype or r["Type"] == rtype)]
    return _filtered(hits, p)


@action(ALIDNS, "DescribeDomainRecords", "DomainName")
def describe_domain_records(b: Backend, p: Params) -> dict[str, Any]:
    zone = p["DomainName"].lower().rstrip(".")
    records = _zone(b, zone)
    rr_kw = (p.get("RRKeyWord") or "").lower()
    type_kw = (p.get("TypeKeyWord") or p.get("Type") or "").upper()
    value_kw = (p.get("ValueKeyWord") or "").lower()
    kw = (p.get("KeyWord") or "").lower()
    hits = [r for r in records.values()
            if rr_kw in r["RR"] and (not type_kw or r["Type"] == type_kw)
            and value_kw in r["Value"].lower()
            and (not kw or kw in r["RR"] or kw in r["Value"].lower())]
    return _filtered(hits, p)
