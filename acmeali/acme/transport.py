"""The only module of the ACME layer that touches the network.

One keep-alive ``requests.Session``; TLS verification always on (an extra bundle *adds*
trust roots, never replaces or disables them); a nonce pool fed by the ``Replay-Nonce`` of
every response, errors included, so HEAD ``newNonce`` is paid only when the pool is empty
(RFC 8555 §7.2); ``badNonce`` retried with the fresh nonce the error carried (§6.5);
bounded retries with backoff for connection errors and 5xx where a retry is harmless;
problem documents mapped to exceptions in one place.

A hostile or broken network must cost bounded time and memory (issue 12, items 6-8):
- every request has a *wall-clock* deadline (``timeout``), not only a per-read one: the
  TCP connect gets the time left, and the sockets re-arm their timeout to the time left
  before each blocking step (TLS handshake, every read, an ``HTTPS_PROXY``'s answer to
  ``CONNECT``), so a CA or proxy trickling one byte a second, handshake or headers
  included, fails after ``timeout`` seconds instead of never; an optional deadline for the
  whole run (``set_run_deadline``, from ``renew --timeout``) caps every request too. Only
  https:// URLs are sent to (RFC 8555 §6.1): a plain connection would be armed by none of
  this. Name resolution (``getaddrinfo``) cannot be interrupted and is not bounded here;
  the run watchdog (``acmeali/watchdog.py``) bounds it;
- bodies are streamed and refused past ``MAX_BODY`` (ACME JSON and PEM chains are
  kilobytes), so a 100 MB answer costs 1 MiB of memory at most;
- every failure of requests/urllib3/http.client/socket while sending or reading is mapped
  here, in ``_send``: retried when the request is safe to repeat, else one clear
  ``TransportError``. Nothing below this module reaches the user as a traceback.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import socket
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
import urllib3
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
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
MAX_BODY = 1 << 20  # ACME JSON and PEM chains are kilobytes; refuse anything past 1 MiB
_CHUNK = 16384

# Failures that say the request itself is wrong: repeating it cannot help.
_NEVER_RETRY = (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                requests.exceptions.MissingSchema, requests.exceptions.InvalidHeader)

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


# --------------------------------------------------------------------------- deadlines
_local = threading.local()  # .deadline: monotonic time the current request must end by
_run_deadline: float | None = None


def set_run_deadline(deadline: float | None) -> None:
    """Cap every later request of this process at ``deadline`` (a ``time.monotonic()``
    value; None lifts the cap). ``renew --timeout`` sets it so a slow CA cannot keep the
    run, and the locks it holds, beyond its time limit."""
    global _run_deadline
    _run_deadline = deadline


def run_deadline_passed() -> bool:
    return _run_deadline is not None and time.monotonic() >= _run_deadline


class RequestDeadline(TimeoutError):
    """The current request's wall-clock deadline passed (raised from a socket read)."""


def _time_left() -> float | None:
    """Seconds the current request has left (None: no deadline armed on this thread)."""
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise RequestDeadline("request deadline passed")
    return left


def _arm(sock: socket.socket) -> None:
    left = _time_left()
    if left is not None:
        sock.settimeout(left)


class _DeadlineSSLSocket(ssl.SSLSocket):
    """Before every read, the socket timeout becomes the time left for the whole request.

    requests' ``timeout`` bounds each read, so a server sending a byte every few seconds
    is never timed out; re-arming the timeout per read turns it into a deadline. Installed
    as ``SSLContext.sslsocket_class`` (the documented way to subclass SSLSocket); ACME is
    HTTPS only, so every CA connection goes through it. The handshake is armed too (the
    ssl module bounds a whole ``do_handshake`` by the timeout it starts with).
    """

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        _arm(self)
        return super().read(len, buffer)

    def do_handshake(self, block: bool = False) -> None:
        _arm(self)
        super().do_handshake(block)


