"""The loopback Alibaba Cloud endpoint: one HTTP port for every product.

Request path, in the order Alibaba's gateway appears to apply it:
latency -> authentication (V3 or legacy signature) -> routing (version + action) ->
required parameters -> injected faults (throttling, 5xx) -> the action -> JSON response.
Every error uses Alibaba's body shape ``{"RequestId","HostId","Code","Message",
"Recommend"}``, so the SDKs raise the same exception types they raise against the cloud.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import (  # noqa: F401 - importing registers their actions
    alb,
    apig,
    casjobs,
    ddos,
    esa,
    fc,
    ga,
    live,
    nlb,
    oss,
    roa,
    slb,
    vod,
    waf,
)
from .mqtt import new_instance
from .mqtt import register_device as _register_device
from .products import (
    ACTIONS,
    HOSTS,
    VERSIONS,
    ActionSpec,
    cdn_stored_name,
    new_apigw_domain,
    new_cdn_domain,
    unicode_zone,
)
from .signature import (
    RPC_COMMON_PARAMS,
    V3_ALGORITHM,
    SignatureError,
    check_clock,
    constant_time_equal,
    parse_v3_authorization,
    rpc_signature,
    rpc_string_to_sign,
    sha256_hex,
    v3_signature,
    v3_string_to_sign,
)
from .state import ApiError, Backend, EmulatorState, TxtSink


def service_names() -> list[str]:
    """The [aliyun.endpoints] names to point at the emulator: every service acmeali's
    registered targets and solvers call (a product the emulator does not model answers
    InvalidVersion)."""
    from acmeali.aliyun.services import known_services

    return list(known_services())

# ----------------------------------------------------------------------------- faults


@dataclass
class _Rule:
    kind: str  # "throttle" | "5xx" | "lose" | "deny"
    action: str | None
    remaining: int
    retry_after_ms: int | None = 0
    code: str = "Throttling.User"
    status: int = 400


#: Throttling answers of the real services (code -> HTTP status). terraform-provider-alicloud
#: alicloud/errors.go NeedRetry: Throttling, Throttling.User, Throttling.Api,
#: Rejected.Throttling, ServiceUnavailable; ApsaraMQ for MQTT status-code notice
#: (help.aliyun.com/zh/apsaramq-for-mqtt/.../adjustment-of-http-status-code...):
#: SystemOverFlow "系统限流,请重试" is HTTP 403.
THROTTLE_STATUS = {"Throttling": 400, "Throttling.User": 400, "Throttling.Api": 400,
                   "Rejected.Throttling": 400, "SystemOverFlow": 403,
                   "ServiceUnavailable": 503}


@dataclass
class Faults:
    """Knobs a test turns to make the cloud misbehave.

    Rules apply to requests that authenticated and routed fine, in the order they were
    added; each matching request uses up one count. ``latency`` delays every request.
    """

    _rules: list[_Rule] = field(default_factory=list)
    _latency: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def throttle(self, action: str | None = None, count: int = 1,
                 retry_after_ms: int | None = 200, code: str = "Throttling.User") -> None:
        """The next ``count`` matching calls get ``code`` (HTTP status per THROTTLE_STATUS),
        with the ``x-acs-retry-after`` header (milliseconds) unless ``retry_after_ms`` is
        None; the header makes the SDK raise ``ThrottlingException`` carrying it."""
        with self._lock:
            self._rules.append(_Rule("throttle", action, count, retry_after_ms, code,
                                     THROTTLE_STATUS.get(code, 400)))

    def refuse(self, action: str, code: str = "Forbidden.RAM", status: int = 403,
               count: int = 1) -> None:
        """The next ``count`` calls of ``action`` get ``code`` (e.g. a RAM denial; ALIYUN.md
        error body shape), as a policy without that action would."""
        with self._lock:
            self._rules.append(_Rule("throttle", action, count, None, code, status))

    def lose_response(self, action: str | None = None, count: int = 1) -> None:
        """The next ``count`` matching calls are carried out, then the connection closes
        without an answer: the lost response a client retries after."""
        with self._lock:
            self._rules.append(_Rule("lose", action, count))

    def fail_5xx(self, count: int, action: str | None = None) -> None:
        """The next ``count`` matching calls get 503 ``ServiceUnavailable``."""
        with self._lock:
            self._rules.append(_Rule("5xx", action, count))

    def deny(self, action: str, count: int = 1_000_000) -> None:
        """The next ``count`` calls of ``action`` get 403 ``Forbidden.RAM``, what RAM
        answers for a missing permission (docs: "RAM authorization errors")."""
        with self._lock:
            self._rules.append(_Rule("deny", action, count))

    def latency(self, seconds: float) -> None:
        """Delay every request by ``seconds`` before answering (0 turns it off)."""
        self._latency = max(0.0, seconds)

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()
        self._latency = 0.0

    @property
    def delay(self) -> float:
        return self._latency

    def take_lost(self, action: str) -> bool:
        """Whether this call's answer is to be lost (consumes one count)."""
        with self._lock:
            for rule in self._rules:
                if rule.kind == "lose" and rule.remaining > 0 and rule.action in (None, action):
                    rule.remaining -= 1
                    return True
        return False

    def take(self, action: str) -> ApiError | None:
        with self._lock:
            for rule in self._rules:
                if rule.kind == "lose":
                    continue
                if rule.remaining > 0 and rule.action in (None, action):
                    rule.remaining -= 1
                    if rule.kind == "deny":
                        return ApiError(403, "Forbidden.RAM", "User not authorized to "
                                        f"operate on the specified resource ({action}).")
                    if rule.kind == "throttle":
                        headers = ({} if rule.retry_after_ms is None
                                   else {"x-acs-retry-after": str(rule.retry_after_ms)})
                        return ApiError(rule.status, rule.code,
                                        "Request was denied due to flow control.", headers)
                    return ApiError(503, "ServiceUnavailable",
                                    "The request has failed due to a temporary failure of "
                                    "the server.")
            self._rules = [r for r in self._rules if r.remaining > 0]
        return None


