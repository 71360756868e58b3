"""The only module of the ACME layer that touches the network.

One keep-alive ``requests.Session``; TLS verification always on (an extra bundle *adds*
trust roots, never replaces or disables them); a nonce pool fed by the ``Replay-Nonce`` of
every response, errors included, so HEAD ``newNonce`` is paid only when the pool is empty
(RFC 8555 §7.2); ``badNonce`` retried with the fresh nonce the error carried (§6.5);
bounded retries with backoff for connection errors and 5xx where a retry is harmless;
problem documents mapped to exceptions in one place.
"""

from __future__ import annotations

import email.utils
import json
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
import requests.adapters
import requests.utils
from urllib3.exceptions import NewConnectionError

from acmeali import __version__
from acmeali.acme.errors import BadNonce, TransportError, problem_from_json

if TYPE_CHECKING:  # typeshed's names for what requests returns here
    from requests.adapters import _HostParams, _PoolKwargs

log = logging.getLogger("acmeali.acme")

USER_AGENT = f"acmeali/{__version__}"
JOSE_JSON = "application/jose+json"
PROBLEM_JSON = "application/problem+json"

# Real CAs reject a nonce rarely; a test CA rejecting 60% of them would make a bound of
# 10 fail one request in ~270 (0.6**11). 20 keeps it bounded and never flaky (0.6**21).
MAX_BAD_NONCE_RETRIES = 20
MAX_ATTEMPTS = 4  # first try + 3 retries on connection errors / 5xx
MAX_SERVER_RETRY_AFTER = 10.0  # longer Retry-After on a 5xx: give up and tell the user

Signer = Callable[[str], Mapping[str, Any]]  # nonce -> flattened JWS


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date
    (RFC 9110 §10.2.3). None when absent or garbage; never negative."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # case-insensitive (requests' CaseInsensitiveDict)
    content: bytes
    url: str

    def json(self) -> Any:
        try:
            return json.loads(self.content)
        except ValueError as exc:
            raise TransportError(f"the CA sent invalid JSON from {self.url}") from exc

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))

    def links(self, rel: str) -> list[str]:
        """All ``Link`` targets with this relation (§7.4.2 may send several alternates)."""
        raw = self.headers.get("Link")
        if not raw:
            return []
        out = []
        for link in requests.utils.parse_header_links(raw):
            if rel in link.get("rel", "").split() and link.get("url"):
                out.append(link["url"])
        return out


class _ExtraRootsAdapter(requests.adapters.HTTPAdapter):
    """Verifies with an SSLContext holding certifi + system roots + the user's bundle.

    requests documents ``build_connection_pool_key_attributes`` as the hook for a custom
    context; ``cert_req`` stays CERT_REQUIRED and urllib3 may load certifi into it again,
    which only adds roots.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str,
        cert: str | tuple[str, str] | None = None,
    ) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert)
        pool_kwargs["ssl_context"] = self._context
        pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        return host_params, pool_kwargs


_contexts: dict[str, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def trust_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Default trust (certifi and the system store) plus ``ca_bundle`` if given.

    Built once per process and bundle: parsing ~300 root certificates takes tens of
    milliseconds, and ``renew`` makes one client per worker thread. An SSLContext is safe
    to share between threads once it is set up.
    """
    key = ca_bundle or ""
    with _contexts_lock:
        ctx = _contexts.get(key)
        if ctx is None:
            ctx = _contexts[key] = _build_context(ca_bundle)
        return ctx


def _build_context(ca_bundle: str | None) -> ssl.SSLContext:
    import certifi

    ctx = ssl.create_default_context(cafile=certifi.where())
    ctx.load_default_certs()
    if ca_bundle:
        try:
            ctx.load_verify_locations(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(f"cannot load CA bundle {ca_bundle}: {exc}",
                                 hint="--ca-bundle must be a PEM file of CA certificates") from exc
    return ctx


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Search the chain requests/urllib3 build (args, reason, __cause__, __context__)."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        cur = stack.pop()
        if not isinstance(cur, BaseException) or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, kind):
            return True
        stack.extend(cur.args)
        stack.extend([getattr(cur, "reason", None), cur.__cause__, cur.__context__])
    return False