class _DeadlineSocket(socket.socket):
    """The plain TCP socket under the TLS one, armed the same way before each read.

    It is read from only before TLS starts: the ``CONNECT`` answer of an HTTP proxy
    (``HTTPS_PROXY``), which a proxy trickling one byte at a time could otherwise stretch
    without end (each read waits less than the timeout). Once wrapped, the TLS socket
    above takes over the file descriptor.
    """

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        _arm(self)
        return super().recv(bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        _arm(self)
        return super().recv_into(buffer, nbytes, flags)


class _DeadlineHTTPSConnection(urllib3.connection.HTTPSConnection):
    """Connects within the time the request has left, on a :class:`_DeadlineSocket`."""

    def _new_conn(self) -> socket.socket:
        left = _time_left()
        if left is not None and (self.timeout is None or left < self.timeout):
            self.timeout = left  # the run's deadline may be nearer than [acme] timeout
        sock = super()._new_conn()
        timeout = sock.gettimeout()
        # Same descriptor, our class; its timeout is set again at once (a socket built
        # from a descriptor starts with the default timeout, not this one's).
        armed = _DeadlineSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        armed.settimeout(timeout)
        return armed


class _DeadlineHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOLS = {"http": urllib3.connectionpool.HTTPConnectionPool, "https": _DeadlineHTTPSPool}


class _ExtraRootsAdapter(requests.adapters.HTTPAdapter):
    """Verifies with an SSLContext holding certifi + system roots + the user's bundle.

    requests documents ``build_connection_pool_key_attributes`` as the hook for a custom
    context; ``cert_req`` stays CERT_REQUIRED.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> urllib3.PoolManager:
        """Through ``HTTPS_PROXY`` too, connections are our deadline-armed ones."""
        manager: urllib3.PoolManager = super().proxy_manager_for(*args, **kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str,
        cert: str | tuple[str, str] | None = None,
    ) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert)
        pool_kwargs["ssl_context"] = self._context
        pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: bool | str,
                    cert: str | tuple[str, str] | None) -> None:
        """Our context already holds certifi: without this, urllib3 loads certifi's roots
        into it again for every new connection (~15 ms each)."""
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        if url.lower().startswith("https") and verify:
            conn.ca_certs = None
            conn.ca_cert_dir = None


_contexts: dict[str, ssl.SSLContext] = {}
_anchors: dict[str, list[bytes]] = {}  # trust_anchors per bundle, like the contexts
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


def trust_anchors(ca_bundle: str | None) -> list[bytes]:
    """DER of the root certificates this client trusts (certifi, the system CA file,
    ``ca_bundle``): what an issued chain is checked against where one of them is its root.
    Roots the system keeps only in a hashed directory are not listed (OpenSSL loads
    those lazily), so for them the check is skipped, not failed."""
    key = ca_bundle or ""
    with _contexts_lock:
        cached = _anchors.get(key)
    if cached is None:
        cached = _anchors[key] = list(trust_context(ca_bundle).get_ca_certs(binary_form=True))
    return cached


def _build_context(ca_bundle: str | None) -> ssl.SSLContext:
    import certifi

    ctx = ssl.create_default_context(cafile=certifi.where())
    ctx.sslsocket_class = _DeadlineSSLSocket
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


def _describe(exc: BaseException) -> str:
    """A short, stable name for what went wrong (no message parsing, no secrets)."""
    known: list[tuple[type[BaseException], str]] = [
        (requests.exceptions.ChunkedEncodingError, "the answer was cut short"),
        (requests.exceptions.ContentDecodingError, "the answer could not be decompressed"),
        (requests.exceptions.ConnectTimeout, "connecting timed out"),
        (requests.exceptions.ReadTimeout, "no answer in time"),
        (requests.exceptions.InvalidURL, "invalid URL"),
        (requests.exceptions.TooManyRedirects, "too many redirects"),
    ]
    for kind, text in known:
        if isinstance(exc, kind):
            return text
    if _caused_by(exc, NewConnectionError):
        return "connection refused or unreachable"
    if _caused_by(exc, http.client.RemoteDisconnected) or _caused_by(
            exc, ConnectionResetError):
        return "the connection was dropped without an answer"
    if _caused_by(exc, urllib3.exceptions.ProtocolError):
        return "the connection broke mid-answer"
    return type(exc).__name__


class Transport:
    """HTTP for one ACME server. Thread-safe enough for a bounded renewal pool."""

    def __init__(self, *, ca_bundle: str | None = None, timeout: float = 30.0,
                 user_agent: str = USER_AGENT, backoff: float = 0.5) -> None:
        self.timeout = timeout
        self.backoff = backoff
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self.session.verify = True
        # Always our own context: it carries the deadline socket (and the extra roots).
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
    def _feed(self, resp: requests.Response | Response) -> None:
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
              headers: Mapping[str, str] | None = None) -> Response:
        """One logical request with bounded retries; feeds the nonce pool every time.

        ``body()`` is called per attempt: a retried POST must be signed with a fresh nonce,
        the previous one may have been consumed by the CA. The one place where failures
        of the HTTP stack become ``TransportError`` (or a retry).
        """
        if not url.lower().startswith("https://"):
            # RFC 8555 §6.1: ACME is HTTPS only. A CA naming an http:// URL (in its
            # directory, a Location, a Link) would get signed requests in clear text, on a
            # connection none of the deadlines above arm.
            raise TransportError(f"not sending {method} {url}: the CA gave a URL that is "
                                 "not https (ACME is HTTPS only, RFC 8555 §6.1)",
                                 hint="the CA (or a proxy in between) is misbehaving; check "
                                      "the server URL")
        attempt = 0
        while True:
            attempt += 1
            if run_deadline_passed():
                raise TransportError(f"not sending {method} {url}: the run's time limit "
                                     "has passed", hint="raise `renew --timeout` (or "
                                     "[renewal] run_timeout) if the CA is merely slow")
            data = body() if body is not None else None
            with self._lock:
                self.request_count += 1
                self.requests_log.append((method, url))
            deadline = time.monotonic() + self.timeout
            if _run_deadline is not None:
                deadline = min(deadline, _run_deadline)
            _local.deadline = deadline
            try:
                resp = self._exchange(method, url, data, headers)
            except TransportError:
                raise
            except requests.exceptions.SSLError as exc:
                if time.monotonic() >= deadline:
                    raise self._deadline_error(method, url) from exc
                raise self._tls_error(url, exc) from exc
            except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError,
                    http.client.HTTPException, OSError, ValueError) as exc:
                # ValueError: what urllib3/http.client raise on some malformed answers.
                if time.monotonic() >= deadline:
                    # Wall-clock deadline: a CA this slow will not be faster on a retry.
                    raise self._deadline_error(method, url) from exc
                # A refused/failed connect never reached the CA: always safe to repeat.
                unsent = (isinstance(exc, requests.exceptions.ConnectTimeout)
                          or _caused_by(exc, NewConnectionError))
                if (attempt < MAX_ATTEMPTS and (retry_safe or unsent)
                        and not isinstance(exc, _NEVER_RETRY)):
                    delay = self.backoff * 2 ** (attempt - 1)
                    log.debug("%s %s failed (%s); retry in %.1fs", method, url,
                              type(exc).__name__, delay)
                    time.sleep(delay)
                    continue
                raise TransportError(
                    f"cannot reach the CA at {url}: {_describe(exc)}",
                    hint="check the network, proxy settings and the server URL"
                    + ("" if retry_safe else "; the request was not repeated because "
                       "repeating it could act twice")) from exc
            finally:
                _local.deadline = None
            log.debug("%s %s -> %d (%d bytes)", method, url, resp.status, len(resp.content))
            if resp.status >= 500 and retry_safe and attempt < MAX_ATTEMPTS:
                wait = resp.retry_after
                if wait is None or wait <= MAX_SERVER_RETRY_AFTER:
                    time.sleep(self.backoff * 2 ** (attempt - 1) if wait is None else wait)
                    continue
            return resp

    def _exchange(self, method: str, url: str, data: bytes | None,
                  headers: Mapping[str, str] | None) -> Response:
        """Send once and read the body, at most ``MAX_BODY`` bytes of it."""
        resp = self.session.request(method, url, data=data, headers=dict(headers or {}),
                                    timeout=self.timeout, allow_redirects=False, stream=True)
        try:
            self._feed(resp)
            declared = resp.headers.get("Content-Length", "").strip()
            if declared.isdigit() and int(declared) > MAX_BODY:
                raise self._too_large(url, f"it announced {int(declared)} bytes")
            content = bytearray()
            if method != "HEAD":
                for chunk in resp.iter_content(_CHUNK):
                    content += chunk
                    if len(content) > MAX_BODY:
                        raise self._too_large(url, "it sent more")
        finally:
            resp.close()  # a fully read body returns the connection to the pool
        return Response(status=resp.status_code, headers=resp.headers, content=bytes(content),
                        url=resp.url or url)

    @staticmethod
    def _too_large(url: str, how: str) -> TransportError:
        return TransportError(f"the answer from {url} is larger than {MAX_BODY // 1024} KiB "
                              f"({how}); ACME answers are a few kilobytes, so it was refused",
                              hint="the CA (or a proxy in between) is misbehaving; check the "
                                   "server URL and any proxy settings")

    def _deadline_error(self, method: str, url: str) -> TransportError:
        if run_deadline_passed():
            return TransportError(f"{method} {url} was cut off: the run's time limit passed",
                                  hint="raise `renew --timeout` (or [renewal] run_timeout) "
                                       "if the CA is merely slow")
        return TransportError(f"no complete answer to {method} {url} within "
                              f"{self.timeout:g} s",
                              hint="the CA or the network is too slow; retry later or raise "
                                   "[acme] timeout")

    @staticmethod
    def _tls_error(url: str, exc: BaseException) -> TransportError:
        if _caused_by(exc, ssl.SSLCertVerificationError):
            return TransportError(
                f"TLS certificate of {url} could not be verified",
                hint="if the CA uses a private root, pass its certificate with --ca-bundle "
                     "(it is added to the system roots; verification is never turned off)")
        return TransportError(f"TLS handshake with {url} failed: {type(exc).__name__}")

    def _result(self, out: Response) -> Response:
        if out.status < 400:
            return out
        ctype = out.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype == PROBLEM_JSON or ctype == "application/json":
            try:
                doc = json.loads(out.content)
            except ValueError:
                doc = None
            if isinstance(doc, dict) and "type" in doc:
                problem = problem_from_json(doc, status=out.status,
                                            retry_after=out.retry_after, url=out.url)
                log.debug("problem %s from %s: %s", problem.type, out.url, problem.detail)
                raise problem
        raise TransportError(f"HTTP {out.status} from {out.url} (not an ACME answer)")

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
