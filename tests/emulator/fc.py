"""Function Compute 3.0 (API 2023-03-30, ROA): custom domains.

Sources: alibabacloud_fc20230330 4.8.3 (client.py: GET/PUT
/2023-03-30/custom-domains/{domainName}, GET /2023-03-30/custom-domains; models
_custom_domain.py, _update_custom_domain_input.py, _cert_config.py: certName,
certificate, privateKey; _list_custom_domain_output.py: customDomains, nextToken) and the
FC 3.0 API reference (UpdateCustomDomain: the fields sent replace the domain's).

State ``state.extra["fc"]``: "domains": domainName -> the CustomDomain (wire names), the
private key kept server side only ("privateKey" is never returned).
"""

from __future__ import annotations

import copy
from typing import Any

from . import roa
from .casref import st
from .products import HOSTS, VERSIONS, Params, action, parse_leaf_and_key
from .state import ApiError, Backend

FC = "fc"
VERSIONS["2023-03-30"] = FC  # alibabacloud_fc20230330 client: version='2023-03-30'
HOSTS[FC] = "fcv3.cn-hangzhou.aliyuncs.com"


def _st(x: Any) -> dict[str, Any]:
    return st(x, FC, domains=dict)


def add_domain(emu: Any, name: str, *, protocol: str = "HTTP,HTTPS") -> dict[str, Any]:
    """A custom domain made in the console, with routes, TLS, auth and WAF settings."""
    with emu.state.lock:
        row = {
            "domainName": name, "protocol": protocol, "apiVersion": "2023-03-30",
            "accountId": "1234567890123456", "createdTime": "2026-01-02T03:04:05Z",
            "lastModifiedTime": "2026-01-02T03:04:05Z", "subdomainCount": "0",
            "certConfig": None,
            "routeConfig": {"routes": [{"path": "/api/*", "functionName": "api-fn",
                                        "qualifier": "LATEST", "methods": ["GET", "POST"]}]},
            "tlsConfig": {"minVersion": "TLSv1.2", "maxVersion": "TLSv1.3",
                          "cipherSuites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]},
            "authConfig": {"authType": "jwt", "authInfo": "{\"jwks\":{}}"},
            "wafConfig": {"enableWAF": True},
            "corsConfig": {"allowOrigins": ["https://app.example.test"], "maxAge": 600}}
        _st(emu)["domains"][name] = row
        return row


def _domain(b: Backend, p: Params) -> dict[str, Any]:
    row = _st(b)["domains"].get(roa.last_segment(p))
    if row is None:
        # FC 3.0 API reference, errors: 404 DomainNameNotFound.
        raise ApiError(404, "DomainNameNotFound", "The custom domain does not exist.")
    return row


def _public(row: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(row)
    if out.get("certConfig"):
        out["certConfig"].pop("privateKey", None)  # assumption: never returned
    return out


@action(FC, "GetCustomDomain")
def get_custom_domain(b: Backend, p: Params) -> dict[str, Any]:
    return _public(_domain(b, p))


@action(FC, "ListCustomDomains")
def list_custom_domains(b: Backend, p: Params) -> dict[str, Any]:
    rows = [_public(r) for _, r in sorted(_st(b)["domains"].items())]
    limit = int(p.get("limit") or 20)  # model: limit, default 20, at most 100
    start = int(p.get("nextToken") or 0)
    page = rows[start:start + limit]
    token = str(start + limit) if start + limit < len(rows) else ""
    return {"customDomains": page, **({"nextToken": token} if token else {})}


@action(FC, "UpdateCustomDomain")
def update_custom_domain(b: Backend, p: Params) -> dict[str, Any]:
    row = _domain(b, p)
    if p.get("__method__") != "PUT":  # client.py: method='PUT'
        raise ApiError(405, "MethodNotAllowed", "UpdateCustomDomain is PUT.")
    body = roa.body(p)
    cert = body.get("certConfig")
    if cert:
        # model CertConfig: certName, certificate, privateKey all required.
        if not all(cert.get(k) for k in ("certName", "certificate", "privateKey")):
            raise ApiError(400, "InvalidArgument", "certConfig needs certName, certificate "
                           "and privateKey.")
        parse_leaf_and_key(cert["certificate"], cert["privateKey"], "FC")
    if "HTTPS" in str(body.get("protocol") or row["protocol"]) and not (cert or
                                                                      row.get("certConfig")):
        raise ApiError(400, "InvalidArgument", "HTTPS needs certConfig.")  # API reference
    # assumption (strictest reading of "the fields sent replace the domain's"): every
    # config object not sent is cleared.
    for key in ("protocol", "certConfig", "routeConfig", "tlsConfig", "authConfig",
                "wafConfig", "corsConfig"):
        row[key] = copy.deepcopy(body.get(key)) if key in body else (
            row[key] if key == "protocol" else None)
    row["lastModifiedTime"] = "2026-12-01T00:00:00Z"
    return _public(row)