# ------------------------------------------------------------------------- the server
@dataclass
class _Request:
    method: str
    path: str
    query_pairs: list[tuple[str, str]]
    headers: dict[str, list[str]]
    body: bytes


class AliyunEmulator:
    """A signature-verifying, stateful stand-in for the Alibaba Cloud APIs acmeali uses.

    Point the official SDKs at :attr:`endpoint` with ``protocol='http'``; nothing in
    acmeali knows this class exists.
    """

    def __init__(self, *, challtestsrv: TxtSink | None = None,
                 access_key_id: str = "LTAItestkeyid0001",
                 access_key_secret: str = "test-secret-value",
                 region: str = "cn-hangzhou") -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.region = region
        self.state = EmulatorState()
        self.faults = Faults()
        #: (action, params) of every call that authenticated, routed, had its required
        #: parameters and was not hit by an injected fault — business errors included.
        self.calls: list[tuple[str, dict[str, str]]] = []
        #: (action, code) of every error answer, injected faults included; the action is
        #: what the request claimed (header or query), "" when it named none.
        self.errors: list[tuple[str, str]] = []
        #: One entry per request: {"action", "auth" ("ACS3-HMAC-SHA256" | "HMAC-SHA1" |
        #: None), "status", "code" (None on success), "method"}.
        self.log: list[dict[str, Any]] = []
        self._backend = Backend(self.state, challtestsrv, region)
        self._keys: dict[str, str] = {access_key_id: access_key_secret}
        self._nonces: set[str] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> AliyunEmulator:
        emu = self

        class Handler(_Handler):
            emulator = emu

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name="aliyun-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> AliyunEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the emulator is not started")
        return int(self._httpd.server_address[1])

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``: host:port with no scheme, as the SDK ``endpoint`` wants."""
        return f"127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ seeding
    def add_cdn_domain(self, name: str, *, status: str = "online", https: bool = False
                       ) -> str:
        """Add a CDN domain; ``*.x`` is stored as ``.x``, as the console does. Returns the
        stored name."""
        stored = cdn_stored_name(name)
        with self.state.lock:
            self.state.cdn_domains[stored] = new_cdn_domain(self._backend, stored, "cdn",
                                                            status=status, https=https)
        return stored

    def add_dcdn_domain(self, name: str, *, status: str = "online", https: bool = False
                        ) -> str:
        stored = cdn_stored_name(name)
        with self.state.lock:
            self.state.dcdn_domains[stored] = new_cdn_domain(self._backend, stored, "dcdn",
                                                             status=status, https=https)
        return stored

    def bind_by_hand(self, cert_id: int, product: str = "SLB", domain: str = "") -> None:
        """Someone binds a CAS certificate to another product in the console (SLB, ALB,
        WAF, ... reference ``<CertId>-<region>``); ListCertificates then lists it in use."""
        with self.state.lock:
            self.state.cas_hand_bound.setdefault(cert_id, []).append((product, domain))

    def add_apigateway_domain(self, group_id: str, domain: str,
                              region: str = "cn-hangzhou") -> None:
        with self.state.lock:
            self.state.apigw_domains[(group_id, domain.lower())] = new_apigw_domain(
                group_id, domain.lower(), region)

    def add_dns_zone(self, zone: str) -> str:
        """Host a zone in Alidns; an IDN zone is kept (and listed) in Unicode, as AddDomain's
        doc example shows (DomainName=中文.com, PunyCode=xn--fsq270a.com). Returns the name
        Alidns lists."""
        listed = unicode_zone(zone)
        with self.state.lock:
            self.state.dns_zones.setdefault(listed, {})
        return listed

    def add_mqtt_instance(self, instance_id: str) -> str:
        """Create an instance and return its registration code."""
        with self.state.lock:
            inst = self.state.mqtt.setdefault(instance_id, new_instance())
            return str(inst["RegisterCode"])

    def register_device(self, instance_id: str, device_cert_pem: str) -> str:
        """Simulate a device's first connect; returns its DeviceSn (see mqtt.py)."""
        with self.state.lock:
            return _register_device(self._backend, instance_id, device_cert_pem)

    def add_clb_listener(self, lb_id: str, port: int, region: str = "cn-hangzhou",
                         domains: tuple[str, ...] = ()) -> None:
        with self.state.lock:
            slb.add_https_listener(self._backend, lb_id, port, region, domains)

    def add_alb_listener(self, listener_id: str, region: str = "cn-hangzhou") -> None:
        with self.state.lock:
            alb.add_listener(self._backend, listener_id, region)

    def add_nlb_listener(self, listener_id: str, region: str = "cn-hangzhou") -> None:
        with self.state.lock:
            nlb.add_listener(self._backend, listener_id, region)

    def add_cas_contact(self) -> int:
        with self.state.lock:
            return casjobs.add_contact(self._backend)

    def cloud_resources(self) -> list[dict[str, Any]]:
        """What ListCloudResources would list (for tests that bind "by hand")."""
        with self.state.lock:
            return casjobs.resources(self._backend)

    def add_access_key(self, access_key_id: str, secret: str) -> None:
        """A second (e.g. RAM user) key the emulator accepts."""
        self._keys[access_key_id] = secret

    # ------------------------------------------------------------------ config helpers
    def env(self) -> dict[str, str]:
        return {"ALIBABA_CLOUD_ACCESS_KEY_ID": self.access_key_id,
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET": self.access_key_secret,
                "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}

    def config_toml(self) -> str:
        lines = ["[aliyun]", f'region = "{self.region}"', 'protocol = "http"',
                 "[aliyun.endpoints]"]
        lines += [f'{name} = "{self.endpoint}"' for name in service_names()]
        return "\n".join(lines) + "\n"

    def calls_of(self, action: str) -> list[dict[str, str]]:
        """Parameters of every accepted call of one action, in order."""
        return [p for a, p in list(self.calls) if a == action]

    # ------------------------------------------------------------------ the pipeline
    def handle(self, req: _Request) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Answer one request: (status, extra headers, JSON body)."""
        request_id = str(uuid.uuid4()).upper()
        query = dict(req.query_pairs)
        action_name = (req.headers.get("x-acs-action") or [query.get("Action", "")])[0]
        product = VERSIONS.get((req.headers.get("x-acs-version")
                                or [query.get("Version", "")])[0], "")
        auth = ("ACS3-HMAC-SHA256" if (req.headers.get("authorization") or [""])[0]
                .startswith("ACS3-") else "HMAC-SHA1" if "Signature" in query else None)
        entry: dict[str, Any] = {"action": action_name, "auth": auth, "method": req.method,
                                 "status": 200, "code": None}
        self.log.append(entry)
        try:
            params, version, action_name = self._authenticate(req)
            product = VERSIONS.get(version, "")
            spec = self._route(product, version, action_name)
            missing = [n for n in spec.required if not params.get(n)]
            if missing:
                raise ApiError(400, f"Missing{missing[0]}",
                               f"{missing[0]} is mandatory for this action.")
            fault = self.faults.take(action_name)
            if fault is not None:
                raise fault
            self.calls.append((action_name, dict(params)))
            with self.state.lock:
                body = spec.handler(self._backend, params)
            if self.faults.take_lost(action_name):
                entry.update(status=0, code="(response lost)")
                return 0, {}, {"RequestId": request_id}
            return 200, {}, {"RequestId": request_id, **body}
        except (ApiError, SignatureError) as err:
            headers = getattr(err, "headers", {})
            self.errors.append((action_name, err.code))
            entry.update(status=err.status, code=err.code)
            host = HOSTS.get(product, "aliyuncs.com")
            return err.status, headers, {
                "RequestId": request_id, "HostId": host, "Code": err.code,
                "Message": err.message,
                "Recommend": f"https://api.aliyun.com/troubleshoot?q={err.code}"
                             f"&product={product or 'unknown'}&requestId={request_id}"}
        except Exception as exc:  # a bug in the emulator: say so loudly, as a 500
            self.errors.append((action_name, "InternalError"))
            entry.update(status=500, code="InternalError")
            return 500, {}, {"RequestId": request_id, "HostId": HOSTS.get(product, ""),
                             "Code": "InternalError",
                             "Message": f"emulator failure: {exc!r}", "Recommend": ""}

    def _route(self, product: str, version: str, action_name: str) -> ActionSpec:
        if not product:
            # GUESS: the real gateway's code for an unknown API version.
            raise ApiError(400, "InvalidVersion",
                           f"Specified parameter Version {version!r} is not valid.")
        spec = ACTIONS.get((product, action_name))
        if spec is None:
            raise ApiError(404, "InvalidAction.NotFound",
                           f"Specified api {action_name!r} is not found, please check your "
                           "url and method.")
        return spec

    def _check_nonce(self, nonce: str) -> None:
        with self.state.lock:
            if nonce in self._nonces:
                raise SignatureError(400, "SignatureNonceUsed",
                                     "Specified signature nonce was used already.")
            self._nonces.add(nonce)

    def _secret(self, access_key_id: str) -> str:
        secret = self._keys.get(access_key_id)
        if secret is None:
            raise SignatureError(404, "InvalidAccessKeyId.NotFound",
                                 "Specified access key is not found.")
        return secret

    def _authenticate(self, req: _Request) -> tuple[dict[str, str], str, str]:
        """Verify the signature; return (business params, version, action)."""
        auth = (req.headers.get("authorization") or [""])[0]
        query = dict(req.query_pairs)
        if auth.startswith("ACS3-"):
            return self._auth_v3(req, auth)
        if "Signature" in query:
            return self._auth_rpc(req, query)
        raise SignatureError(400, "IncompleteSignature",
                             "The request signature does not conform to Aliyun standards: "
                             "no Authorization header and no Signature parameter.")

    def _auth_v3(self, req: _Request, auth_value: str) -> tuple[dict[str, str], str, str]:
        auth = parse_v3_authorization(auth_value)
        for name in ("host", "x-acs-action", "x-acs-version", "x-acs-date",
                     "x-acs-signature-nonce", "x-acs-content-sha256"):
            if not req.headers.get(name):
                raise SignatureError(400, "IncompleteSignature",
                                     f"The header {name} is required by {V3_ALGORITHM}.")
        unsigned = [h for h in req.headers
                    if (h.startswith("x-acs-") or h == "host") and h not in auth.signed_headers]
        if unsigned:
            raise SignatureError(400, "IncompleteSignature",
                                 f"These headers must be signed: {', '.join(sorted(unsigned))}.")
        secret = self._secret(auth.access_key_id)
        check_clock(req.headers["x-acs-date"][0])
        payload_hash = sha256_hex(req.body)
        if req.headers["x-acs-content-sha256"][0].lower() != payload_hash:
            raise SignatureError(400, "SignatureDoesNotMatch",
                                 "x-acs-content-sha256 does not match the request body.")
        sts = v3_string_to_sign(req.method, req.path, req.query_pairs, req.headers,
                                auth.signed_headers, payload_hash)
        if not constant_time_equal(v3_signature(secret, sts), auth.signature.lower()):
            raise SignatureError(400, "SignatureDoesNotMatch",
                                 "Specified signature does not match our calculation. "
                                 f"server string to sign is:{sts}")
        self._check_nonce("v3:" + req.headers["x-acs-signature-nonce"][0])
        params = dict(req.query_pairs)
        params.update(_form(req))
        params.update(roa.params(req))
        return params, req.headers["x-acs-version"][0], req.headers["x-acs-action"][0]

    def _auth_rpc(self, req: _Request, query: dict[str, str]
                  ) -> tuple[dict[str, str], str, str]:
        params = dict(query)
        params.update(_form(req))
        for name in ("AccessKeyId", "SignatureNonce", "Timestamp", "Action", "Version"):
            if not params.get(name):
                raise SignatureError(400, f"Missing{name}",
                                     f"{name} is mandatory for this action.")
        if params.get("SignatureMethod", "HMAC-SHA1") != "HMAC-SHA1":
            raise SignatureError(400, "InvalidSignatureMethod",
                                 f"Specified signature method {params['SignatureMethod']!r} "
                                 "is not supported.")
        secret = self._secret(params["AccessKeyId"])
        check_clock(params["Timestamp"])
        sts = rpc_string_to_sign(req.method, params)
        if not hmac.compare_digest(rpc_signature(secret, sts).encode(),
                                   params["Signature"].encode()):
            raise SignatureError(400, "SignatureDoesNotMatch",
                                 "Specified signature does not match our calculation. "
                                 f"server string to sign is:{sts}")
        self._check_nonce("rpc:" + params["SignatureNonce"])
        business = {k: v for k, v in params.items() if k not in RPC_COMMON_PARAMS}
        return business, params["Version"], params["Action"]


def _form(req: _Request) -> Iterator[tuple[str, str]]:
    """Form-encoded body parameters (the SDK sends none for these actions; a hand-written
    legacy client may)."""
    ctype = (req.headers.get("content-type") or [""])[0]
    if req.body and ctype.startswith("application/x-www-form-urlencoded"):
        yield from parse_qsl(req.body.decode(), keep_blank_values=True)


class _Handler(BaseHTTPRequestHandler):
    emulator: AliyunEmulator
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's pooled session expects
    server_version = "AliyunEmulator"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        req = _Request(self.command, split.path or "/",
                       parse_qsl(split.query, keep_blank_values=True), headers, body)
        delay = self.emulator.faults.delay
        if delay:
            time.sleep(delay)
        if oss.serve(self.emulator, self, req):  # OSS has its own signature and XML
            return
        status, extra, payload = self.emulator.handle(req)
        if status == 0:  # the action ran, but the answer never reaches the client
            self.close_connection = True
            return
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-acs-request-id", payload["RequestId"])
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve
