"""One way to call an Alibaba Cloud action: retries, error mapping, redacted debug logs.

The SDK clients are built without ``retry_options`` (so the SDK itself never retries) and
every call goes through :func:`call`, which owns the policy:

- throttling (``ThrottlingException``, raised whenever the response carries
  ``x-acs-retry-after``) waits exactly what the header says, in milliseconds;
- 5xx answers, the throttling codes without the header (``Throttling``, ``Throttling.*``,
  ``Rejected.Throttling`` -- terraform-provider-alicloud's NeedRetry -- and ApsaraMQ for
  MQTT's ``SystemOverFlow``, an HTTP 403), ``ServiceUnavailable``, and connection errors
  (``UnretryableException`` wrapping a transport error) back off exponentially with jitter;
- everything is bounded: at most ``attempts`` tries and ``budget`` seconds in total;
- any other failure becomes an :class:`AliyunError` with Code, Message, RequestId and a hint.

Requests may be given as a dict of wire parameter names (``{"CertId": 12}``): the SDK's
``<Action>Request`` model is found and filled here, so deployers never import SDK models.
"""

from __future__ import annotations

import importlib
import logging
import random
import threading
import time
from collections.abc import Mapping
from typing import Any

from acmeali.aliyun.errors import AliyunError, from_sdk_exception, scrub

log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 6
DEFAULT_BUDGET = 60.0  # seconds, all retries of one call together
_BASE_BACKOFF = 0.5
_MAX_BACKOFF = 8.0

# Parameters whose values never reach a log line: private keys always; certificates are
# not secret but long, so only their size is logged.
SECRET_PARAMS = frozenset({"Key", "SSLPri", "CertificatePrivateKey", "PrivateKey",
                           "EncryptPrivateKey", "SignPrivateKey", "SecurityToken", "privateKey"})
BULKY_PARAMS = frozenset({"Cert", "SSLPub", "CertificateBody", "CaCertificateBody",
                          "CaContent", "VerificationContent", "EncryptCert", "SignCert",
                          "Certificate", "certificate"})

#: Codes that mean "too many requests / try again", whatever the HTTP status.
RETRY_CODES = frozenset({"Throttling", "Rejected.Throttling", "SystemOverFlow",
                         "ServiceUnavailable", "InternalError"})

_method_cache: dict[tuple[type, str], str] = {}
_cache_lock = threading.Lock()


