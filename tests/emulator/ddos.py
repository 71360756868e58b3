"""Anti-DDoS Pro/Premium (ddoscoo API 2020-01-01): website forwarding rules' certificates.

Sources: alibabacloud_ddoscoo20200101 4.0.4 models (_associate_web_cert_request.py: Domain
required; CertIdentifier "<id>-cn-hangzhou", not together with CertId; CertId + CertRegion;
or CertName + Cert + Key; _describe_web_rules_request.py: PageSize 1 to 10,
QueryDomainPattern fuzzy|exact; _describe_web_rules_response_body.py).

State ``state.extra["ddoscoo"]["rules"]``: Domain -> the DescribeWebRules row (SDK field
names) plus "CasId" (which CAS certificate it serves).
"""

from __future__ import annotations

import copy
from typing import Any

from .products import (
    CAS_USER_SOURCES,
    HOSTS,
    VERSIONS,
    Params,
    action,
    int_param,
    parse_leaf_and_key,
)
from .state import ApiError, Backend, EmulatorState

DDOS = "ddoscoo"
VERSIONS["2020-01-01"] = DDOS  # alibabacloud_ddoscoo20200101 client: _version = '2020-01-01'
HOSTS[DDOS] = "ddoscoo.cn-hangzhou.aliyuncs.com"


def rules(state: EmulatorState) -> dict[str, dict[str, Any]]:
    return state.extra.setdefault(DDOS, {}).setdefault("rules", {})


def add_rule(state: EmulatorState, domain: str, *, https: bool = True) -> dict[str, Any]:
    """A website forwarding rule made in the console, with settings of its own."""
    proxies = [{"ProxyType": "http", "ProxyPorts": [80]}]
    if https:
        proxies.append({"ProxyType": "https", "ProxyPorts": [443]})
    with state.lock:
        rule = {"Domain": domain.lower(), "Cname": f"{domain.lower()}.aliyunddos0001.com",
                "CertName": "", "UserCertName": "", "CertRegion": "", "CasId": None,
                "ProxyTypes": proxies, "ProxyEnabled": True,
                "RealServers": [{"RealServer": "203.0.113.7", "RsType": 0}],
                "Http2Enable": True, "Http2HttpsEnable": True, "Https2HttpEnable": False,
                "OcspEnabled": True, "Ssl13Enabled": True, "SslProtocols": "tls1.2",
                "SslCiphers": "strong", "CcEnabled": True, "PolicyMode": "default",
                "WhiteList": ["198.51.100.1"], "BlackList": [], "PunishStatus": False}
        rules(state)[domain.lower()] = rule
        return rule


def _rule(b: Backend, domain: str) -> dict[str, Any]:
    rule = rules(b.state).get(domain.lower())
    if rule is None:
        # model: "The domain name must have a website forwarding rule configured."
        # assumption: code.
        raise ApiError(400, "InvalidDomain.NotFound", f"The domain {domain} has no website "
                       "forwarding rule.")
    return rule


def _cas(b: Backend, raw_id: str, region: str) -> dict[str, Any]:
    cert = b.state.cas_certs.get(int(raw_id)) if raw_id.isdigit() else None
    if cert is None or cert["Region"] != region:
        # assumption: the identifier must name a CAS certificate of this account; code assumed.
        raise ApiError(400, "InvalidCertificate", f"The certificate {raw_id}-{region} does "
                       "not exist.")
    return cert


@action(DDOS, "AssociateWebCert", "Domain")
def associate_web_cert(b: Backend, p: Params) -> dict[str, Any]:
    rule = _rule(b, p["Domain"])
    if not any(t["ProxyType"] in ("https", "websockets") for t in rule["ProxyTypes"]):
        # assumption: a website without an HTTPS port takes no certificate.
        raise ApiError(400, "InvalidParameter", "The website forwards no HTTPS.")
    if p.get("CertIdentifier") and p.get("CertId"):
        # model: CertIdentifier "cannot be used together with CertId".
        raise ApiError(400, "InvalidParameter",
                       "CertIdentifier cannot be used together with CertId.")
    if p.get("CertIdentifier"):
        head, _, region = p["CertIdentifier"].partition("-")
        cert = _cas(b, head, region)
    elif p.get("CertId"):
        region = p.get("CertRegion") or "cn-hangzhou"  # model: default cn-hangzhou
        cert = _cas(b, p["CertId"], region)
    elif p.get("Cert") and p.get("Key") and p.get("CertName"):
        # model: Cert with CertName and Key; assumption: kept product-side, not in CAS.
        parse_leaf_and_key(p["Cert"], p["Key"], "Cert")
        rule.update(CertName=p["CertName"], UserCertName="", CertRegion="", CasId=None)
        return {}
    else:
        raise ApiError(400, "InvalidParameter", "No certificate given.")  # assumption
    rule.update(CertName=cert["Name"], UserCertName=cert["Name"], CertRegion=region,
                CasId=cert["Id"])
    return {}


@action(DDOS, "DescribeWebRules")
def describe_web_rules(b: Backend, p: Params) -> dict[str, Any]:
    number = int_param(p, "PageNumber", 1)
    size = int_param(p, "PageSize", 10, high=10)  # model: 1 to 10
    query = (p.get("Domain") or "").lower()
    exact = (p.get("QueryDomainPattern") or "fuzzy") == "exact"  # model: fuzzy default
    rows = []
    for domain in sorted(rules(b.state)):
        if query and (domain != query if exact else query not in domain):
            continue
        row = copy.deepcopy(rules(b.state)[domain])
        del row["CasId"]
        rows.append(row)
    return {"WebRules": rows[(number - 1) * size: number * size], "TotalCount": len(rows)}


# SDK cas20200407 _list_certificates_response_body.py: UsingProductList. assumption: "DDOS".
CAS_USER_SOURCES.append(lambda b, cert_id: [
    {"CloudProduct": "DDOS", "Domain": n} for n, r in sorted(rules(b.state).items())
    if r["CasId"] == cert_id])
