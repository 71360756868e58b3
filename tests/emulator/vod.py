"""ApsaraVideo VOD (API 2017-03-21): the HTTPS certificate of VOD accelerated domains.

Sources: alibabacloud_vod20170321 3.12.1 models (_set_vod_domain_sslcertificate_request.py:
DomainName and SSLProtocol required, CertType upload|cas, CertId, CertRegion cn-hangzhou|
ap-southeast-1 default cn-hangzhou; _describe_vod_domain_certificate_info_response_body.py;
_describe_vod_user_domains_request.py / _response_body.py: PageSize at most 50, SslProtocol
per row) and the API page alibabacloud.com/help/en/vod/developer-reference/
api-vod-2017-03-21-setvoddomainsslcertificate (China (Shanghai) only).

State ``state.extra["vod"]["domains"]``: DomainName -> {"DomainName", "DomainStatus",
"SslProtocol", "CertType", "CertId", "CertName", "CertRegion", "SSLPub", "Settings"}.
"""

from __future__ import annotations

from typing import Any

from .products import (
    CAS_USER_SOURCES,
    HOSTS,
    VERSIONS,
    Params,
    action,
    int_param,
    iso,
    page,
    parse_leaf_and_key,
)
from .state import ApiError, Backend, EmulatorState, common_name, load_chain, now_utc, validity

VOD = "vod"
VERSIONS["2017-03-21"] = VOD  # alibabacloud_vod20170321 client: _version = '2017-03-21'
HOSTS[VOD] = "vod.cn-shanghai.aliyuncs.com"  # client _endpoint_map: cn-hangzhou -> this


def domains(state: EmulatorState) -> dict[str, dict[str, Any]]:
    return state.extra.setdefault(VOD, {}).setdefault("domains", {})


def add_domain(state: EmulatorState, name: str, *, https: bool = False,
               status: str = "online") -> dict[str, Any]:
    with state.lock:
        dom = {"DomainName": name.lower(), "DomainStatus": status,
               "SslProtocol": "on" if https else "off",
               "CertType": "upload" if https else None, "CertId": None,
               "CertName": "console-cert" if https else None, "CertRegion": None,
               "SSLPub": None,
               # assumption: settings besides the certificate, to check nothing else moves.
               "Settings": {"http2": "on", "https_force": "on", "hsts": "max-age=300",
                            "origin": f"origin.{name.lower()}"}}
        domains(state)[name.lower()] = dom
        return dom


def _domain(b: Backend, name: str) -> dict[str, Any]:
    dom = domains(b.state).get(name.lower())
    if dom is None:
        # assumption: CDN's code for a domain of another account (VOD domains are CDN's).
        raise ApiError(400, "InvalidDomain.NotFound",
                       "The domain provided does not belong to you.")
    return dom


