"""The emulated actions of CAS, CDN, DCDN, API Gateway and Alidns (MQTT is in mqtt.py).

Each handler takes the backend and the action's parameters (strings, as on the wire) and
returns the response body without ``RequestId``; it raises :class:`ApiError` for business
errors. Response fields follow the SDK response models of the installed versions, because
acmeali reads them through those models: a field we misspell is a field acmeali sees as
``None``. Error codes marked GUESS are plausible but not confirmed against the real service;
``# assumption:`` marks behaviour the sources leave open, modelled as strictly as plausible
(docs/alibaba-cloud.md and ../shared/research/aliyun-fidelity.md list the sources).
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
    key_algorithm_of_key,
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
    """Store an uploaded certificate; names are unique per account, at most 63 chars
    (SDK _upload_user_certificate_request.py: "Maximum length: 63 characters"; ALIYUN.md:
    "The certificate name already exists.").

    GUESS: uploading the same certificate twice under two names is allowed here (we
    found no statement either way); the duplicate *name* is refused as documented.
    """
    name = p["Name"]
    st = b.state
    token = p.get("ClientToken")
    # SDK _upload_user_certificate_request.py: ClientToken "used to ensure the idempotence of
    # the request". assumption: the same token answers the first call's CertId again.
    if token and token in st.cas_tokens and st.cas_tokens[token] in st.cas_certs:
        cid = st.cas_tokens[token]
        return {"CertId": cid, "ResourceId": st.cas_certs[cid]["InstanceId"]}
    if len(name) > 63:
        raise ApiError(400, "InvalidName", "The certificate name cannot exceed 63 "
                       "characters.")  # GUESS: code
    chain = parse_leaf_and_key(p["Cert"], p["Key"], "uploaded")
    leaf = chain[0]
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
        # assumption: a certificate without a CN (LE tlsserver/shortlived) has none here.
        "Common": common_name(leaf.subject),
        "Sans": ",".join(sans), "Issuer": org_name(leaf.issuer) or common_name(leaf.issuer),
        "Algorithm": key_algorithm(leaf), "NotBefore": to_ms(start), "NotAfter": to_ms(end),
        "StartDate": start.strftime("%Y-%m-%d"), "EndDate": end.strftime("%Y-%m-%d"),
        "InstanceId": f"cas-upload-{uuid.uuid4().hex[:8]}",
        "CertIdentifier": f"{cert_id}-{st.cas_region}", "Region": st.cas_region,
    }
    if token:
        st.cas_tokens[token] = cert_id
    return {"CertId": cert_id, "ResourceId": st.cas_certs[cert_id]["InstanceId"]}


@action(CAS, "ListUserCertificateOrder")
def list_user_certificate_order(b: Backend, p: Params) -> dict[str, Any]:
    """Uploads are listed only for OrderType CERT or UPLOAD (default CPACK lists orders,
    of which the emulator has none). Without Status only valid certificates (ISSUED,
    WILLEXPIRED) are listed, as the API documents (SDK
    _list_user_certificate_order_request.py; TotalCount = entries)."""
    order_type = (p.get("OrderType") or "CPACK").upper()
    current = int_param(p, "CurrentPage", 1)
    # SDK: "Default value: 50"; assumption: no documented maximum, 1000 modelled.
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
    """SDK _get_user_certificate_detail_response_body.py: CertIdentifier "<id>-cn-hangzhou";
    CertFilter=true leaves out Cert and Key."""
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
    """Delete an upload. Docs (api-cas-2020-04-07-deleteusercertificate) document no in-use
    refusal, so none is modelled: a certificate a CDN domain still serves is deleted too,
    which is why acmeali asks ListCertificates first."""
    c = cas_get(b, p["CertId"])
    del b.state.cas_certs[c["Id"]]
    b.state.cas_hand_bound.pop(c["Id"], None)
    return {}


#: More places that use CAS certificates, modelled in other modules (casjobs.py adds the
#: CLB/ALB/NLB listeners): each gives [{"CloudProduct", "Domain"}] for a CertId.
CAS_USER_SOURCES: list[Callable[[Backend, int], list[dict[str, Any]]]] = []


def cas_users(b: Backend, cert_id: int) -> list[dict[str, Any]]:
    """Cloud resources using a CAS certificate: (D)CDN domains bound by reference, plus what
    a test bound by hand (SLB, ALB, WAF, ... referencing ``<CertId>-<region>``), plus the
    products of :data:`CAS_USER_SOURCES`. ListCloudResources is casjobs.py's."""
    out = [{"CloudProduct": "CDN", "Domain": d} for d, v in sorted(b.state.cdn_domains.items())
           if v.get("CertId") == cert_id]
    out += [{"CloudProduct": "DCDN", "Domain": d}
            for d, v in sorted(b.state.dcdn_domains.items()) if v.get("CertId") == cert_id]
    out += [{"CloudProduct": prod, "Domain": dom}
            for prod, dom in b.state.cas_hand_bound.get(cert_id, [])]
    for source in CAS_USER_SOURCES:
        out += source(b, cert_id)
    return out