class Transport:
    """HTTP for one ACME server. Thread-safe enough for a bounded renewal pool."""

    def __init__(self, *, ca_bundle: str | None = None, timeout: float = 30.0,
                 user_agent: str = USER_AGENT, backoff: float = 0.5) -> None:
        self.timeout = timeout
        self.backoff = backoff
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self.session.verify = True
        if ca_bundle:
            self.session.mount("https://", _ExtraRootsAdapter(trust_context(ca_bundle)))
        self.ca_bundle = ca_bundle
        self._nonces: deque[str] = deque(maxlen=32)
        self._lock = threading.Lock()
        self.request_count = 0
        self.bad_nonce_retries = 0
        # (method, url) of recent requests, for tests and the bench; bounded for long runs.
        self.requests_log: deque[tuple[str, str]] = deque(maxlen=1000)

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------------ nonces
    def _feed(self, resp: requests.Response) -> None:
        nonce = resp.headers.get("Replay-Nonce")
        if nonce:
            with self._lock:
                self._nonces.append(nonce)

    def _take_nonce(self, nonce_url: str) -> str:
        with self._lock:
            if self._nonces:
                return self._nonces.popleft()
        self._send("HEAD", nonce_url, retry_safe=True)
        with self._lock:
            if self._nonces:
                return self._nonces.popleft()
        raise TransportError(f"the CA sent no Replay-Nonce from {nonce_url}")

    # ------------------------------------------------------------------ sending
    def _send(self, method: str, url: str, *, retry_safe: bool,
              body: Callable[[], bytes] | None = None,
              headers: Mapping[str, str] | None = None) -> requests.Response:
        """One logical request with bounded retries; feeds the nonce pool every time.

        ``body()`` is called per attempt: a retried POST must be signed with a fresh nonce,
        the previous one may have been consumed by the CA.
        """
        attempt = 0
        while True:
            attempt += 1
            data = body() if body is not None else None
            with self._lock:
                self.request_count += 1
                self.requests_log.append((method, url))
            try:
                resp = self.session.request(method, url, data=data, headers=dict(headers or {}),
                                            timeout=self.timeout, allow_redirects=False)
            except requests.exceptions.SSLError as exc:
                raise self._tls_error(url, exc) from exc
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                # A refused/failed connect never reached the CA: always safe to repeat.
                unsent = (isinstance(exc, requests.exceptions.ConnectTimeout)
                          or _caused_by(exc, NewConnectionError))
                if attempt < MAX_ATTEMPTS and (retry_safe or unsent):
                    delay = self.backoff * 2 ** (attempt - 1)
                    log.debug("%s %s failed (%s); retry in %.1fs", method, url,
                              type(exc).__name__, delay)
                    time.sleep(delay)
                    continue
                raise TransportError(f"cannot reach the CA at {url}: {type(exc).__name__}",
                                     hint="check the network, proxy settings and the "
                                     "server URL") from exc
            self._feed(resp)
            log.debug("%s %s -> %d (%d bytes)", method, url, resp.status_code,
                      len(resp.content))
            if resp.status_code >= 500 and retry_safe and attempt < MAX_ATTEMPTS:
                wait = parse_retry_after(resp.headers.get("Retry-After"))
                if wait is None or wait <= MAX_SERVER_RETRY_AFTER:
                    time.sleep(self.backoff * 2 ** (attempt - 1) if wait is None else wait)
                    continue
            return resp

    @staticmethod
    def _tls_error(url: str, exc: BaseException) -> TransportError:
        if _caused_by(exc, ssl.SSLCertVerificationError):
            return TransportError(
                f"TLS certificate of {url} could not be verified",
                hint="if the CA uses a private root, pass its certificate with --ca-bundle "
                     "(it is added to the system roots; verification is never turned off)")
        return TransportError(f"TLS handshake with {url} failed: {type(exc).__name__}")

    def _result(self, resp: requests.Response) -> Response:
        out = Response(status=resp.status_code, headers=resp.headers, content=resp.content,
                       url=resp.url or "")
        if resp.status_code < 400:
            return out
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        retry_after = out.retry_after
        if ctype == PROBLEM_JSON or ctype == "application/json":
            try:
                doc = resp.json()
            except ValueError:
                doc = None
            if isinstance(doc, dict) and "type" in doc:
                problem = problem_from_json(doc, status=resp.status_code,
                                            retry_after=retry_after, url=out.url)
                log.debug("problem %s from %s: %s", problem.type, out.url, problem.detail)
                raise problem
        raise TransportError(f"HTTP {resp.status_code} from {out.url} (not an ACME answer)")

    # ------------------------------------------------------------------ public API
    def get(self, url: str, *, accept: str | None = None) -> Response:
        """Unauthenticated GET (directory, ARI): idempotent, so retried."""
        headers = {"Accept": accept} if accept else None
        return self._result(self._send("GET", url, retry_safe=True, headers=headers))

    def post(self, url: str, sign: Signer, *, nonce_url: str, accept: str | None = None,
             retry_safe: bool = False) -> Response:
        """Signed POST. ``sign(nonce)`` is called once per attempt, with a fresh nonce.

        ``retry_safe`` marks POST-as-GET and other requests whose repetition cannot change
        the outcome; they are retried on 5xx and dropped connections too.
        """
        headers = {"Content-Type": JOSE_JSON}
        if accept:
            headers["Accept"] = accept

        def body() -> bytes:
            return json.dumps(dict(sign(self._take_nonce(nonce_url)))).encode()

        bad_nonces = 0
        while True:
            resp = self._send("POST", url, retry_safe=retry_safe, body=body, headers=headers)
            try:
                return self._result(resp)
            except BadNonce:
                # §6.5: the error response carried a fresh nonce (already pooled); use it.
                if bad_nonces >= MAX_BAD_NONCE_RETRIES:
                    raise
                bad_nonces += 1
                with self._lock:
                    self.bad_nonce_retries += 1
                log.debug("badNonce from %s; retry %d", url, bad_nonces)
