"""WAF 3.0 (API 2021-10-01): CNAME-access domains and cloud-native access ports.

Sources: alibabacloud_waf_openapi20211001 7.8.7 models (_describe_instance_request.py /
_response_body.py; _describe_domain_detail_request.py: InstanceId and RegionId required;
_describe_domain_detail_response_body.py: Listen, Redirect with Backends as
[{"Backend"}]; _modify_domain_request.py: InstanceId, Listen, Redirect, RegionId required,
Listen/Redirect sent as JSON strings, Redirect.Backends a list of strings;
_describe_domains_*; _modify_cloud_resource_default_cert_request.py: CertId,
CloudResourceId, InstanceId, RegionId required; _create_cloud_resource_extension_cert_request.py
and _delete_cloud_resource_extension_cert_request.py: the same four required;
_describe_cloud_resource_access_port_details_*: InstanceId and ResourceInstanceId
required) and the WAF 3.0 API reference (ModifyDomain: "the full configuration").

State ``state.extra["waf"]``: "instances": region -> InstanceId; "domains": domain ->
{"InstanceId", "Domain", "DomainId", "Cname", "Status", "Listen", "Redirect"} (read
shape); "ports": (ResourceInstanceId, Port) -> {"CloudResourceId", "Port", "Protocol",
"Certificates": [{"CertificateId", "AppliedType", "CertificateName"}]}.
"""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

from .casref import by_identifier, st
from .products import CAS_USER_SOURCES, HOSTS, VERSIONS, Params, action, int_param, page
from .state import ApiError, Backend

WAF = "waf"
VERSIONS["2021-10-01"] = WAF  # alibabacloud_waf_openapi20211001 client: version='2021-10-01'
HOSTS[WAF] = "wafopenapi.cn-hangzhou.aliyuncs.com"

_ids = itertools.count(1)


def _st(x: Any) -> dict[str, Any]:
    return st(x, WAF, instances=dict, domains=dict, ports=dict)


def add_instance(emu: Any, region: str = "cn-hangzhou") -> str:
    with emu.state.lock:
        return str(_st(emu)["instances"].setdefault(region, f"waf_v3prepaid_public_cn-"
                                                            f"{next(_ids):04d}"))


def add_domain(emu: Any, domain: str, *, https_ports: tuple[int, ...] = (443,),
               region: str = "cn-hangzhou") -> dict[str, Any]:
    """A CNAME-access domain made in the console, with settings acmeali must not touch."""
    instance = add_instance(emu, region)
    with emu.state.lock:
        row = {
            "InstanceId": instance, "Domain": domain, "DomainId": f"{domain}-waf",
            "Cname": f"{next(_ids):x}.yundunwaf5.com", "Status": 1,
            "Listen": {"HttpPorts": [80], "HttpsPorts": list(https_ports), "CertId": None,
                       "CipherSuite": 2, "CustomCiphers": ["ECDHE-ECDSA-AES128-GCM-SHA256"],
                       "TLSVersion": "tlsv1.2", "EnableTLSv3": True, "Http2Enabled": True,
                       "FocusHttps": True, "ExclusiveIp": False, "IPv6Enabled": False,
                       "ProtectionResource": "share", "XffHeaderMode": 2,
                       "XffHeaders": ["X-Real-Forwarded-For"], "HstsMaxAge": 31536000,
                       "HstsIncludeSubDomain": True, "HstsPreload": False},
            "Redirect": {"Backends": [{"Backend": "10.0.0.7"}, {"Backend": "10.0.0.8"}],
                         "BackupBackends": [{"Backend": "10.0.9.9"}],
                         "Loadbalance": "iphash", "FocusHttpBackend": True,
                         "SniEnabled": True, "SniHost": "origin.internal",
                         "ConnectTimeout": 7, "ReadTimeout": 121, "WriteTimeout": 119,
                         "Keepalive": True, "KeepaliveRequests": 1000,
                         "KeepaliveTimeout": 15, "Retry": True,
                         "RequestHeaders": [{"Key": "X-Origin", "Value": "waf"}],
                         "XffProto": True, "MaxBodySize": 2}}
        _st(emu)["domains"][domain] = row
        return row


def add_cloud_port(emu: Any, resource: str, port: int, region: str = "cn-hangzhou",
                   extensions: tuple[str, ...] = ()) -> str:
    """A port of a cloud resource (e.g. an ALB instance) added to WAF (cloud-native), with
    extension certificates someone else added."""
    add_instance(emu, region)
    cloud_id = f"{resource}-{port}-alb"
    with emu.state.lock:
        _st(emu)["ports"][(resource, port)] = {
            "CloudResourceId": cloud_id, "Port": port, "Protocol": "https",
            "Http2Enabled": True, "Status": 1,
            "Certificates": [{"CertificateId": x, "AppliedType": "extension",
                              "CertificateName": "console"} for x in extensions]}
    return cloud_id