@action(CAS, "ListCertificates")
def list_certificates(b: Backend, p: Params) -> dict[str, Any]:
    """SDK _list_certificates_request.py: ShowSize default 10, maximum 100; Keyword fuzzy
    over domain names, names and resource IDs. _list_certificates_response_body.py:
    UsingProductList = "the list of Alibaba Cloud services to which the certificate is
    currently deployed"; CertificateId is a string there."""
    current = int_param(p, "CurrentPage", 1)
    size = int_param(p, "ShowSize", 10, high=100)
    keyword = (p.get("Keyword") or "").lower()
    source = (p.get("CertificateSource") or "").upper()
    items: list[dict[str, Any]] = []
    for cid in sorted(b.state.cas_certs):
        c = b.state.cas_certs[cid]
        if source and source != "UPLOAD":
            continue
        hay = " ".join([c["Common"], c["Sans"], c["Name"], c["InstanceId"], str(cid)])
        if keyword and keyword not in hay.lower():
            continue
        st = cas_status(c)
        users = cas_users(b, cid)
        items.append({
            "CertificateId": str(cid), "CertificateName": c["Name"],
            "CertIdentifier": c["CertIdentifier"], "CommonName": c["Common"],
            "SubjectAlternativeNames": c["Sans"].split(",") if c["Sans"] else [],
            "Domain": c["Sans"], "Serial": c["SerialNo"], "FingerPrint": c["Fingerprint"],
            "Algorithm": c["Algorithm"], "Issuer": c["Issuer"], "InstanceId": c["InstanceId"],
            "NotBefore": c["NotBefore"], "NotAfter": c["NotAfter"],
            "CertificateSource": "UPLOAD", "ExistPrivateKey": True,
            "CertificateStatus": {"ISSUED": "issued", "WILLEXPIRED": "willExpire",
                                  "EXPIRED": "expired"}[st],
            "UsingProductList": sorted({u["CloudProduct"] for u in users}),
        })
    return {"CertificateList": page(items, current, size), "CurrentPage": current,
            "ShowSize": size, "TotalCount": len(items)}


# ====================================================================== CDN / DCDN
def _cdn_domains(b: Backend, product: str) -> dict[str, dict[str, Any]]:
    return b.state.cdn_domains if product == CDN else b.state.dcdn_domains


def cdn_stored_name(name: str) -> str:
    """DCDN wildcard FAQ (alibabacloud.com/help/faq-detail/65165.htm): wildcard domains "can
    be added in the following formats: .test.com and *.test.com ... displayed as .test.com";
    CDN's wildcard doc uses .aliyundoc.com throughout. Stored and listed with a leading dot."""
    name = name.lower().rstrip(".")
    return "." + name[2:] if name.startswith("*.") else name


def new_cdn_domain(b: Backend, name: str, product: str, *, status: str = "online",
                   https: bool = False) -> dict[str, Any]:
    """SDK _describe_user_domains_request.py: DomainStatus is one of online, offline,
    configuring, configure_failed, checking, check_failed, stopping, deleting."""
    suffix = "w.kunlunsl.com" if product == CDN else "w.kunlungr.com"
    return {
        "DomainName": name, "DomainStatus": status, "SslProtocol": "on" if https else "off",
        "CertType": None, "CertId": None, "CertName": None, "CertRegion": None,
        "SSLPub": None, "SSLPri": None, "CertUpdateTime": None,
        "GmtCreated": iso(now_utc()), "DomainId": b.state.next_domain_id(),
        "Cname": f"{name.lstrip('.')}.{suffix}",
    }


def _cdn_domain(b: Backend, product: str, name: str) -> dict[str, Any]:
    # assumption: Set*/Describe* take the stored name only; "*.x" for a wildcard domain
    # stored as ".x" is not found (certimate's normalizeDomain turns *.x into .x for them).
    dom = _cdn_domains(b, product).get(name.lower())
    if dom is None:
        raise ApiError(404, "InvalidDomain.NotFound",
                       "The domain provided does not belong to you.")
    return dom