@action(VOD, "SetVodDomainSSLCertificate", "DomainName", "SSLProtocol")
def set_vod_domain_ssl_certificate(b: Backend, p: Params) -> dict[str, Any]:
    dom = _domain(b, p["DomainName"])
    proto = p["SSLProtocol"].lower()
    if proto not in ("on", "off"):  # model: on | off. Code: CDN's (assumption).
        raise ApiError(400, "InvalidSSLProtocol.ValueNotSupported",
                       "The specified value of parameter SSLProtocol is not supported.")
    if proto == "off":
        dom.update(SslProtocol="off", CertType=None, CertId=None, CertName=None,
                   CertRegion=None, SSLPub=None)
        return {}
    cert_type = (p.get("CertType") or "upload").lower()
    if cert_type == "cas":
        region = p.get("CertRegion") or "cn-hangzhou"  # model: default cn-hangzhou
        if region not in ("cn-hangzhou", "ap-southeast-1"):
            raise ApiError(400, "InvalidCertRegion.ValueNotSupported",  # assumption: code
                           f"The specified CertRegion {region!r} is not supported.")
        raw = p.get("CertId") or ""
        cert = b.state.cas_certs.get(int(raw)) if raw.isdigit() else None
        if cert is None or cert["Region"] != region:
            # assumption (as CDN): the CertId must be a CAS certificate of this account in
            # CertRegion.
            raise ApiError(400, "InvalidCertificate.NotFound",
                           f"The certificate {raw} does not exist in CAS region {region}.")
        dom.update(SslProtocol="on", CertType="cas", CertId=cert["Id"],
                   CertName=p.get("CertName") or cert["Name"], CertRegion=region,
                   SSLPub=cert["Cert"])
    elif cert_type == "upload":
        for name in ("SSLPub", "SSLPri"):
            if not p.get(name):  # model: the content is needed to configure a certificate
                raise ApiError(400, f"Missing{name}", f"{name} is mandatory for upload.")
        parse_leaf_and_key(p["SSLPub"], p["SSLPri"], "SSLPub")
        dom.update(SslProtocol="on", CertType="upload", CertId=None,
                   CertName=p.get("CertName") or dom["DomainName"], CertRegion=None,
                   SSLPub=p["SSLPub"])
    else:
        raise ApiError(400, "InvalidCertType.ValueNotSupported",  # model: upload | cas
                       f"The specified CertType {cert_type!r} is not supported.")
    return {}


@action(VOD, "DescribeVodDomainCertificateInfo", "DomainName")
def describe_vod_domain_certificate_info(b: Backend, p: Params) -> dict[str, Any]:
    dom = _domain(b, p["DomainName"])
    info: dict[str, Any] = {"DomainName": dom["DomainName"], "Status": "success",
                            "ServerCertificateStatus": dom["SslProtocol"],
                            "DomainCnameStatus": "online"}
    if dom["SslProtocol"] == "on":
        # model CertInfo: CertId, CertName, CertType, CertRegion, ServerCertificate, ...
        info.update(CertId=str(dom["CertId"]) if dom["CertId"] is not None else "",
                    CertName=dom["CertName"] or "", CertType=dom["CertType"] or "",
                    CertRegion=dom["CertRegion"] or "")
        if dom["SSLPub"]:
            leaf = load_chain(dom["SSLPub"], "bound certificate")[0]
            start, end = validity(leaf)
            info.update(ServerCertificate=dom["SSLPub"],
                        CertDomainName=common_name(leaf.subject), CertStartTime=iso(start),
                        CertExpireTime=iso(end), CertOrg=common_name(leaf.issuer))
    return {"CertInfos": {"CertInfo": [info]}}


@action(VOD, "DescribeVodUserDomains")
def describe_vod_user_domains(b: Backend, p: Params) -> dict[str, Any]:
    number = int_param(p, "PageNumber", 1, high=100000)
    size = int_param(p, "PageSize", 20, high=50)  # model: 1 to 50, default 20
    status = p.get("DomainStatus")
    rows = []
    for name in sorted(domains(b.state)):
        d = domains(b.state)[name]
        if status and d["DomainStatus"] != status:
            continue
        rows.append({"DomainName": name, "DomainStatus": d["DomainStatus"],
                     "SslProtocol": d["SslProtocol"], "Cname": f"{name}.w.alikunlun.com",
                     "GmtCreated": iso(now_utc()), "GmtModified": iso(now_utc()),
                     "Description": "", "Sandbox": "normal"})
    return {"Domains": {"PageData": page(rows, number, size)}, "PageNumber": number,
            "PageSize": size, "TotalCount": len(rows)}


# SDK cas20200407 _list_certificates_response_body.py: UsingProductList. assumption: "VOD".
CAS_USER_SOURCES.append(lambda b, cert_id: [
    {"CloudProduct": "VOD", "Domain": n} for n, d in sorted(domains(b.state).items())
    if d["CertType"] == "cas" and d["CertId"] == cert_id and d["SslProtocol"] == "on"])
