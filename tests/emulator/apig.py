"""Cloud-native API Gateway (APIG, API 2024-03-27, ROA): domains.

Sources: alibabacloud_apig20240327 11.6.0 (client.py: GET/PUT /v1/domains/{domainId},
GET /v1/domains; models _get_domain_response_body.py: data{domainId, name, protocol,
certIdentifier, forceHttps, tlsMin, tlsMax, http2Option, mTLSEnabled, caCertIdentifier,
clientCACert, tlsCipherSuitesConfig, domainScope}; _update_domain_request.py;
_list_domains_response_body.py: data{items, totalSize, pageNumber, pageSize}) and the APIG
API reference (UpdateDomain: certIdentifier required when protocol is HTTPS).

State ``state.extra["apig"]``: "domains": domainId -> the data (wire names).
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from . import roa
from .casref import by_identifier, st
from .products import CAS_USER_SOURCES, HOSTS, VERSIONS, Params, action, int_param, page
from .state import ApiError, Backend

APIG = "apig"
VERSIONS["2024-03-27"] = APIG  # alibabacloud_apig20240327 client: version='2024-03-27'
HOSTS[APIG] = "apig.cn-hangzhou.aliyuncs.com"

_ids = itertools.count(1)
UPDATABLE = ("protocol", "certIdentifier", "forceHttps", "tlsMin", "tlsMax", "http2Option",
             "mTLSEnabled", "caCertIdentifier", "clientCACert", "tlsCipherSuitesConfig",
             "domainScope")


def _st(x: Any) -> dict[str, Any]:
    return st(x, APIG, domains=dict)


def add_domain(emu: Any, name: str, *, protocol: str = "HTTPS") -> str:
    with emu.state.lock:
        domain_id = f"d-{next(_ids):04d}apig"
        _st(emu)["domains"][domain_id] = {
            "domainId": domain_id, "name": name, "protocol": protocol,
            "certIdentifier": None, "forceHttps": True, "tlsMin": "TLS 1.2",
            "tlsMax": "TLS 1.3", "http2Option": "Open", "mTLSEnabled": False,
            "caCertIdentifier": None, "clientCACert": None, "domainScope": "Gateway",
            "tlsCipherSuitesConfig": {"configType": "Custom",
                                      "tlsCipherSuite": [{"name": "ECDHE-ECDSA-AES128-GCM-"
                                                                   "SHA256"}]},
            "resourceGroupId": "rg-acfm", "createFrom": "Console"}
        return domain_id


def _domain(b: Backend, p: Params) -> dict[str, Any]:
    row = _st(b)["domains"].get(roa.last_segment(p))
    if row is None:
        # APIG API reference: 404 NotFound.Domain. assumption: code.
        raise ApiError(404, "NotFound.Domain", "The domain does not exist.")
    return row


@action(APIG, "GetDomain")
def get_domain(b: Backend, p: Params) -> dict[str, Any]:
    return {"code": "Ok", "message": "success", "data": copy.deepcopy(_domain(b, p))}


@action(APIG, "ListDomains")
def list_domains(b: Backend, p: Params) -> dict[str, Any]:
    rows = [copy.deepcopy(r) for _, r in sorted(_st(b)["domains"].items())]
    size = int_param(p, "pageSize", 10, high=100)
    number = int_param(p, "pageNumber", 1)
    return {"code": "Ok", "data": {"items": page(rows, number, size), "totalSize": len(rows),
                                   "pageNumber": number, "pageSize": size}}


@action(APIG, "UpdateDomain")
def update_domain(b: Backend, p: Params) -> dict[str, Any]:
    row = _domain(b, p)
    body = roa.body(p)
    protocol = body.get("protocol")
    if not protocol:  # assumption: the model does not mark it required; strictest: it is
        raise ApiError(400, "MissingParameter.protocol", "protocol is required.")
    if protocol == "HTTPS":
        if not body.get("certIdentifier"):
            raise ApiError(400, "MissingParameter.certIdentifier",
                           "certIdentifier is required for HTTPS.")
        by_identifier(b, body["certIdentifier"], "APIG")
    # assumption (strictest): UpdateDomain replaces every updatable field; one not sent
    # goes back to its default (None).
    for key in UPDATABLE:
        row[key] = copy.deepcopy(body.get(key))
    return {"code": "Ok", "data": {"domainId": row["domainId"]}}


def _cas_users(b: Backend, cert_id: int) -> list[dict[str, Any]]:
    """CAS ListCertificates UsingProductList: APIG domains on the certificate."""
    ident = f"{cert_id}-{b.state.cas_region}"
    return [{"CloudProduct": "APIG", "Domain": r["name"]}
            for r in _st(b)["domains"].values() if r.get("certIdentifier") == ident]


CAS_USER_SOURCES.append(_cas_users)