def _set_ssl(b: Backend, p: Params, product: str) -> dict[str, Any]:
    """SDK _set_cdn_domain_sslcertificate_request.py / _set_dcdn_...: CertId required with
    CertType=cas; CertRegion cn-hangzhou (default) or ap-southeast-1."""
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
        _check_rsa_pkcs1(cert["Key"])
        dom.update(SslProtocol="on", CertType="cas", CertId=cert["Id"],
                   CertName=p.get("CertName") or cert["Name"], CertRegion=region,
                   SSLPub=cert["Cert"], SSLPri=None, CertUpdateTime=iso(now_utc()))
    elif cert_type == "upload":
        for name in ("SSLPub", "SSLPri"):
            if not p.get(name):
                raise ApiError(400, f"Missing{name}",
                               f"{name} is mandatory when CertType is upload.")
        parse_leaf_and_key(p["SSLPub"], p["SSLPri"], "SSLPub")
        _check_rsa_pkcs1(p["SSLPri"])
        # GUESS/simplification: the real CDN also files an upload in CAS; we do not.
        dom.update(SslProtocol="on", CertType="upload", CertId=None,
                   CertName=p.get("CertName") or dom["DomainName"], CertRegion=None,
                   SSLPub=p["SSLPub"], SSLPri=p["SSLPri"], CertUpdateTime=iso(now_utc()))
    else:
        raise ApiError(400, "InvalidCertType.ValueNotSupported",
                       f"The specified CertType {cert_type!r} is not supported.")
    return {}


def _check_rsa_pkcs1(key_pem: str) -> None:
    """CDN/DCDN certificate-format docs (help.aliyun.com/zh/cdn/user-guide/certificate-formats,
    alibabacloud.com/help/doc-detail/66710.htm): an RSA key must be "-----BEGIN RSA PRIVATE
    KEY-----" (PKCS#1); "BEGIN PRIVATE KEY" must be converted. assumption: the same holds
    for a key the CDN takes from CAS by CertId, and EC keys may be PKCS#8."""
    if "BEGIN PRIVATE KEY" in key_pem and key_algorithm_of_key(key_pem) == "RSA":
        raise ApiError(400, "InvalidSSLPri.Malformed",  # GUESS: code
                       "The RSA private key must be in PKCS#1 format (BEGIN RSA PRIVATE KEY).")


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
    """SDK _describe_domain_certificate_info_response_body.py: CertInfos.CertInfo[] with
    CertId as a string, ServerCertificateStatus on/off (DCDN: SSLProtocol)."""
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
    # SDK _describe_user_domains_request.py: PageSize maximum 500.
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


def puny(name: str) -> str:
    """The ASCII (punycode) form of a DNS name."""
    return ".".join(lab if lab.isascii() else lab.encode("idna").decode("ascii")
                    for lab in name.lower().rstrip(".").split("."))


def unicode_zone(name: str) -> str:
    """The Unicode form of a zone name (how Alidns lists an IDN zone's DomainName)."""
    return ".".join(lab.encode("ascii").decode("idna") if lab.startswith("xn--") else lab
                    for lab in name.lower().rstrip(".").split("."))


def zone_for(b: Backend, name: str) -> str | None:
    """The longest hosted zone (as listed) that is ``name`` or a parent of it; ``name`` in
    either form. Used by the DescribeSubDomainRecords default only."""
    name = puny(name)
    best = None
    for zone in b.state.dns_zones:
        z = puny(zone)
        if (name == z or name.endswith("." + z)) and (best is None or len(z) > len(puny(best))):
            best = zone
    return best


def fqdn(zone: str, rr: str) -> str:
    """The record's name in ASCII (what challtestsrv and resolvers see)."""
    zone = puny(zone)
    return zone if rr in ("@", "") else f"{rr}.{zone}"


def _zone(b: Backend, zone: str) -> dict[str, dict[str, Any]]:
    zone = zone.lower().rstrip(".")
    records = b.state.dns_zones.get(zone)
    if records is None:
        if any(puny(z) == zone and z != zone for z in b.state.dns_zones):
            # external-dns PR #6141: "Alibaba Cloud DNS API returns InvalidDomainName.NoExist
            # when DomainName is Punycode"; the IDN zone is only known by its Unicode name.
            raise ApiError(400, "InvalidDomainName.NoExist",
                           f"The domain name {zone} does not exist.")
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


#: A few public suffixes of more than one label (the real service uses the whole Public
#: Suffix List; tests use .test and these).
MULTI_LABEL_SUFFIXES = frozenset({"com.cn", "net.cn", "org.cn", "gov.cn", "edu.cn", "co.uk",
                                  "org.uk", "com.hk", "co.jp", "com.au"})


@action(ALIDNS, "GetMainDomainName", "InputString")
def get_main_domain_name(b: Backend, p: Params) -> dict[str, Any]:
    """Docs (api-alidns-2015-01-09-getmaindomainname): "if you enter www.abc.com, the output
    is abc.com" -- split by the public suffix, never by the zones the account hosts, so a
    delegated sub-zone (dev.corp.example.test hosted here) is NOT what it answers.
    GUESS: RR "@" for the apex; DomainLevel counts labels below the main domain + 1."""
    name = p["InputString"].strip().lower().rstrip(".")
    labels = name.split(".")
    two = ".".join(labels[-2:])
    n = 3 if two in MULTI_LABEL_SUFFIXES else 2
    if len(labels) < n:
        raise ApiError(400, "InvalidDomainName.Format",  # GUESS: code
                       f"The domain name {name!r} is not valid.")
    zone = ".".join(labels[-n:])
    rr = name[: -len(zone) - 1] if name != zone else "@"
    return {"DomainName": zone, "RR": rr, "DomainLevel": len(labels) - n + 1}


