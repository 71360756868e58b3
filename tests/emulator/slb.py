"""CLB (Classic Load Balancer, SLB API 2014-05-15): server certificates, HTTPS listeners
and SNI domain extensions.

Sources: alibabacloud_slb20140515 3.3.31 models (_upload_server_certificate_request.py:
RegionId required, AliCloudCertificateId/Name/RegionId or ServerCertificate+PrivateKey;
_describe_server_certificates_response_body.py; _set_load_balancer_httpslistener_attribute_
request.py: LoadBalancerId and ListenerPort required; _describe_domain_extensions_*;
_set_domain_extension_attribute_request.py: DomainExtensionId and RegionId required;
_delete_server_certificate_request.py) and the CLB API reference.

State ``state.extra["slb"]``: "certs": ServerCertificateId -> the DescribeServerCertificates
row; "listeners": (LoadBalancerId, port) -> {"RegionId", "ServerCertificateId"};
"extensions": DomainExtensionId -> {"LoadBalancerId", "ListenerPort", "Domain",
"ServerCertificateId", "RegionId"}.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from .products import HOSTS, VERSIONS, Params, action, parse_leaf_and_key
from .state import (
    ApiError,
    Backend,
    common_name,
    dns_sans,
    fingerprints,
    load_chain,
    to_ms,
    validity,
)

SLB = "slb"
VERSIONS["2014-05-15"] = SLB  # alibabacloud_slb20140515 client: _version = '2014-05-15'
HOSTS[SLB] = "slb.aliyuncs.com"

_ids = itertools.count(1)


def _st(b: Backend) -> dict[str, Any]:
    return b.state.extra.setdefault(SLB, {"certs": {}, "listeners": {}, "extensions": {}})


def add_https_listener(b: Backend, lb_id: str, port: int, region: str = "cn-hangzhou",
                       domains: tuple[str, ...] = ()) -> None:
    """An HTTPS listener (and SNI domain extensions) made in the console beforehand."""
    st = _st(b)
    st["listeners"][(lb_id, int(port))] = {"RegionId": region, "ServerCertificateId": None}
    for domain in domains:
        ext_id = f"de-{next(_ids):08d}"
        st["extensions"][ext_id] = {"DomainExtensionId": ext_id, "LoadBalancerId": lb_id,
                                    "ListenerPort": int(port), "Domain": domain,
                                    "ServerCertificateId": None, "RegionId": region}


def _region(p: Params) -> str:
    region = p.get("RegionId", "")
    if not region:  # model: RegionId "This parameter is required." (Upload, SetDomainExt...)
        raise ApiError(400, "MissingRegionId", "RegionId is mandatory for this action.")
    return region


def _cert(b: Backend, cert_id: str, region: str) -> dict[str, Any]:
    cert = _st(b)["certs"].get(cert_id)
    if cert is None or cert["RegionId"] != region:
        # CLB API docs, SetLoadBalancerHTTPSListenerAttribute errors:
        # ServerCertificateId.NotFound (a certificate of another region is not found).
        raise ApiError(404, "ServerCertificateId.NotFound",
                       f"The specified ServerCertificateId {cert_id} does not exist.")
    return cert


def _listener(b: Backend, p: Params) -> dict[str, Any]:
    key = (p["LoadBalancerId"], int(p["ListenerPort"]))
    lsn = _st(b)["listeners"].get(key)
    if lsn is None or (p.get("RegionId") and p["RegionId"] != lsn["RegionId"]):
        # CLB API docs: InvalidParameter / "The specified resource does not exist."
        # assumption: code ResourceNotFound for a missing listener or load balancer.
        raise ApiError(404, "ResourceNotFound",
                       f"The listener {key[0]}:{key[1]} does not exist.")
    return lsn


@action(SLB, "UploadServerCertificate", "RegionId")
def upload_server_certificate(b: Backend, p: Params) -> dict[str, Any]:
    region = _region(p)
    cas_id = p.get("AliCloudCertificateId")
    if cas_id:
        cas = b.state.cas_certs.get(int(cas_id)) if cas_id.isdigit() else None
        cas_region = p.get("AliCloudCertificateRegionId") or "cn-hangzhou"
        if cas is None or cas["Region"] != cas_region:
            # assumption: code; the CAS region is part of the lookup, as for CDN.
            raise ApiError(404, "AliCloudCertificate.NotFound",
                           f"The Alibaba Cloud certificate {cas_id} does not exist in "
                           f"{cas_region}.")
        pem, name = cas["Cert"], p.get("ServerCertificateName") or p.get(
            "AliCloudCertificateName") or cas["Name"]
    else:
        pem, key = p.get("ServerCertificate", ""), p.get("PrivateKey", "")
        parse_leaf_and_key(pem, key, "server")
        name = p.get("ServerCertificateName") or ""
    leaf = load_chain(pem, "server certificate")[0]
    sha1, _ = fingerprints(leaf)
    start, end = validity(leaf)
    cert_id = f"{next(_ids):05d}-{region}"  # real ids look like 1231579085529123_16...
    row = {
        "ServerCertificateId": cert_id, "ServerCertificateName": name, "RegionId": region,
        # assumption: Fingerprint format, colon-separated lower-case SHA-1 (console shows so).
        "Fingerprint": ":".join(sha1[i:i + 2] for i in range(0, 40, 2)).lower(),
        "CommonName": common_name(leaf.subject),
        "SubjectAlternativeNames": {"SubjectAlternativeName": dns_sans(leaf)},
        "IsAliCloudCertificate": 1 if cas_id else 0,
        "AliCloudCertificateId": cas_id or "", "AliCloudCertificateName":
            p.get("AliCloudCertificateName", ""),
        "ExpireTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"), "ExpireTimeStamp": to_ms(end),
        "CreateTime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "CreateTimeStamp": to_ms(start),
    }
    _st(b)["certs"][cert_id] = row
    return dict(row)


@action(SLB, "DescribeServerCertificates")
def describe_server_certificates(b: Backend, p: Params) -> dict[str, Any]:
    region = _region(p)  # assumption: RegionId needed to list (certificates are regional)
    # assumption: an unknown ServerCertificateId filters to an empty list, not an error (the
    # API reference documents the filter only); the client treats both as "gone".
    want = p.get("ServerCertificateId")
    rows = [dict(c) for c in _st(b)["certs"].values()
            if c["RegionId"] == region and (not want or c["ServerCertificateId"] == want)]
    return {"ServerCertificates": {"ServerCertificate": rows}}


@action(SLB, "DeleteServerCertificate", "ServerCertificateId")
def delete_server_certificate(b: Backend, p: Params) -> dict[str, Any]:
    region = _region(p)
    cert_id = p["ServerCertificateId"]
    _cert(b, cert_id, region)
    st = _st(b)
    users = [f"{k[0]}:{k[1]}" for k, v in st["listeners"].items()
             if v["ServerCertificateId"] == cert_id]
    users += [e["DomainExtensionId"] for e in st["extensions"].values()
              if e["ServerCertificateId"] == cert_id]
    if users:
        # CLB API docs, DeleteServerCertificate: a certificate in use cannot be deleted.
        # assumption: code.
        raise ApiError(400, "ServerCertificate.InUse",
                       f"The server certificate is in use by {', '.join(users)}.")
    del st["certs"][cert_id]
    return {}


@action(SLB, "DescribeLoadBalancerHTTPSListenerAttribute", "LoadBalancerId", "ListenerPort")
def describe_https_listener(b: Backend, p: Params) -> dict[str, Any]:
    lsn = _listener(b, p)
    exts = [{"DomainExtensionId": e["DomainExtensionId"], "Domain": e["Domain"],
             "ServerCertificateId": e["ServerCertificateId"]}
            for e in _st(b)["extensions"].values()
            if (e["LoadBalancerId"], e["ListenerPort"]) == (p["LoadBalancerId"],
                                                            int(p["ListenerPort"]))]
    return {"LoadBalancerId": p["LoadBalancerId"], "ListenerPort": int(p["ListenerPort"]),
            "Status": "running", "ServerCertificateId": lsn["ServerCertificateId"] or "",
            "DomainExtensions": {"DomainExtension": exts}}


@action(SLB, "SetLoadBalancerHTTPSListenerAttribute", "LoadBalancerId", "ListenerPort")
def set_https_listener(b: Backend, p: Params) -> dict[str, Any]:
    lsn = _listener(b, p)
    if p.get("ServerCertificateId"):
        _cert(b, p["ServerCertificateId"], lsn["RegionId"])
        lsn["ServerCertificateId"] = p["ServerCertificateId"]
    return {}


@action(SLB, "DescribeDomainExtensions", "RegionId", "LoadBalancerId", "ListenerPort")
def describe_domain_extensions(b: Backend, p: Params) -> dict[str, Any]:
    _listener(b, p)
    rows = [{"DomainExtensionId": e["DomainExtensionId"], "Domain": e["Domain"],
             "ServerCertificateId": e["ServerCertificateId"] or ""}
            for e in _st(b)["extensions"].values()
            if (e["LoadBalancerId"], e["ListenerPort"]) == (p["LoadBalancerId"],
                                                            int(p["ListenerPort"]))
            and (not p.get("DomainExtensionId")
                 or e["DomainExtensionId"] == p["DomainExtensionId"])]
    return {"DomainExtensions": {"DomainExtension": rows}}


@action(SLB, "SetDomainExtensionAttribute", "RegionId", "DomainExtensionId")
def set_domain_extension(b: Backend, p: Params) -> dict[str, Any]:
    ext = _st(b)["extensions"].get(p["DomainExtensionId"])
    if ext is None or ext["RegionId"] != p["RegionId"]:
        # assumption: code.
        raise ApiError(404, "DomainExtensionId.NotFound",
                       f"The domain extension {p['DomainExtensionId']} does not exist.")
    if p.get("ServerCertificateId"):
        _cert(b, p["ServerCertificateId"], ext["RegionId"])
        ext["ServerCertificateId"] = p["ServerCertificateId"]
    return {}
