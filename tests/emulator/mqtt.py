"""ApsaraMQ for MQTT (OnsMqtt 2020-04-20): CA certificate registration and device certs.

The part that matters for acmeali is proof of possession: ``RegisterCaCertificate`` only
accepts a CA whose key signed a verification certificate carrying the instance's
registration code as CN. Device certificates are never uploaded through the API; they
appear when a device first connects, which :func:`register_device` simulates.

Field shapes follow the SDK's response models: Status is "1" (active) / "0" (inactive),
ValidBegin / ValidEnd are Unix milliseconds *as strings*, PageNo / PageSize / Total ints.
GUESS: Sn / DeviceSn are the certificate serial number in lowercase hex (the API only says
"SN serial number").

Error codes and HTTP statuses follow Alibaba's notice "MQTT OpenAPI状态码调整"
(help.aliyun.com/zh/apsaramq-for-mqtt/mqtt-upgraded/product-overview/
adjustment-of-http-status-code-of-apsaramq-for-mqtt-api-operations): InternalError 417,
SystemOverFlow 403, RegisterCodeError 400, RegisterCodeUsed 401, CaNumExceed 401,
CertificateContentError 401, SnNotUnique 401, MqttInstanceNotFound 400, FindCaBySnError 400,
MqttOwnerCheckError 403, ParameterFieldCheckFailed 400.
"""

from __future__ import annotations

import secrets
from typing import Any

from cryptography import x509

from .products import MQTT, Params, action, int_param, page
from .state import ApiError, Backend, common_name, is_ca, issued_by, load_chain, now_utc, to_ms


def new_instance() -> dict[str, Any]:
    return {"RegisterCode": secrets.token_hex(16), "UsedCodes": set(), "CaCertificates": {},
            "DeviceCertificates": {}}


def _instance(b: Backend, instance_id: str) -> dict[str, Any]:
    inst = b.state.mqtt.get(instance_id)
    if inst is None:
        raise ApiError(400, "MqttInstanceNotFound",  # status-code notice: 400
                       f"The MQTT instance {instance_id} does not exist.")
    return inst


def _ca(inst: dict[str, Any], sn: str) -> dict[str, Any]:
    ca: dict[str, Any] | None = inst["CaCertificates"].get(sn)
    if ca is None:
        raise ApiError(400, "FindCaBySnError",  # status-code notice: 400
                       f"Cannot find the CA certificate by Sn {sn}.")
    return ca


def _device(inst: dict[str, Any], ca_sn: str, device_sn: str) -> dict[str, Any]:
    _ca(inst, ca_sn)
    dev: dict[str, Any] | None = inst["DeviceCertificates"].get(device_sn)
    if dev is None or dev["CaSn"] != ca_sn:
        # assumption: the notice lists no device-not-found code; a parameter check failure
        # is the closest documented one.
        raise ApiError(400, "ParameterFieldCheckFailed",
                       f"The device certificate {device_sn} under CA {ca_sn} does not exist.")
    return dev


def _paging(p: Params) -> tuple[int, int]:
    """SDK models.py ListCaCertificateRequest: PageSize 1-100."""
    return int_param(p, "PageNo", 1), int_param(p, "PageSize", 10, high=100)


def _pages(count: int, size: int) -> int:
    return (count + size - 1) // size


@action(MQTT, "GetRegisterCode", "MqttInstanceId")
def get_register_code(b: Backend, p: Params) -> dict[str, Any]:
    """Codes are single-use (RegisterCodeUsed): once one registered a CA, a new one is
    handed out."""
    return {"RegisterCode": _instance(b, p["MqttInstanceId"])["RegisterCode"]}


@action(MQTT, "RegisterCaCertificate", "MqttInstanceId", "CaName", "CaContent",
        "VerificationContent")
