"""Alibaba Cloud API failures, shown as one paragraph: Code, Message, RequestId and a hint.

The SDK raises ``ClientException`` (4xx), ``ServerException`` (5xx), ``ThrottlingException``
(any status with ``x-acs-retry-after``) and ``darabonba``'s ``UnretryableException`` for
connection errors and non-JSON bodies. ``aliyun.retry`` retries what can be retried and maps
everything else here, in one place, by attribute (never by parsing the SDK's message text,
which embeds the HTTP status and request id in its own format).

Stdlib only: the SDK exception classes are recognised by duck typing so that this module
can be imported without the SDK.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from acmeali import docs_url
from acmeali.errors import AcmealiError

if TYPE_CHECKING:
    from acmeali.aliyun.services import Service

_CREDENTIAL_SOURCES = (
    "ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET in the environment, "
    "RRSA/OIDC variables, the [aliyun] profile or ALIBABA_CLOUD_PROFILE in "
    "~/.aliyun/config.json, ~/.alibabacloud/credentials.ini, or the ECS RAM role"
)


class AliyunError(AcmealiError):
    """An Alibaba Cloud API call failed for a reason retrying will not fix."""

    def __init__(self, *, service: str, action: str, code: str | None, message: str,
                 request_id: str | None = None, status: int | None = None,
                 hint: str | None = None) -> None:
        self.service = service
        self.action = action
        self.code = code
        self.api_message = message
        self.request_id = request_id
        self.status = status
        parts = [f"Alibaba Cloud {action} failed"]
        detail = ": ".join(p for p in (code, message) if p)
        if detail:
            parts.append(f": {detail}")
        if request_id:
            parts.append(f" (RequestId {request_id})")
        super().__init__("".join(parts), hint=hint)


def ram_action(service: Service | str, action: str) -> str:
    """``<ram code>:<Action>``; the RAM code comes from the product's :class:`Service`."""
    if isinstance(service, str):
        from acmeali.aliyun.services import service_named

        try:
            service = service_named(service)
        except ValueError:
            return f"{service}:{action}"
    return service.ram_action(action)


def _name(service: Service | str) -> str:
    return service if isinstance(service, str) else service.name


def hint_for(code: str | None, service: Service | str, action: str,
             auth_action: str | None = None) -> str | None:
    """Advice for the error codes users actually meet; None when there is nothing useful."""
    if not code:
        return None
    if code.startswith("InvalidAccessKeyId"):
        return ("Alibaba Cloud does not know this AccessKey ID (or it is disabled); check which "
                f"credentials source acmeali used: {_CREDENTIAL_SOURCES}")
    if code in ("SignatureDoesNotMatch", "IncompleteSignature", "InvalidSignature"):
        return ("the AccessKey secret does not belong to the AccessKey ID (a mistyped or rotated "
                "secret); fix the secret where the credentials come from")
    if code in ("InvalidSecurityToken.Expired", "InvalidSecurityToken.Malformed",
                "InvalidSecurityToken.MismatchWithAccessKey"):
        return "the STS security token is expired or does not match; refresh the credentials"
    low = code.lower()
    if (low.startswith(("forbidden", "nopermission", "noauth", "accessdenied"))
            or code in ("Forbidden.RAM", "Forbidden.NoPermission", "NoPermission")):
        needed = auth_action or ram_action(service, action)
        return (f"the RAM identity lacks the permission {needed}; grant it in a RAM policy "
                f"({docs_url('alibaba-cloud.md')} has least-privilege policies per feature)")
    if (code.startswith("Throttling") or code in ("Rejected.Throttling", "SystemOverFlow",
                                                  "ServiceUnavailable")):
        return "Alibaba Cloud kept refusing the request (throttling); run again later"
    if code in ("InvalidDomain.NotFound", "InvalidDomain.Offline", "DomainNotExist"):
        return "check the domain name in the deploy target and that it belongs to this account"
    if code in ("IncorrectDomainUser", "DomainRecordNotBelongToUser"):
        return ("the DNS zone is not in this Alibaba Cloud account's Alidns; set dns_zone or "
                "use the account that hosts the zone")
    if code == "InvalidDomainName.NoExist":
        return ("Alidns does not know this zone name: check that this account hosts it; an "
                "internationalised zone must be named as Alidns lists it (in Unicode)")
    mqtt = _MQTT_HINTS.get(code)
    if mqtt is not None:
        return mqtt
    if code == "QuotaExceeded.Record":
        return "the zone's record quota is full; delete stale records"
    return None


