"""ALB (Application Load Balancer, API 2020-06-16): HTTPS listener certificates.

Sources: alibabacloud_alb20200616 1.3.3 models (_update_listener_attribute_request.py,
_associate_additional_certificates_with_listener_request.py,
_dissociate_additional_certificates_from_listener_request.py,
_list_listener_certificates_request.py / _response_body.py) and the ALB API reference.
The listener model is listeners.py (shared with NLB).
"""

from __future__ import annotations

from typing import Any

from . import listeners as L
from .products import HOSTS, VERSIONS, Params, action, int_param
from .state import ApiError, Backend

ALB = "alb"
VERSIONS["2020-06-16"] = ALB  # alibabacloud_alb20200616 client: _version = '2020-06-16'
HOSTS[ALB] = "alb.cn-hangzhou.aliyuncs.com"


def add_listener(b: Backend, listener_id: str, region: str = "cn-hangzhou",
                 protocol: str = "HTTPS") -> dict[str, Any]:
    return L.new_listener(b, ALB, listener_id, region, protocol)


def _tls(b: Backend, p: Params) -> dict[str, Any]:
    lsn = L.get_listener(b, ALB, p["ListenerId"])
    if lsn["Protocol"] not in ("HTTPS", "QUIC"):
        # model ListListenerCertificatesRequest: "You must specify the ID of an HTTPS
        # listener or a QUIC listener." assumption: code.
        raise ApiError(400, "IncorrectStatus.listener", "The listener is not HTTPS or QUIC.")
    return lsn


@action(ALB, "UpdateListenerAttribute", "ListenerId")
def update_listener_attribute(b: Backend, p: Params) -> dict[str, Any]:
    lsn = _tls(b, p)
    certs = L.indexed(p, "Certificates", "CertificateId")
    if not certs:  # nothing about certificates to change
        return L.job()
    if len(certs) > 1:
        # model UpdateListenerAttributeRequestCertificates: "Only one default server
        # certificate is supported." assumption: code.
        raise ApiError(400, "QuotaExceeded.DefaultCertificate",
                       "Only one default server certificate is supported.")
    return L.set_default(b, lsn, certs[0])


@action(ALB, "AssociateAdditionalCertificatesWithListener", "ListenerId")
def associate(b: Backend, p: Params) -> dict[str, Any]:
    return L.associate(b, _tls(b, p), L.indexed(p, "Certificates", "CertificateId"))


@action(ALB, "DissociateAdditionalCertificatesFromListener", "ListenerId")
def dissociate(b: Backend, p: Params) -> dict[str, Any]:
    return L.dissociate(b, _tls(b, p), L.indexed(p, "Certificates", "CertificateId"))


@action(ALB, "ListListenerCertificates", "ListenerId")
def list_listener_certificates(b: Backend, p: Params) -> dict[str, Any]:
    lsn = _tls(b, p)
    if p.get("CertificateType", "Server") != "Server":  # Ca: none modelled
        return {"Certificates": [], "TotalCount": 0, "MaxResults": 20, "NextToken": ""}
    # model: MaxResults 1 to 100, default 20.
    return L.list_certificates(lsn, int_param(p, "MaxResults", 20, high=100),
                               p.get("NextToken", ""))
