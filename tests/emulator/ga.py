"""Global Accelerator (GA API 2019-11-20): HTTPS listener certificates, default and
per-domain additional ones.

Sources: alibabacloud_ga20191120 3.0.2 models (_update_listener_request.py: ListenerId
required, Certificates[].Id; _associate_additional_certificates_with_listener_request.py:
AcceleratorId, Certificates[{Domain, Id}], ListenerId, RegionId required, "Each domain name
can be bound to only one additional certificate", at most 10 at a time;
_update_additional_certificate_with_listener_request.py: AcceleratorId, CertificateId,
Domain, ListenerId, RegionId required; _dissociate_additional_certificates_from_listener_
request.py; _list_listener_certificates_request.py: MaxResults 1 to 50, Role default|
additional; _list_listener_certificates_response_body.py: State active|updating).

State ``state.extra["ga"]["listeners"]``: ListenerId -> {"AcceleratorId", "ListenerId",
"Protocol", "Default": identifier, "Additional": {domain: identifier}, "Updating": {slot:
reads left}, "Settings": {the listener's other attributes}}; slot is "" (default) or a domain.
"""

from __future__ import annotations

from typing import Any

from .products import CAS_USER_SOURCES, HOSTS, VERSIONS, Params, action, int_param
from .state import ApiError, Backend, EmulatorState

GA = "ga"
VERSIONS["2019-11-20"] = GA  # alibabacloud_ga20191120 client: _version = '2019-11-20'
HOSTS[GA] = "ga.cn-hangzhou.aliyuncs.com"  # client _endpoint_map


def listeners(state: EmulatorState) -> dict[str, dict[str, Any]]:
    return state.extra.setdefault(GA, {}).setdefault("listeners", {})


def add_listener(state: EmulatorState, accelerator_id: str, listener_id: str,
                 protocol: str = "https") -> dict[str, Any]:
    with state.lock:
        lsn = {"AcceleratorId": accelerator_id, "ListenerId": listener_id,
               "Protocol": protocol, "Default": None, "Additional": {}, "Updating": {},
               # model UpdateListenerRequest: the listener's other attributes.
               "Settings": {"Name": "web", "Description": "made in the console",
                            "PortRanges": [{"FromPort": 443, "ToPort": 443}],
                            "SecurityPolicyId": "tls_cipher_policy_1_2_strict_with_1_3",
                            "HttpVersion": "http2", "IdleTimeout": 15, "RequestTimeout": 60,
                            "ClientAffinity": "SOURCE_IP",
                            "XForwardedForConfig": {"XForwardedForGaIdEnabled": True}}}
        listeners(state)[listener_id] = lsn
        return lsn


def _region(p: Params) -> None:
    # model: RegionId "Set the value to cn-hangzhou"; assumption: another value is refused.
    if p.get("RegionId", "cn-hangzhou") != "cn-hangzhou":
        raise ApiError(400, "InvalidRegionId", f"The region {p['RegionId']} is not valid.")


def _listener(b: Backend, p: Params, *, accelerator: bool = True) -> dict[str, Any]:
    _region(p)
    lsn = listeners(b.state).get(p["ListenerId"])
    if lsn is None or (accelerator and lsn["AcceleratorId"] != p.get("AcceleratorId")):
        # assumption: code (GA error pages: NotExist.Listener).
        raise ApiError(404, "NotExist.Listener", f"The listener {p['ListenerId']} does not "
                       "exist.")
    return lsn


def _unlocked(lsn: dict[str, Any]) -> None:
    if lsn["Updating"]:
        # assumption: a listener whose certificate is still updating refuses another change
        # (GA error pages: StateError.Listener); code assumed.
        raise ApiError(400, "StateError.Listener",
                       f"The listener {lsn['ListenerId']} is in the updating state.")


def _check_cert(b: Backend, ident: str) -> None:
    head, _, region = ident.partition("-")
    cert = b.state.cas_certs.get(int(head)) if head.isdigit() else None
    if cert is None or cert["Region"] != region:
        # assumption: a CAS identifier of this account is required; code assumed.
        raise ApiError(404, "NotExist.Certificate", f"The certificate {ident} does not exist.")


def _indexed(p: Params, prefix: str, field: str) -> list[str]:
    out, n = [], 1
    while f"{prefix}.{n}.{field}" in p:
        out.append(p[f"{prefix}.{n}.{field}"])
        n += 1
    return out


def _https(lsn: dict[str, Any]) -> None:
    if lsn["Protocol"] != "https":  # model: "Only HTTPS listeners are supported."
        raise ApiError(400, "NotSupport.Protocol", "Only HTTPS listeners are supported.")