def register_ca_certificate(b: Backend, p: Params) -> dict[str, Any]:
    inst = _instance(b, p["MqttInstanceId"])
    try:
        ca = load_chain(p["CaContent"], "CA certificate", "CertificateContentError")[0]
    except ApiError as exc:
        raise ApiError(401, exc.code, exc.message) from None
    if not is_ca(ca):
        raise ApiError(401, "CertificateContentError",
                       "BasicConstraints of the certificate is not CA.")
    now = now_utc()
    if not ca.not_valid_before_utc <= now <= ca.not_valid_after_utc:
        raise ApiError(401, "CertificateContentError", "The CA certificate is not valid now.")
    try:
        ver = load_chain(p["VerificationContent"], "verification certificate",
                         "CertificateContentError")[0]
    except ApiError as exc:
        raise ApiError(401, exc.code, exc.message) from None
    code = common_name(ver.subject)
    if code in inst["UsedCodes"]:
        raise ApiError(401, "RegisterCodeUsed", "The register code has been used.")
    if code != inst["RegisterCode"]:
        raise ApiError(400, "RegisterCodeError",
                       "The CN of the verification certificate is not the registration code "
                       "of this instance.")
    if not issued_by(ver, ca):
        # assumption: no dedicated code for a verification certificate the CA did not sign.
        raise ApiError(401, "CertificateContentError",
                       "The verification certificate is not signed by the CA certificate.")
    sn = format(ca.serial_number, "x")
    # "Sn is not unique in global" (notice). assumption: that includes the account's other
    # instances (whether one CA may serve two instances is not settled).
    if any(sn in i["CaCertificates"] for i in b.state.mqtt.values()):
        raise ApiError(401, "SnNotUnique", "Sn is not unique in global.")
    inst["UsedCodes"].add(code)
    inst["RegisterCode"] = secrets.token_hex(16)
    inst["CaCertificates"][sn] = {
        "Sn": sn, "CaName": p["CaName"], "CaContent": p["CaContent"],
        "VerificationContent": p["VerificationContent"],
        "RegistrationCode": code, "Status": "1",
        "ValidBegin": str(to_ms(ca.not_valid_before_utc)),
        "ValidEnd": str(to_ms(ca.not_valid_after_utc)),
    }
    return {"Sn": sn}


@action(MQTT, "ListCaCertificate", "MqttInstanceId", "PageNo", "PageSize")
def list_ca_certificate(b: Backend, p: Params) -> dict[str, Any]:
    inst = _instance(b, p["MqttInstanceId"])
    number, size = _paging(p)
    cas = list(inst["CaCertificates"].values())
    # SDK models.py ListCaCertificateResponseBodyData.total: "Maximum number of pages in
    # the query result" -- a page count, not an item count.
    return {"Data": {"CaCertificateVOS": [dict(c) for c in page(cas, number, size)],
                     "PageNo": number, "PageSize": size, "Total": _pages(len(cas), size)}}


@action(MQTT, "GetCaCertificate", "MqttInstanceId", "Sn")
def get_ca_certificate(b: Backend, p: Params) -> dict[str, Any]:
    return {"Data": dict(_ca(_instance(b, p["MqttInstanceId"]), p["Sn"]))}


def _set_ca_status(b: Backend, p: Params, status: str) -> dict[str, Any]:
    _ca(_instance(b, p["MqttInstanceId"]), p["Sn"])["Status"] = status
    return {"Sn": p["Sn"]}


@action(MQTT, "ActiveCaCertificate", "MqttInstanceId", "Sn")
def active_ca_certificate(b: Backend, p: Params) -> dict[str, Any]:
    return _set_ca_status(b, p, "1")


@action(MQTT, "InactivateCaCertificate", "MqttInstanceId", "Sn")
def inactivate_ca_certificate(b: Backend, p: Params) -> dict[str, Any]:
    return _set_ca_status(b, p, "0")


@action(MQTT, "DeleteCaCertificate", "MqttInstanceId", "Sn")
def delete_ca_certificate(b: Backend, p: Params) -> dict[str, Any]:
    """GUESS: deleting a CA also drops the device certificates it signed."""
    inst = _instance(b, p["MqttInstanceId"])
    _ca(inst, p["Sn"])
    del inst["CaCertificates"][p["Sn"]]
    for dsn in [d for d, v in inst["DeviceCertificates"].items() if v["CaSn"] == p["Sn"]]:
        del inst["DeviceCertificates"][dsn]
    return {"Sn": p["Sn"]}