# ApsaraMQ for MQTT's documented codes ("MQTT OpenAPI状态码调整").
_MQTT_HINTS = {
    "MqttInstanceNotFound": "no MQTT instance with this id in this region; check --instance "
                            "and --region (or [aliyun] region)",
    "MqttOwnerCheckError": "the MQTT instance belongs to another account; use its owner's "
                           "credentials",
    "CertificateContentError": "the certificate content was refused: a CA must carry "
                               "BasicConstraints CA:TRUE, be valid now, and have signed the "
                               "verification certificate",
    "RegisterCodeError": "the verification certificate's CN is not this instance's "
                         "registration code; run register-ca again (it fetches a fresh code)",
    "RegisterCodeUsed": "registration codes are single-use; run register-ca again (it fetches "
                        "a fresh code)",
    "SnNotUnique": "a CA with this serial number is already registered (serials must be "
                   "unique across MQTT); see `acmeali mqtt ca list`",
    "CaNumExceed": "the instance holds the maximum number of CA certificates; delete one "
                   "first (`acmeali mqtt ca delete`)",
    "FindCaBySnError": "no CA with this Sn on the instance; see `acmeali mqtt ca list`",
    "ParameterFieldCheckFailed": "a parameter was refused; check --instance, --sn and "
                                 "--device-sn against `acmeali mqtt ... list`",
}


def _attr(exc: BaseException, *names: str) -> Any:
    for name in names:
        value = getattr(exc, name, None)
        if value not in (None, "", "None"):
            return value
    return None


def from_sdk_exception(exc: BaseException, *, service: Service | str,
                       action: str) -> AliyunError:
    """Map an SDK exception to AliyunError, keeping only what the user needs (no secrets:
    the SDK's ``data`` is the server's error body, which never echoes credentials)."""
    data = getattr(exc, "data", None)
    body: dict[str, Any] = data if isinstance(data, dict) else {}
    code = body.get("Code") or body.get("code") or _attr(exc, "code")
    message = (body.get("Message") or body.get("message") or "").strip()
    request_id = body.get("RequestId") or body.get("requestId") or _attr(exc, "request_id")
    status = _attr(exc, "status_code", "statusCode")
    auth_action = None
    denied = body.get("AccessDeniedDetail") or _attr(exc, "access_denied_detail")
    if isinstance(denied, dict):
        auth_action = denied.get("AuthAction")
    message = scrub(message) if message else _plain_message(exc)
    if "PRIVATE KEY" in message:
        message = "(the error message quoted key material and was withheld)"
    return AliyunError(service=_name(service), action=action, code=str(code) if code else None,
                       message=message, request_id=str(request_id) if request_id else None,
                       status=int(status) if isinstance(status, int) else None,
                       hint=hint_for(str(code) if code else None, service, action, auth_action))


# Every business parameter, PEM keys included, travels in the query string (ALIYUN.md), and
# urllib3/requests put the request URL into their exception text: drop query strings.
_QUERY = re.compile(r"\?[^\s'\"()]*")


def scrub(text: str, limit: int = 400) -> str:
    """Remove URL query strings (which carry certificates and keys) and cap the length."""
    text = _QUERY.sub("?<query omitted>", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain_message(exc: BaseException) -> str:
    inner = getattr(exc, "inner_exception", None)
    if inner is not None:
        return scrub(f"{type(inner).__name__}: {inner}")
    text = getattr(exc, "message", None) or str(exc)
    return scrub(str(text))