def redact_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` fit for logs and dry-run output (ROA bodies nest, so nested
    mappings are redacted too: FC's ``body.certConfig.privateKey``)."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k in SECRET_PARAMS:
            out[k] = "<redacted>"
        elif k in BULKY_PARAMS and isinstance(v, str):
            out[k] = f"<PEM, {len(v)} chars>"
        elif isinstance(v, Mapping):
            out[k] = redact_params(v)
        else:
            out[k] = v
    return out


def service_of(client: Any) -> Any:
    """The client's :class:`~acmeali.aliyun.services.Service` (a name for foreign clients)."""
    return getattr(client, "_acmeali_service", "aliyun")


def _method_name(client: Any, action: str) -> str:
    """The SDK method for ``action``: SDK names are snake_case with acronyms squashed
    (SetCdnDomainSSLCertificate -> set_cdn_domain_sslcertificate), so match letters only."""
    key = (type(client), action)
    with _cache_lock:
        cached = _method_cache.get(key)
    if cached:
        return cached
    if hasattr(client, action):  # already a method name
        return action
    want = action.lower()
    for name in dir(type(client)):
        if name.startswith("_") or name.endswith(("_async", "_with_options")):
            continue
        if name.replace("_", "") == want:
            with _cache_lock:
                _method_cache[key] = name
            return name
    raise ValueError(f"{type(client).__module__} has no action {action!r}")


def _build_request(client: Any, action: str, request: Any, *, optional: bool = False) -> Any:
    if request is None:
        request = {}
    if not isinstance(request, Mapping):
        return request
    package = type(client).__module__.rsplit(".", 1)[0]
    models = importlib.import_module(f"{package}.models")
    model_cls = getattr(models, f"{action}Request", None)
    if model_cls is None:  # squashed acronyms again: find the model case-insensitively
        want = f"{action}Request".lower()
        for name in dir(models):
            if name.lower() == want:
                model_cls = getattr(models, name)
                break
    if model_cls is None and optional and not request:  # ROA actions without a body model
        return None
    if model_cls is None:
        raise ValueError(f"{package} has no request model for {action!r}")
    return model_cls().from_map(dict(request))


def _params_of(request: Any) -> Mapping[str, Any]:
    if isinstance(request, Mapping):
        return request
    to_map = getattr(request, "to_map", None)
    result = to_map() if callable(to_map) else {}
    return result if isinstance(result, Mapping) else {}


def _retry_delay(exc: BaseException) -> tuple[bool, float | None]:
    """(retryable, server-requested delay in seconds or None)."""
    name = type(exc).__name__
    retry_after = getattr(exc, "retry_after", None)
    if name == "ThrottlingException" or (isinstance(retry_after, int) and retry_after > 0):
        ms = retry_after if isinstance(retry_after, int) and retry_after > 0 else 1000
        return True, ms / 1000.0
    status = getattr(exc, "status_code", None)
    code = str(getattr(exc, "code", "") or "")
    if name == "ServerException" or (isinstance(status, int) and status >= 500):
        return True, None
    if code.startswith("Throttling.") or code in RETRY_CODES:
        return True, None
    if name == "UnretryableException":
        inner = getattr(exc, "inner_exception", None)
        # A credentials failure is wrapped the same way as a dropped connection.
        if inner is not None and type(inner).__name__ in ("CredentialException", "NoCredentials"):
            return False, None
        return True, None
    return False, None


def call(client: Any, action: str, request: Any = None, *, attempts: int = DEFAULT_ATTEMPTS,
         budget: float = DEFAULT_BUDGET, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Call ``action`` (e.g. ``"UploadUserCertificate"``) and return the response body as a
    dict with the wire's key names; raise AliyunError when it fails for good. ``path`` are
    the leading positional arguments of ROA actions (FC's ``domain_name``)."""
    service = service_of(client)
    method = getattr(client, _method_name(client, action))
    req = _build_request(client, action, request, optional=bool(path))
    args = (*path, req) if req is not None else path
    if log.isEnabledFor(logging.DEBUG):
        log.debug("aliyun %s %s %s", service, action, redact_params(_params_of(req)))
    start = time.monotonic()
    tries = 0
    while True:
        tries += 1
        try:
            response = method(*args)
        except Exception as exc:
            inner = getattr(exc, "inner_exception", None)
            if inner is not None and type(inner).__name__ == "NoCredentials":
                raise inner from None
            retryable, delay = _retry_delay(exc)
            if not retryable:
                raise _final(exc, service, action) from None
            if delay is None:
                delay = min(_MAX_BACKOFF, _BASE_BACKOFF * 2 ** (tries - 1))
                delay *= random.uniform(0.75, 1.25)  # noqa: S311 - jitter, not crypto
            elapsed = time.monotonic() - start
            if tries >= attempts or elapsed + delay > budget:
                err = _final(exc, service, action)
                err.message = f"{err.message} (gave up after {tries} attempts, {elapsed:.1f}s)"
                raise err from None
            log.debug("aliyun %s %s: %s; retrying in %.2fs (attempt %d)", service, action,
                      getattr(exc, "code", None) or type(exc).__name__, delay, tries + 1)
            time.sleep(delay)
            continue
        body = getattr(response, "body", response)
        to_map = getattr(body, "to_map", None)
        result = to_map() if callable(to_map) else body
        if not isinstance(result, dict):
            return {}
        if log.isEnabledFor(logging.DEBUG):
            log.debug("aliyun %s %s -> RequestId %s", service, action, result.get("RequestId"))
        return result


def _final(exc: BaseException, service: Any, action: str) -> AliyunError:
    err = from_sdk_exception(exc, service=service, action=action)
    log.debug("aliyun %s %s failed: %s", service, action, scrub(err.message))
    return err