@action(ALIDNS, "DescribeDomains")
def describe_domains(b: Backend, p: Params) -> dict[str, Any]:
    """SDK _describe_domains_request.py: PageSize maximum 100, default 20; KeyWord matched
    %KeyWord% case-insensitively (SearchMode LIKE) or exactly (EXACT).
    _describe_domains_response_body.py: Domains.Domain[] {DomainName, PunyCode, DomainId,
    ...}; AddDomain doc example: DomainName=中文.com, PunyCode=xn--fsq270a.com."""
    number = int_param(p, "PageNumber", 1)
    size = int_param(p, "PageSize", 20, high=100)
    kw = (p.get("KeyWord") or "").lower()
    exact = (p.get("SearchMode") or "LIKE").upper() == "EXACT"
    rows = []
    for i, zone in enumerate(sorted(b.state.dns_zones)):
        if kw and ((zone != kw and puny(zone) != kw) if exact
                   else (kw not in zone and kw not in puny(zone))):
            continue
        rows.append({"DomainName": zone, "PunyCode": puny(zone),
                     "DomainId": f"00000000-0000-4000-8000-{i:012d}", "AliDomain": False,
                     "RecordCount": len(b.state.dns_zones[zone]), "VersionCode": "mianfei",
                     "VersionName": "Alibaba Cloud DNS", "Starmark": False,
                     "ResourceGroupId": "rg-default"})
    return {"Domains": {"Domain": page(rows, number, size)}, "PageNumber": number,
            "PageSize": size, "TotalCount": len(rows)}


def _record_view(r: dict[str, Any]) -> dict[str, Any]:
    return dict(r)


@action(ALIDNS, "AddDomainRecord", "DomainName", "RR", "Type", "Value")
def add_domain_record(b: Backend, p: Params) -> dict[str, Any]:
    """DomainName is the zone as DescribeDomains lists it (Unicode for an IDN zone).
    Codes DomainRecordDuplicate / DomainRecordConflict / IncorrectDomainUser: ALIYUN.md."""
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
    """SDK _delete_domain_record_request.py: RecordId; DomainRecordNotBelongToUser (ALIYUN.md)."""
    rid = p["RecordId"]
    for zone, records in b.state.dns_zones.items():
        if rid in records:
            rec = records.pop(rid)
            if rec["Type"] == "TXT":
                forward_txt(b, zone, rec["RR"])
            return {"RecordId": rid}
    raise ApiError(400, "DomainRecordNotBelongToUser",
                   "The DNS record does not belong to you.")


def _filtered(records: list[dict[str, Any]], p: Params, high: int) -> dict[str, Any]:
    number = int_param(p, "PageNumber", 1)
    size = int_param(p, "PageSize", 20, high=high)
    records = sorted(records, key=lambda r: int(r["RecordId"]))
    return {"DomainRecords": {"Record": [_record_view(r) for r in page(records, number, size)]},
            "PageNumber": number, "PageSize": size, "TotalCount": len(records)}


@action(ALIDNS, "DescribeSubDomainRecords", "SubDomain")
def describe_sub_domain_records(b: Backend, p: Params) -> dict[str, Any]:
    """SDK _describe_sub_domain_records_request.py: PageSize "Maximum value: 100" (not the
    500 of DescribeDomainRecords). assumption: SubDomain names the record under the zone in
    the same form as DomainName (Unicode for an IDN zone); ASCII is accepted as well."""
    name = p["SubDomain"].strip().lower().rstrip(".")
    zone = (p.get("DomainName") or "").lower().rstrip(".") or zone_for(b, name)
    if zone is None:
        raise ApiError(400, "IncorrectDomainUser", "The domain name does not belong to you.")
    records = _zone(b, zone)
    rtype = (p.get("Type") or "").upper()
    hits = [r for r in records.values()
            if fqdn(zone, r["RR"]) == puny(name) and (not rtype or r["Type"] == rtype)]
    return _filtered(hits, p, 100)


@action(ALIDNS, "DescribeDomainRecords", "DomainName")
def describe_domain_records(b: Backend, p: Params) -> dict[str, Any]:
    """SDK _describe_domain_records_request.py: RRKeyWord/TypeKeyWord/ValueKeyWord filters."""
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
    return _filtered(hits, p, 500)  # SDK: DescribeDomainRecords PageSize maximum 500