def _instance(b: Backend, p: Params) -> str:
    instance = _st(b)["instances"].get(p["RegionId"])
    if instance is None or p.get("InstanceId", instance) != instance:
        # API reference, common errors: the instance does not exist. assumption: code.
        raise ApiError(400, "Waf.Instance.NotExist", "The WAF instance does not exist.")
    return str(instance)


def _domain(b: Backend, p: Params) -> dict[str, Any]:
    instance = _instance(b, p)
    row = _st(b)["domains"].get(p.get("Domain", "").lower())
    if row is None or row["InstanceId"] != instance:
        # assumption: code for a domain not added in CNAME mode.
        raise ApiError(400, "Waf.Domain.NotExist", f"The domain {p.get('Domain')} does not "
                       "exist.")
    return row


@action(WAF, "DescribeInstance")
def describe_instance(b: Backend, p: Params) -> dict[str, Any]:
    # model: DescribeInstanceResponseBody has no InstanceId when the account has none.
    instance = _st(b)["instances"].get(p.get("RegionId", ""))
    if instance is None:
        return {}
    return {"InstanceId": instance, "Edition": "ultimate", "Status": 1, "InDebt": "0",
            "RegionId": p["RegionId"], "PayType": "PREPAY"}


@action(WAF, "DescribeDomainDetail", "InstanceId", "RegionId")
def describe_domain_detail(b: Backend, p: Params) -> dict[str, Any]:
    row = _domain(b, p)
    out = copy.deepcopy({k: v for k, v in row.items() if k != "InstanceId"})
    cert = out["Listen"].get("CertId")
    if cert:
        c = by_identifier(b, cert, "WAF")
        out["CertDetail"] = {"Id": cert, "Name": c["Name"], "CommonName": c["Common"],
                             "Sans": c["Sans"].split(","), "StartTime": c["NotBefore"],
                             "EndTime": c["NotAfter"]}
    return out


def _json(p: Params, name: str) -> dict[str, Any]:
    try:
        value = json.loads(p[name])
    except ValueError:
        value = None
    if not isinstance(value, dict):
        # model: Listen/Redirect are objects, serialised as JSON (array_to_string 'json').
        raise ApiError(400, "InvalidParameter", f"{name} is not a JSON object.")
    return value


@action(WAF, "ModifyDomain", "InstanceId", "Listen", "Redirect", "RegionId")
def modify_domain(b: Backend, p: Params) -> dict[str, Any]:
    row = _domain(b, p)
    listen, redirect = _json(p, "Listen"), _json(p, "Redirect")
    backends = redirect.get("Backends")
    if not isinstance(backends, list) or not backends \
            or not all(isinstance(x, str) for x in backends):
        # model ModifyDomainRequestRedirect.backends: List[str], required for IP/domain
        # back ends. assumption: code.
        raise ApiError(400, "InvalidParameter.Backends", "Redirect.Backends must be a list "
                       "of addresses.")
    if listen.get("HttpsPorts") and not listen.get("CertId"):
        # API reference ModifyDomain: CertId is required when HttpsPorts is set.
        # assumption: code.
        raise ApiError(400, "InvalidParameter.CertId", "CertId is required with HTTPS ports.")
    if listen.get("CertId"):
        by_identifier(b, listen["CertId"], "WAF")
    # API reference: ModifyDomain replaces the domain's whole configuration; what is not
    # sent is reset (the strictest reading: it is gone).
    # assumption: an empty list is "not set" (the SDK's to_map sends [] for every list
    # field the caller left out, e.g. BackendPorts), so it is stored as absent.
    stored = {k: v for k, v in redirect.items() if v != []}
    for key in ("Backends", "BackupBackends"):
        if isinstance(stored.get(key), list):
            stored[key] = [{"Backend": x} for x in stored[key]]
    row["Listen"], row["Redirect"] = listen, stored
    return {"DomainInfo": {"Domain": row["Domain"], "DomainId": row["DomainId"],
                           "Cname": row["Cname"]}}