def _device_list(inst: dict[str, Any], p: Params, ca_sn: str | None) -> dict[str, Any]:
    number, size = _paging(p)
    devs = [dict(d) for d in inst["DeviceCertificates"].values()
            if ca_sn is None or d["CaSn"] == ca_sn]
    # SDK ListDeviceCertificateResponseBodyData.total and document_detail/458997: the page
    # count; document_detail/458998 (ListDeviceCertificateByCaSn): "查询结果总数", items.
    total = len(devs) if ca_sn is not None else _pages(len(devs), size)
    return {"Data": {"DeviceCertificateVOS": page(devs, number, size), "PageNo": number,
                     "PageSize": size, "Total": total}}


@action(MQTT, "ListDeviceCertificate", "MqttInstanceId", "PageNo", "PageSize")
def list_device_certificate(b: Backend, p: Params) -> dict[str, Any]:
    return _device_list(_instance(b, p["MqttInstanceId"]), p, None)


@action(MQTT, "ListDeviceCertificateByCaSn", "MqttInstanceId", "CaSn", "PageNo", "PageSize")
def list_device_certificate_by_ca_sn(b: Backend, p: Params) -> dict[str, Any]:
    inst = _instance(b, p["MqttInstanceId"])
    _ca(inst, p["CaSn"])
    return _device_list(inst, p, p["CaSn"])


@action(MQTT, "GetDeviceCertificate", "MqttInstanceId", "CaSn", "DeviceSn")
def get_device_certificate(b: Backend, p: Params) -> dict[str, Any]:
    return {"Data": dict(_device(_instance(b, p["MqttInstanceId"]), p["CaSn"], p["DeviceSn"]))}


def _set_device(b: Backend, p: Params, status: str | None) -> dict[str, Any]:
    inst = _instance(b, p["MqttInstanceId"])
    dev = _device(inst, p["CaSn"], p["DeviceSn"])
    if status is None:
        del inst["DeviceCertificates"][dev["DeviceSn"]]
    else:
        dev["Status"] = status
    return {"DeviceSn": p["DeviceSn"]}


@action(MQTT, "ActiveDeviceCertificate", "MqttInstanceId", "CaSn", "DeviceSn")
def active_device_certificate(b: Backend, p: Params) -> dict[str, Any]:
    return _set_device(b, p, "1")


@action(MQTT, "InactivateDeviceCertificate", "MqttInstanceId", "CaSn", "DeviceSn")
def inactivate_device_certificate(b: Backend, p: Params) -> dict[str, Any]:
    return _set_device(b, p, "0")


@action(MQTT, "DeleteDeviceCertificate", "MqttInstanceId", "CaSn", "DeviceSn")
def delete_device_certificate(b: Backend, p: Params) -> dict[str, Any]:
    return _set_device(b, p, None)


def register_device(b: Backend, instance_id: str, device_cert_pem: str) -> str:
    """A device's first TLS connect: its certificate must chain to an active registered CA.

    Returns the DeviceSn. A device whose certificate is already known keeps its record
    (and its status: an inactivated device stays refused). Raises PermissionError when
    the broker would refuse the connection, KeyError for an unknown instance.
    """
    inst = b.state.mqtt[instance_id]
    dev_cert = load_chain(device_cert_pem, "device certificate")[0]
    issuer = next((c for c in inst["CaCertificates"].values()
                   if issued_by(dev_cert, x509.load_pem_x509_certificate(
                       c["CaContent"].encode()))), None)
    if issuer is None:
        raise PermissionError("the device certificate is not signed by a registered CA")
    if issuer["Status"] != "1":
        raise PermissionError(f"the CA {issuer['Sn']} is inactive")
    now = now_utc()
    if not dev_cert.not_valid_before_utc <= now <= dev_cert.not_valid_after_utc:
        raise PermissionError("the device certificate is not valid now")
    dsn = format(dev_cert.serial_number, "x")
    known = inst["DeviceCertificates"].get(dsn)
    if known is not None:
        if known["Status"] != "1":
            raise PermissionError(f"the device certificate {dsn} is inactive")
        return dsn
    inst["DeviceCertificates"][dsn] = {
        "DeviceSn": dsn, "CaSn": issuer["Sn"], "DeviceName": common_name(dev_cert.subject),
        "DeviceContent": device_cert_pem, "Status": "1",
        "ValidBegin": str(to_ms(dev_cert.not_valid_before_utc)),
        "ValidEnd": str(to_ms(dev_cert.not_valid_after_utc)),
    }
    return dsn
