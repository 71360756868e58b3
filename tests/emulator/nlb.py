"""NLB (Network Load Balancer, API 2022-04-30): TCPSSL listener certificates.

Sources: alibabacloud_nlb20220430 4.1.3 models (_update_listener_attribute_request.py:
``CertificateIds`` "only one server certificate", ``RegionId``;
_associate_additional_certificates_with_listener_request.py: ``AdditionalCertificateIds``
"up to 15 per call"; _disassociate_additional_certificates_with_listener_request.py;
_list_listener_certificates_request.py: ``CertType``, MaxResults 1 to 50) and the NLB API
reference. The listener model is listeners.py (shared with ALB).
"""

from __future__ import annotations

from typing import Any

from . import listeners as L
from .products import HOSTS, VERSIONS, Params, action, int_param
from .state import ApiError, Backend

NLB = "nlb"
VERSIONS["2022-04-30"] = NLB  # alibabacloud_nlb20220430 client: _version = '2022-04-30'
HOSTS[NLB] = "nlb.cn-hangzhou.aliyuncs.com"


def add_listener(b: Backend, listener_id: str, region: str = "cn-hangzhou",
                 protocol: str = "TCPSSL") -> dict[str, Any]:
    return L.new_listener(b, NLB, listener_id, region, protocol)


def _tcpssl(b: Backend, p: Params) -> dict[str, Any]:
    lsn = L.get_listener(b, NLB, p["ListenerId"], p.get("RegionId") or None)
    if lsn["Protocol"] != "TCPSSL":
        # model AssociateAdditionalCertificatesWithListenerRequest: "Only TCPSSL listener
        # IDs are supported." assumption: code.
        raise ApiError(400, "IncorrectStatus.listener", "The listener is not TCPSSL.")
    return lsn


@action(NLB, "UpdateListenerAttribute", "ListenerId")
def update_listener_attribute(b: Backend, p: Params) -> dict[str, Any]:
    lsn = _tcpssl(b, p)
    certs = L.indexed(p, "CertificateIds")
    if not certs:
        return L.job()
    if len(certs) > 1:
        raise ApiError(400, "QuotaExceeded.DefaultCertificate",  # assumption: code
                       "Only one server certificate is supported.")
    return L.set_default(b, lsn, certs[0])


@action(NLB, "AssociateAdditionalCertificatesWithListener", "ListenerId")
def associate(b: Backend, p: Params) -> dict[str, Any]:
    ids = L.indexed(p, "AdditionalCertificateIds")
    if len(ids) > 15:  # model: up to 15 per call
        raise ApiError(400, "QuotaExceeded.AdditionalCertificate", "At most 15 per call.")
    return L.associate(b, _tcpssl(b, p), ids)


@action(NLB, "DisassociateAdditionalCertificatesWithListener", "ListenerId")
def disassociate(b: Backend, p: Params) -> dict[str, Any]:
    return L.dissociate(b, _tcpssl(b, p), L.indexed(p, "AdditionalCertificateIds"))


@action(NLB, "ListListenerCertificates", "ListenerId")
def list_listener_certificates(b: Backend, p: Params) -> dict[str, Any]:
    lsn = _tcpssl(b, p)
    if p.get("CertType", "Server") != "Server":
        return {"Certificates": [], "CertificateIds": [], "TotalCount": 0, "MaxResults": 20,
                "NextToken": ""}
    body = L.list_certificates(lsn, int_param(p, "MaxResults", 20, high=50),
                               p.get("NextToken", ""))
    body["CertificateIds"] = [c["CertificateId"] for c in body["Certificates"]]
    return body
