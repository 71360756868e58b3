"""ApsaraVideo Live (API 2016-11-01): the HTTPS certificate of live domains.

Sources: alibabacloud_live20161101 3.0.2 models (_set_live_domain_certificate_request.py,
_describe_live_domain_certificate_info_response_body.py, _describe_live_user_domains_
request.py / _response_body.py) and the API pages
help.aliyun.com/zh/live/developer-reference/api-live-2016-11-01-setlivedomaincertificate
(SSLProtocol=on requires SSLPub and SSLPri; error codes) and
.../api-live-2016-11-01-describeliveuserdomains.

State ``state.extra["live"]["domains"]``: DomainName -> {"DomainName", "LiveDomainStatus",
"LiveDomainType", "SSLProtocol", "CertType", "CertName", "CasId", "SSLPub", "SSLPri",
"Settings": {other domain settings acmeali must never change}}.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

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

LIVE = "live"
VERSIONS["2016-11-01"] = LIVE  # alibabacloud_live20161101 client: _version = '2016-11-01'
HOSTS[LIVE] = "live.aliyuncs.com"  # client _endpoint_map: every region -> live.aliyuncs.com


def domains(state: EmulatorState) -> dict[str, dict[str, Any]]:
    return state.extra.setdefault(LIVE, {}).setdefault("domains", {})


def add_domain(state: EmulatorState, name: str, *, https: bool = False,
               status: str = "online", domain_type: str = "liveVideo") -> dict[str, Any]:
    """A live domain made in the console; ``https`` gives it a certificate of its own
    (the PEM is filled in by the test when it matters)."""
    with state.lock:
        dom = {"DomainName": name.lower(), "LiveDomainStatus": status,
               "LiveDomainType": domain_type, "SSLProtocol": "on" if https else "off",
               "CertType": "upload" if https else None,
               "CertName": "console-cert" if https else None, "CasId": None,
               "SSLPub": None, "SSLPri": None,
               # assumption: settings a domain has besides its certificate (the console's
               # HTTP/2, TLS versions, force redirect, origin), to check nothing else moves.
               "Settings": {"http2": "on", "tls_versions": "TLSv1.2,TLSv1.3",
                            "https_force": "off", "origin": f"origin.{name.lower()}"}}
        domains(state)[name.lower()] = dom
        return dom


def _domain(b: Backend, name: str) -> dict[str, Any]:
    dom = domains(b.state).get(name.lower())
    if dom is None:
        # API page error codes: 400 InvalidDomain.NotFound "The domain provided does not
        # belong to you." (shared with CDN).
        raise ApiError(400, "InvalidDomain.NotFound",
                       "The domain provided does not belong to you.")
    return dom


def _cas_by_name(b: Backend, name: str) -> dict[str, Any]:
    found = [c for c in b.state.cas_certs.values() if c["Name"] == name]
    if not found:
        # assumption: CertType=cas selects the CAS certificate by CertName (the SDK has no
        # CertId field); an unknown name is refused. Code assumed.
        raise ApiError(400, "Certificate.NotFound",
                       f"The certificate {name!r} does not exist in SSL Certificates Service.")
    return found[0]


@action(LIVE, "SetLiveDomainCertificate", "DomainName", "SSLProtocol")
def set_live_domain_certificate(b: Backend, p: Params) -> dict[str, Any]:
    dom = _domain(b, p["DomainName"])
    proto = p["SSLProtocol"].lower()
    if proto not in ("on", "off"):
        # API page: 400 InvalidSSLProtocol.ValueNotSupported.
        raise ApiError(400, "InvalidSSLProtocol.ValueNotSupported",
                       "The specified value of parameter SSLProtocol is not supported.")
    if proto == "off":
        dom.update(SSLProtocol="off", CertType=None, CertName=None, CasId=None, SSLPub=None,
                   SSLPri=None)
        return {}
    for name in ("SSLPub", "SSLPri"):
        if not p.get(name):
            # API page: "on: SSLPub and SSLPri must be set too"; 400 SSLPub.MissingParameter,
            # SSLPri.MissingParameter.
            raise ApiError(400, f"{name}.MissingParameter",
                           f'An input parameter "{name}" that is mandatory for processing '
                           "the request is not supplied.")
    chain = parse_leaf_and_key(p["SSLPub"], p["SSLPri"], "SSLPub")
    if "BEGIN PRIVATE KEY" in p["SSLPri"]:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        if isinstance(load_pem_private_key(p["SSLPri"].encode(), None), rsa.RSAPrivateKey):
            # Live "certificate formats" page: an RSA key must be PKCS#1 ("BEGIN RSA PRIVATE
            # KEY"); PKCS#8 has to be converted. Code assumed.
            raise ApiError(400, "InvalidSSLPri.Malformed",
                           "The RSA private key must be in PKCS#1 format.")
    cert_type = (p.get("CertType") or "upload").lower()
    if cert_type not in ("upload", "cas", "free"):
        raise ApiError(400, "InvalidCertType.ValueNotSupported",  # assumption: code
                       f"The specified CertType {cert_type!r} is not supported.")
    cas_id = None
    if cert_type == "cas":
        cert = _cas_by_name(b, p.get("CertName") or "")
        # assumption (strictest): the content sent must be the named CAS certificate's.
        if load_chain(cert["Cert"], "CAS certificate")[0] != chain[0]:
            raise ApiError(400, "Certificate.Mismatch",
                           "SSLPub is not the certificate named by CertName.")
        cas_id = cert["Id"]
    dom.update(SSLProtocol="on", CertType=cert_type,
               CertName=p.get("CertName") or dom["DomainName"], CasId=cas_id,
               SSLPub=p["SSLPub"], SSLPri=p["SSLPri"])
    return {}


@action(LIVE, "DescribeLiveDomainCertificateInfo", "DomainName")
def describe_live_domain_certificate_info(b: Backend, p: Params) -> dict[str, Any]:
    dom = _domain(b, p["DomainName"])
    info: dict[str, Any] = {"DomainName": dom["DomainName"], "SSLProtocol": dom["SSLProtocol"],
                            "Status": "success"}
    if dom["SSLProtocol"] == "on":
        info.update(CertName=dom["CertName"] or "", CertType=dom["CertType"] or "")
        if dom["SSLPub"]:
            leaf = load_chain(dom["SSLPub"], "bound certificate")[0]
            start, end = validity(leaf)
            # model CertInfo: CertDomainName, CertExpireTime, CertLife, CertOrg, SSLPub.
            info.update(SSLPub=dom["SSLPub"], CertDomainName=common_name(leaf.subject),
                        CertExpireTime=iso(end), CertOrg=common_name(leaf.issuer),
                        CertLife=f"{max(1, round((end - start).days / 30))} months")
    return {"CertInfos": {"CertInfo": [info]}}


@action(LIVE, "DescribeLiveUserDomains")
def describe_live_user_domains(b: Backend, p: Params) -> dict[str, Any]:
    # model: PageNumber 1 to 100000; PageSize default 20, maximum 50.
    number = int_param(p, "PageNumber", 1, high=100000)
    size = int_param(p, "PageSize", 20, high=50)
    status, kind = p.get("DomainStatus"), p.get("LiveDomainType")
    rows = []
    for name in sorted(domains(b.state)):
        d = domains(b.state)[name]
        if (status and d["LiveDomainStatus"] != status) or (kind and d["LiveDomainType"] != kind):
            continue
        # model PageData: no HTTPS flag in a row.
        rows.append({"DomainName": name, "LiveDomainStatus": d["LiveDomainStatus"],
                     "LiveDomainType": d["LiveDomainType"], "Cname": f"{name}.livecdn.com",
                     "GmtCreated": iso(now_utc()), "GmtModified": iso(now_utc()),
                     "RegionName": "cn-shanghai", "Description": ""})
    return {"Domains": {"PageData": page(rows, number, size)}, "PageNumber": number,
            "PageSize": size, "TotalCount": len(rows)}


# SDK cas20200407 _list_certificates_response_body.py: UsingProductList = "the services to
# which the certificate is currently deployed". assumption: product name "LIVE".
CAS_USER_SOURCES.append(lambda b, cert_id: [
    {"CloudProduct": "LIVE", "Domain": n} for n, d in sorted(domains(b.state).items())
    if d["CasId"] == cert_id and d["SSLProtocol"] == "on"])
