"""``acmeali mqtt``: register a local CA with an ApsaraMQ for MQTT instance and manage the
CA and device certificates it knows.

Registration is the step the console makes fiddly: fetch a one-time code, sign a
certificate whose CN is that code with the CA key, upload both. ``register-ca`` does the
three in one go and keeps the verification certificate in memory (it is useless after).
The OnsMqtt SDK and cryptography are imported inside handlers (start-up budget).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from acmeali.aliyun.services import Service
from acmeali.cli import CommandParsers
from acmeali.context import Context
from acmeali.errors import UsageError

# ApsaraMQ for MQTT names its RAM actions under "mq" (e.g. mq:RegisterCa).
MQTT = Service("mqtt", "alibabacloud_onsmqtt20200420", "onsmqtt.{region}.aliyuncs.com", "mq",
               ram_names={"RegisterCaCertificate": "RegisterCa"})

PAGE_SIZE = 100
_STATUS = {"1": "active", "0": "inactive"}


def register(cp: CommandParsers) -> None:
    top = cp.add("mqtt", help="ApsaraMQ for MQTT: register CAs, manage CA/device certificates",
                 leaf=False)
    sub = CommandParsers.group(top, "mqtt_command")

    p = sub.add("register-ca", help="GetRegisterCode -> verification certificate -> "
                                    "RegisterCaCertificate; prints the CA's Sn")
    p.add_argument("--instance", required=True, metavar="ID", help="MQTT instance id")
    _region_arg(p)
    p.add_argument("--ca", required=True, metavar="DIR", help="CA directory (acmeali ca init)")
    p.add_argument("--ca-passphrase-file", metavar="FILE",
                   help="file holding the passphrase of an encrypted CA.key")
    p.add_argument("--name", metavar="NAME", help="CA name shown in the console "
                                                  "(default: the CA's CN)")
    p.set_defaults(handler=run_register_ca)

    ca = sub.add("ca", help="CA certificates registered with an instance", leaf=False)
    ca_sub = CommandParsers.group(ca, "mqtt_ca_command")
    for action, text in (("list", "list the instance's CA certificates"),
                         ("show", "one CA certificate"),
                         ("activate", "activate a CA (and its device certificates)"),
                         ("deactivate", "deactivate a CA (its devices can no longer connect)"),
                         ("delete", "delete a CA and the records of its device certificates")):
        p = ca_sub.add(action, help=text)
        p.add_argument("--instance", required=True, metavar="ID", help="MQTT instance id")
        _region_arg(p)
        p.add_argument("--sn", required=action != "list", metavar="SN",
                       help="CA serial number (Sn) as the service reports it")
        if action in ("list", "show"):
            p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(handler=run_ca, mqtt_action=action)

    dev = sub.add("device", help="device certificates seen by an instance", leaf=False)
    dev_sub = CommandParsers.group(dev, "mqtt_device_command")
    for action, text in (("list", "list device certificates (of one CA with --ca-sn)"),
                         ("show", "one device certificate"),
                         ("activate", "allow a device certificate again"),
                         ("deactivate", "refuse a device certificate"),
                         ("delete", "forget a device certificate (it re-registers on connect "
                                    "while its CA is active)")):
        p = dev_sub.add(action, help=text)
        p.add_argument("--instance", required=True, metavar="ID", help="MQTT instance id")
        _region_arg(p)
        p.add_argument("--ca-sn", required=action != "list", metavar="SN", help="the CA's Sn")
        p.add_argument("--device-sn", required=action != "list", metavar="SN",
                       help="the device certificate's Sn")
        if action in ("list", "show"):
            p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(handler=run_device, mqtt_action=action)


# --------------------------------------------------------------------------- helpers
def _region_arg(p: Any) -> None:
    p.add_argument("--region", metavar="REGION",
                   help="the instance's region, e.g. cn-shanghai (default: [aliyun] region); "
                        "the endpoint is onsmqtt.<region>.aliyuncs.com")


def _models() -> Any:
    """The OnsMqtt request models, loaded on use (the SDK costs most of a second)."""
    import importlib

    return importlib.import_module("alibabacloud_onsmqtt20200420.models")


def _client(ctx: Context) -> Any:
    from acmeali.aliyun.clients import make_client

    region = str(ctx.arg("region") or "").strip() or None
    return make_client(MQTT, ctx.config.aliyun, region=region)


def _call(client: Any, action: str, request: Any) -> dict[str, Any]:
    from acmeali import aliyun

    return aliyun.call(client, action, request)


def _get(d: Mapping[str, Any] | None, *keys: str) -> Any:
    """Walk PascalCase keys, tolerating missing levels (the service omits empty ones)."""
    cur: Any = d
    for k in keys:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(k)
    return cur


def _when(value: Any) -> str:
    """ValidBegin/ValidEnd come as epoch milliseconds (number or string) or as text."""
    if value in (None, ""):
        return "-"
    try:
        ms = int(str(value))
    except ValueError:
        return str(value)
    return f"{dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc):%Y-%m-%d %H:%M}"


def _status(value: Any) -> str:
    return _STATUS.get(str(value), str(value) if value is not None else "-")


def _table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _paged(fetch: Callable[[str], dict[str, Any]], list_key: str) -> list[dict[str, Any]]:
    """Every page: ListCaCertificate and friends take PageNo/PageSize as strings.

    ``Data.Total`` is documented as the *page count* for ListCaCertificate and
    ListDeviceCertificate ("Maximum number of pages", SDK models.py) but as the item count
    for ListDeviceCertificateByCaSn, so it is never compared with the items seen: the
    listing stops on a short or empty page, or once the page number reaches ``Total``
    (which ends early under neither reading)."""
    items: list[dict[str, Any]] = []
    for page in range(1, 10_000):
        body = fetch(str(page))
        got = _get(body, "Data", list_key) or []
        items.extend(got)
        total = _get(body, "Data", "Total")
        try:
            total_n = int(total) if total is not None else None
        except (TypeError, ValueError):
            total_n = None
        if len(got) < PAGE_SIZE or (total_n is not None and page >= total_n):
            break
    return items


def _print_json(ctx: Context, data: Any) -> None:
    ctx.ui.result(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True))


# --------------------------------------------------------------------------- register-ca
def run_register_ca(ctx: Context) -> int:
    from acmeali.localca import LocalCA
    from acmeali.localca.subject import common_name

    instance = _instance(ctx)
    ca = LocalCA.load(Path(ctx.arg("ca")), passphrase_file=ctx.arg("ca_passphrase_file"))
    name = ctx.arg("name") or common_name(ca.cert.subject) or ca.directory.name
    if not name.strip():
        raise UsageError("--name: empty CA name")
    models = _models()

    client = _client(ctx)
    ctx.ui.info(f"Getting a registration code for instance {instance}")
    body = _call(client, "GetRegisterCode",
                 models.GetRegisterCodeRequest(mqtt_instance_id=instance))
    code = body.get("RegisterCode")
    if not code:
        from acmeali.aliyun.errors import AliyunError

        raise AliyunError(service="mqtt", action="GetRegisterCode", code=None,
                          message=f"no RegisterCode in the answer for instance {instance}",
                          request_id=body.get("RequestId"))
    # Kept in memory only: the certificate proves possession once and is worthless after.
    verification = ca.verification_cert(str(code))
    ctx.ui.info(f"Registering CA {ca.cert.subject.rfc4514_string()} as {name!r}")
    body = _call(client, "RegisterCaCertificate", models.RegisterCaCertificateRequest(
        mqtt_instance_id=instance, ca_name=name, ca_content=ca.cert_pem.decode("ascii"),
        verification_content=verification.cert_pem.decode("ascii")))
    sn = body.get("Sn")
    ctx.ui.result(f"CA registered with instance {instance}: Sn {sn}")
    ctx.ui.info(f"next: issue device certificates with `acmeali ca device-cert --ca {ca.directory}"
                " --device-id ID --out DIR`; devices register on their first connection "
                f"(`acmeali mqtt device list --instance {instance} --ca-sn {sn}`)")
    return 0


def _instance(ctx: Context) -> str:
    instance = str(ctx.arg("instance") or "").strip()
    if not instance:
        raise UsageError("--instance: empty instance id")
    return instance


# --------------------------------------------------------------------------- ca ...
_CA_METHODS = {"activate": ("ActiveCaCertificate", "ActiveCaCertificateRequest", "activated"),
               "deactivate": ("InactivateCaCertificate", "InactivateCaCertificateRequest",
                              "deactivated"),
               "delete": ("DeleteCaCertificate", "DeleteCaCertificateRequest", "deleted")}


def _ca_row(vo: Mapping[str, Any]) -> list[str]:
    return [str(vo.get("Sn", "")), str(vo.get("CaName", "") or ""), _status(vo.get("Status")),
            _when(vo.get("ValidBegin")), _when(vo.get("ValidEnd"))]


_CA_HEADERS = ("SN", "NAME", "STATUS", "VALID FROM", "VALID UNTIL")


def run_ca(ctx: Context) -> int:
    models = _models()

    instance = _instance(ctx)
    action: str = ctx.arg("mqtt_action")
    client = _client(ctx)
    if action == "list":
        items = _paged(lambda page: _call(client, "ListCaCertificate",
                                          models.ListCaCertificateRequest(
                                              mqtt_instance_id=instance, page_no=page,
                                              page_size=str(PAGE_SIZE))),
                       "CaCertificateVOS")
        if ctx.arg("sn"):  # documented for `list`: only that CA
            items = [vo for vo in items if str(vo.get("Sn", "")) == str(ctx.arg("sn")).strip()]
        if ctx.arg("json"):
            _print_json(ctx, items)
        elif items:
            ctx.ui.result(_table([_ca_row(vo) for vo in items], _CA_HEADERS))
        else:
            ctx.ui.result(f"no CA certificates registered with {instance}")
        return 0
    sn = str(ctx.arg("sn")).strip()
    if not sn:
        raise UsageError("--sn: empty serial number; see `acmeali mqtt ca list`")
    if action == "show":
        body = _call(client, "GetCaCertificate", models.GetCaCertificateRequest(
            mqtt_instance_id=instance, sn=sn))
        data = body.get("Data") or {}
        if ctx.arg("json"):
            _print_json(ctx, data)
        else:
            ctx.ui.result(_table([_ca_row(data)], _CA_HEADERS))
            if data.get("CaContent"):
                ctx.ui.result(str(data["CaContent"]).strip())
        return 0
    method, req_name, done = _CA_METHODS[action]
    _call(client, method, getattr(models, req_name)(mqtt_instance_id=instance, sn=sn))
    ctx.ui.result(f"CA {sn} {done} on {instance}")
    return 0


# --------------------------------------------------------------------------- device ...
_DEVICE_METHODS = {
    "activate": ("ActiveDeviceCertificate", "ActiveDeviceCertificateRequest", "activated"),
    "deactivate": ("InactivateDeviceCertificate", "InactivateDeviceCertificateRequest",
                   "deactivated"),
    "delete": ("DeleteDeviceCertificate", "DeleteDeviceCertificateRequest", "deleted"),
}
_DEVICE_HEADERS = ("DEVICE SN", "NAME", "CA SN", "STATUS", "VALID FROM", "VALID UNTIL")


def _device_row(vo: Mapping[str, Any]) -> list[str]:
    return [str(vo.get("DeviceSn", "")), str(vo.get("DeviceName", "") or ""),
            str(vo.get("CaSn", "") or ""), _status(vo.get("Status")),
            _when(vo.get("ValidBegin")), _when(vo.get("ValidEnd"))]


def run_device(ctx: Context) -> int:
    models = _models()

    instance = _instance(ctx)
    action: str = ctx.arg("mqtt_action")
    ca_sn = str(ctx.arg("ca_sn") or "").strip()
    client = _client(ctx)
    if action == "list":
        def fetch(page: str) -> dict[str, Any]:
            if ca_sn:
                return _call(client, "ListDeviceCertificateByCaSn",
                             models.ListDeviceCertificateByCaSnRequest(
                                 mqtt_instance_id=instance, ca_sn=ca_sn, page_no=page,
                                 page_size=str(PAGE_SIZE)))
            return _call(client, "ListDeviceCertificate", models.ListDeviceCertificateRequest(
                mqtt_instance_id=instance, page_no=page, page_size=str(PAGE_SIZE)))

        items = _paged(fetch, "DeviceCertificateVOS")
        if ctx.arg("device_sn"):  # documented for `list`: only that device certificate
            wanted = str(ctx.arg("device_sn")).strip()
            items = [vo for vo in items if str(vo.get("DeviceSn", "")) == wanted]
        if ctx.arg("json"):
            _print_json(ctx, items)
        elif items:
            ctx.ui.result(_table([_device_row(vo) for vo in items], _DEVICE_HEADERS))
        else:
            ctx.ui.result("no device certificates" + (f" under CA {ca_sn}" if ca_sn else "")
                          + f" on {instance}")
        return 0
    device_sn = str(ctx.arg("device_sn") or "").strip()
    if not ca_sn or not device_sn:
        raise UsageError("--ca-sn and --device-sn must not be empty; see "
                         "`acmeali mqtt device list`")
    if action == "show":
        body = _call(client, "GetDeviceCertificate", models.GetDeviceCertificateRequest(
            mqtt_instance_id=instance, ca_sn=ca_sn, device_sn=device_sn))
        data = body.get("Data") or {}
        if ctx.arg("json"):
            _print_json(ctx, data)
        else:
            ctx.ui.result(_table([_device_row(data)], _DEVICE_HEADERS))
        return 0
    method, req_name, done = _DEVICE_METHODS[action]
    _call(client, method, getattr(models, req_name)(mqtt_instance_id=instance, ca_sn=ca_sn,
                                                    device_sn=device_sn))
    ctx.ui.result(f"device certificate {device_sn} {done} on {instance}")
    return 0
