"""A loopback HTTPS reverse proxy in front of Pebble that misbehaves on request.

What no real peer does on cue, for issue 12: a network or CA that drops, stalls, trickles,
truncates or inflates a chosen answer, and a CA that answers differently from Pebble
(an order left ``pending`` after its authorization failed, ARI advertised but failing or
not advertised at all, a certificate without an extension the CSR asked for, a chain
without its intermediate). Requests are forwarded to Pebble unchanged (the JWS is signed
for the proxy's URL; Pebble builds and checks URLs from the Host header, which is passed
through); every Pebble URL in an answer is rewritten to the proxy's.

A ``Rule`` picks answers by method and path (a regular expression searched in the path)
and by occurrence: ``skip`` matching requests pass untouched, then ``times`` of them get
the fault (``None``: all later ones). Faults:

- ``drop``      close the connection without answering;
- ``stall``     wait ``seconds`` before answering (or until the proxy stops);
- ``trickle``   send the body one byte every ``seconds``;
- ``truncate``  announce the full Content-Length, send ``keep`` bytes, close;
- ``inflate``   send the real body followed by ``size`` junk bytes, chunked (no length);
- ``rewrite``   ``edit(status, headers, body) -> (status, headers, body)`` before sending;
- ``status``    answer ``status`` with ``body`` (e.g. a 500) instead of asking Pebble.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.peers.pebble import Pebble, make_tls_cert

_COPIED = ("Replay-Nonce", "Location", "Retry-After", "Content-Type", "Cache-Control",
           "Content-Encoding")

Answer = tuple[int, dict[str, str], bytes]
Edit = Callable[[int, dict[str, str], bytes], Answer]


@dataclass
class Rule:
    path: str  # regular expression, searched in the request path
    fault: str  # drop | stall | trickle | truncate | inflate | rewrite | status
    method: str | None = None
    skip: int = 0
    times: int | None = 1
    seconds: float = 1.0
    keep: int = 10
    size: int = 100 * 1024 * 1024
    edit: Edit | None = None
    status: int = 500
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    seen: int = 0  # matching requests so far
    applied: int = 0  # faults done so far

    def take(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        if not re.search(self.path, path):
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.times is not None and self.applied >= self.times:
            return False
        self.applied += 1
        return True


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    fault: str | None
    sent: int = 0  # body bytes written to the client


@dataclass
class Window:
    start: datetime
    end: datetime
    retry_after: int | None = 3600


class FaultProxy:
    """``with FaultProxy(pebble, workdir) as proxy:`` then ``proxy.directory_url``."""

    def __init__(self, pebble: Pebble, workdir: Path, *, ari: bool = False) -> None:
        self.pebble = pebble
        workdir.mkdir(parents=True, exist_ok=True)
        self.tls_cert, self.tls_key = make_tls_cert(workdir)
        self.ari = ari  # advertise renewalInfo in the directory and serve ``window``
        self.window: Window | None = None
        self.rules: list[Rule] = []
        self.log: list[Exchange] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._upstream = ssl.create_default_context(cafile=pebble.ca_bundle)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.tls_cert), str(self.tls_key))
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- public
    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def directory_url(self) -> str:
        return f"{self.base_url}/dir"

    @property
    def ca_bundle(self) -> str:
        return str(self.tls_cert)

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self, *, log: bool = False) -> None:
        """Drop every rule (and with ``log``, the record of past exchanges)."""
        with self._lock:
            self.rules.clear()
            if log:
                self.log.clear()

    def exchanges(self, path: str = "") -> list[Exchange]:
        with self._lock:
            return [e for e in self.log if re.search(path, e.path)]

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fault-proxy")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- answers
    def _rewrite(self, data: bytes) -> bytes:
        return data.replace(f"https://127.0.0.1:{self.pebble.port}".encode(),
                            self.base_url.encode())

    def _renewal_info(self) -> Answer:
        w = self.window
        if w is None:
            return 404, {"Content-Type": "application/problem+json"}, json.dumps(
                {"type": "urn:ietf:params:acme:error:malformed",
                 "detail": "no renewal info"}).encode()
        body = {"suggestedWindow": {
            "start": w.start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": w.end.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}}
        headers = {"Content-Type": "application/json"}
        if w.retry_after is not None:
            headers["Retry-After"] = str(w.retry_after)
        return 200, headers, json.dumps(body).encode()

    def _forward(self, method: str, path: str, host: str, headers: dict[str, str],
                 body: bytes | None) -> Answer:
        req = urllib.request.Request(f"https://127.0.0.1:{self.pebble.port}{path}", data=body,
                                     method=method)
        for k, v in headers.items():
            req.add_header(k, v)
        req.add_header("Host", host)
        req.add_header("Accept-Encoding", "identity")
        try:
            resp = urllib.request.urlopen(req, context=self._upstream, timeout=30)
        except urllib.error.HTTPError as err:
            resp = err
        with resp:
            data = resp.read()
            out = {k: self._rewrite(v.encode()).decode() for k in _COPIED
                   if (v := resp.headers.get(k)) is not None}
            links = resp.headers.get_all("Link") or []
            status = resp.status if hasattr(resp, "status") else resp.code
        if links:
            out["Link"] = ", ".join(self._rewrite(v.encode()).decode() for v in links)
        data = self._rewrite(data)
        if method == "GET" and path.split("?")[0] == "/dir" and status == 200 and self.ari:
            directory = json.loads(data)
            directory["renewalInfo"] = f"{self.base_url}/renewal-info"
            data = json.dumps(directory).encode()
        return int(status), out, data

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy._lock:
                    rule = next((r for r in proxy.rules if r.take(method, self.path)), None)
                ex = Exchange(method, self.path, 0, rule.fault if rule else None)
                with proxy._lock:
                    proxy.log.append(ex)
                if rule is not None and rule.fault == "drop":
                    self.close_connection = True
                    return
                if rule is not None and rule.fault == "status":
                    status, headers, data = rule.status, dict(rule.headers), rule.body
                elif method == "GET" and self.path.startswith("/renewal-info/") and proxy.ari:
                    status, headers, data = proxy._renewal_info()
                else:
                    fwd = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "accept", "user-agent")}
                    status, headers, data = proxy._forward(
                        method, self.path, self.headers.get("Host") or
                        f"127.0.0.1:{proxy.port}", fwd, body)
                if rule is not None and rule.fault == "rewrite" and rule.edit is not None:
                    status, headers, data = rule.edit(status, headers, data)
                if rule is not None and rule.fault == "stall":
                    proxy._stopping.wait(rule.seconds)
                ex.status = status
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                fault = rule.fault if rule else None
                if fault == "inflate":
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if method == "HEAD":
                    return
                try:
                    self._body(rule, data, ex)
                except OSError:  # the client gave up: that is what some tests want
                    self.close_connection = True

            def _body(self, rule: Rule | None, data: bytes, ex: Exchange) -> None:
                fault = rule.fault if rule else None
                if rule is None or fault not in ("trickle", "truncate", "inflate"):
                    self.wfile.write(data)
                    ex.sent = len(data)
                    return
                if fault == "truncate":
                    self.wfile.write(data[:rule.keep])
                    ex.sent = min(len(data), rule.keep)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if fault == "trickle":
                    for i in range(len(data)):
                        if proxy._stopping.wait(rule.seconds if i else 0):
                            break
                        self.wfile.write(data[i:i + 1])
                        self.wfile.flush()
                        ex.sent += 1
                    self.close_connection = True
                    return
                # inflate: the real answer, then junk, in 64 KiB chunks until size is sent
                junk = b" " * 65536
                left = rule.size
                self._chunk(data)
                ex.sent = len(data)
                while left > 0 and not proxy._stopping.is_set():
                    piece = junk[:left]
                    self._chunk(piece)
                    ex.sent += len(piece)
                    left -= len(piece)
                self.wfile.write(b"0\r\n\r\n")

            def _chunk(self, data: bytes) -> None:
                if data:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_HEAD(self) -> None:
                self._serve("HEAD")

        return Handler


def json_edit(change: Callable[[dict[str, Any]], None]) -> Edit:
    """A ``rewrite`` edit that changes a JSON answer in place (other answers pass)."""
    def edit(status: int, headers: dict[str, str], body: bytes) -> Answer:
        try:
            doc = json.loads(body)
        except ValueError:
            return status, headers, body
        if isinstance(doc, dict):
            change(doc)
        return status, headers, json.dumps(doc).encode()
    return edit


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False