@action(WAF, "DescribeDomains", "InstanceId")
def describe_domains(b: Backend, p: Params) -> dict[str, Any]:
    instance = _instance(b, p)
    rows = [r for r in _st(b)["domains"].values() if r["InstanceId"] == instance]
    size = int_param(p, "PageSize", 10, high=100)  # model: PageSize default 10
    items = [{"Domain": r["Domain"], "DomainId": r["DomainId"], "Cname": r["Cname"],
              "Status": r["Status"],
              "ListenPorts": {"Http": r["Listen"].get("HttpPorts") or [],
                              "Https": r["Listen"].get("HttpsPorts") or []}}
             for r in page(sorted(rows, key=lambda r: r["Domain"]),
                           int_param(p, "PageNumber", 1), size)]
    return {"Domains": items, "TotalCount": len(rows)}


@action(WAF, "DescribeCloudResourceAccessPortDetails", "InstanceId", "ResourceInstanceId")
def describe_access_ports(b: Backend, p: Params) -> dict[str, Any]:
    _instance(b, p)
    rows = [copy.deepcopy(v) for (res, port), v in sorted(_st(b)["ports"].items())
            if res == p["ResourceInstanceId"]
            and (not p.get("Port") or int(p["Port"]) == port)]
    return {"AccessPortDetails": rows, "TotalCount": len(rows)}


@action(WAF, "ModifyCloudResourceDefaultCert", "CertId", "CloudResourceId", "InstanceId",
        "RegionId")
def modify_default_cert(b: Backend, p: Params) -> dict[str, Any]:
    _instance(b, p)
    port = next((v for v in _st(b)["ports"].values()
                 if v["CloudResourceId"] == p["CloudResourceId"]), None)
    if port is None:
        # assumption: code for an unknown cloud resource.
        raise ApiError(400, "Waf.CloudResource.NotExist", "The cloud resource does not exist.")
    c = by_identifier(b, p["CertId"], "WAF")
    # model DescribeCloudResourceAccessPortDetails...Certificates: AppliedType default /
    # extension; the default one is replaced, extensions stay.
    port["Certificates"] = [x for x in port["Certificates"] if x["AppliedType"] != "default"]
    port["Certificates"].insert(0, {"CertificateId": p["CertId"], "AppliedType": "default",
                                    "CertificateName": c["Name"]})
    return {}


def _port_by_cloud_id(b: Backend, cloud_id: str) -> dict[str, Any]:
    port = next((v for v in _st(b)["ports"].values() if v["CloudResourceId"] == cloud_id), None)
    if port is None:
        # assumption: code for an unknown cloud resource.
        raise ApiError(400, "Waf.CloudResource.NotExist", "The cloud resource does not exist.")
    return port


@action(WAF, "CreateCloudResourceExtensionCert", "CertId", "CloudResourceId", "InstanceId",
        "RegionId")
def create_extension_cert(b: Backend, p: Params) -> dict[str, Any]:
    _instance(b, p)
    port = _port_by_cloud_id(b, p["CloudResourceId"])
    c = by_identifier(b, p["CertId"], "WAF")
    if any(x["CertificateId"] == p["CertId"] for x in port["Certificates"]):
        # assumption: adding a certificate the port already has is refused.
        raise ApiError(400, "Waf.Cert.Exist", "The certificate is already added.")
    port["Certificates"].append({"CertificateId": p["CertId"], "AppliedType": "extension",
                                 "CertificateName": c["Name"]})
    return {}


@action(WAF, "DeleteCloudResourceExtensionCert", "CertId", "CloudResourceId", "InstanceId",
        "RegionId")
def delete_extension_cert(b: Backend, p: Params) -> dict[str, Any]:
    _instance(b, p)
    port = _port_by_cloud_id(b, p["CloudResourceId"])
    keep = [x for x in port["Certificates"] if not (x["CertificateId"] == p["CertId"]
                                                   and x["AppliedType"] == "extension")]
    if len(keep) == len(port["Certificates"]):
        # assumption: deleting an extension the port does not have is refused.
        raise ApiError(404, "Waf.Cert.NotExist", "The extension certificate does not exist.")
    port["Certificates"] = keep
    return {}


def _cas_users(b: Backend, cert_id: int) -> list[dict[str, Any]]:
    """CAS ListCertificates UsingProductList: WAF domains and cloud ports on the certificate."""
    ident = f"{cert_id}-{b.state.cas_region}"
    out = [{"CloudProduct": "WAF", "Domain": d} for d, r in _st(b)["domains"].items()
           if r["Listen"].get("CertId") == ident]
    out += [{"CloudProduct": "WAF", "Domain": v["CloudResourceId"]}
            for v in _st(b)["ports"].values()
            if any(c["CertificateId"] == ident for c in v["Certificates"])]
    return out


CAS_USER_SOURCES.append(_cas_users)