@action(GA, "UpdateListener", "ListenerId")
def update_listener(b: Backend, p: Params) -> dict[str, Any]:
    lsn = _listener(b, p, accelerator=False)
    _unlocked(lsn)
    # assumption: attributes not sent stay as they were (certimate sends the certificate
    # only). Any sent here would be applied:
    for key in ("Name", "Description", "SecurityPolicyId", "HttpVersion", "IdleTimeout",
                "RequestTimeout", "ClientAffinity"):
        if key in p:
            lsn["Settings"][key] = p[key]
    certs = _indexed(p, "Certificates", "Id")
    if certs:
        _https(lsn)
        _check_cert(b, certs[0])
        if lsn["Default"] != certs[0]:
            lsn["Default"] = certs[0]
            lsn["Updating"][""] = 1  # assumption: reads as updating once, then active
    return {}


@action(GA, "AssociateAdditionalCertificatesWithListener", "AcceleratorId", "ListenerId",
        "RegionId")
def associate(b: Backend, p: Params) -> dict[str, Any]:
    lsn = _listener(b, p)
    _https(lsn)
    _unlocked(lsn)
    domains, ids = _indexed(p, "Certificates", "Domain"), _indexed(p, "Certificates", "Id")
    if not ids or len(domains) != len(ids):  # model: Certificates, Domain and Id required
        raise ApiError(400, "MissingCertificates", "Certificates is mandatory.")
    if len(ids) > 10:  # model: up to 10 at a time
        raise ApiError(400, "QuotaExceeded.Certificates", "At most 10 certificates.")
    for domain, ident in zip(domains, ids, strict=True):
        _check_cert(b, ident)
        if domain.lower() in lsn["Additional"]:
            # model: "Each domain name can be bound to only one additional certificate".
            raise ApiError(400, "Exist.Domain", f"The domain {domain} already has an "
                           "additional certificate.")
    for domain, ident in zip(domains, ids, strict=True):
        lsn["Additional"][domain.lower()] = ident
        lsn["Updating"][domain.lower()] = 1
    return {"ListenerId": lsn["ListenerId"]}


@action(GA, "UpdateAdditionalCertificateWithListener", "AcceleratorId", "CertificateId",
        "Domain", "ListenerId", "RegionId")
def update_additional(b: Backend, p: Params) -> dict[str, Any]:
    lsn = _listener(b, p)
    _unlocked(lsn)
    domain = p["Domain"].lower()
    if domain not in lsn["Additional"]:
        # model: "The domain name associated with the additional certificate that you want
        # to replace"; assumption: code.
        raise ApiError(404, "NotExist.Domain", f"The domain {domain} has no additional "
                       "certificate.")
    _check_cert(b, p["CertificateId"])
    lsn["Additional"][domain] = p["CertificateId"]
    lsn["Updating"][domain] = 1
    return {"ListenerId": lsn["ListenerId"]}


@action(GA, "DissociateAdditionalCertificatesFromListener", "AcceleratorId", "ListenerId",
        "RegionId")
def dissociate(b: Backend, p: Params) -> dict[str, Any]:
    lsn = _listener(b, p)
    _unlocked(lsn)
    n, domains = 1, []
    while f"Domains.{n}" in p:
        domains.append(p[f"Domains.{n}"].lower())
        n += 1
    if not domains:  # model: Domains required
        raise ApiError(400, "MissingDomains", "Domains is mandatory.")
    for domain in domains:
        lsn["Additional"].pop(domain, None)
    return {"ListenerId": lsn["ListenerId"]}


@action(GA, "ListListenerCertificates", "AcceleratorId", "ListenerId", "RegionId")
def list_listener_certificates(b: Backend, p: Params) -> dict[str, Any]:
    lsn = _listener(b, p)
    size = int_param(p, "MaxResults", 20, high=50)  # model: 1 to 50, default 20
    role = p.get("Role")
    rows: list[dict[str, Any]] = []
    if lsn["Default"] and role in (None, "", "default"):
        rows.append({"CertificateId": lsn["Default"], "IsDefault": True,
                     "State": "updating" if "" in lsn["Updating"] else "active"})
    if role in (None, "", "additional"):
        for domain, ident in sorted(lsn["Additional"].items()):
            rows.append({"CertificateId": ident, "IsDefault": False, "Domain": domain,
                         "State": "updating" if domain in lsn["Updating"] else "active"})
    for slot in list(lsn["Updating"]):  # one read settles what was updating
        lsn["Updating"][slot] -= 1
        if lsn["Updating"][slot] <= 0:
            del lsn["Updating"][slot]
    token = p.get("NextToken", "")
    start = int(token) if token.isdigit() else 0
    nxt = str(start + size) if start + size < len(rows) else ""
    return {"Certificates": rows[start:start + size], "TotalCount": len(rows),
            "MaxResults": size, "NextToken": nxt}


def _ga_users(b: Backend, cert_id: int) -> list[dict[str, Any]]:
    # SDK cas20200407 _list_certificates_response_body.py: UsingProductList.
    # assumption: product name "GA"; identifiers "<CertId>-<region>".
    out = []
    for lid, lsn in sorted(listeners(b.state).items()):
        idents = [lsn["Default"], *lsn["Additional"].values()]
        if any(str(i or "").partition("-")[0] == str(cert_id) for i in idents):
            out.append({"CloudProduct": "GA", "Domain": lid})
    return out


CAS_USER_SOURCES.append(_ga_users)
