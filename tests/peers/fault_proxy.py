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
- ``trickle-head`` send the status line and headers one byte every ``seconds`` (then the
  body at once), so a client that bounds only each read waits for ever;
- ``truncate``  announce the full Content-Length, send ``keep`` bytes, close;
- ``inflate``   send the real body followed by ``size`` junk bytes, chunked (no length);
- ``rewrite``   ``edit(status, headers, body) -> (status, headers, body)`` before sending;
- ``status``    answer ``status`` with ``body`` (e.g. a 500) instead of asking Pebble.

Below HTTP, ``TrickleRelay`` is a TCP relay in front of any listener that passes the
server's bytes on one at a time from the first one: the TLS handshake itself trickles.
With ``connect=True`` it is an HTTP proxy (``HTTPS_PROXY``) that trickles only its answer
to ``CONNECT``, then relays the tunnel at full speed.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.peers.pebble import Pebble
from tests.peers.pebble_front import Answer, PebbleFront, Window, renewal_info_answer

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


class FaultProxy(PebbleFront):
    """``with FaultProxy(pebble, workdir) as proxy:`` then ``proxy.directory_url``."""

    thread_name = "fault-proxy"

    def __init__(self, pebble: Pebble, workdir: Path, *, ari: bool = False) -> None:
        self.window: Window | None = None  # served when ``ari`` advertises renewalInfo
        self.rules: list[Rule] = []
        self.log: list[Exchange] = []
        super().__init__(pebble, workdir, ari=ari)

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

    # ----------------------------------------------------------------- answers
    def _renewal_info(self) -> Answer:
        return renewal_info_answer(self.window)

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
                    status, headers, data = proxy.forward_request(self, method, body)
                if rule is not None and rule.fault == "rewrite" and rule.edit is not None:
                    status, headers, data = rule.edit(status, headers, data)
                if rule is not None and rule.fault == "stall":
                    proxy._stopping.wait(rule.seconds)
                ex.status = status
                if rule is not None and rule.fault == "trickle-head":
                    self._trickle_head(rule, status, headers, data, ex)
                    return
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

            def _trickle_head(self, rule: Rule, status: int, headers: dict[str, str],
                              data: bytes, ex: Exchange) -> None:
                head = "".join([f"HTTP/1.1 {status} {self.responses[status][0]}\r\n",
                                *(f"{k}: {v}\r\n" for k, v in headers.items()
                                  if k.lower() != "content-length"),
                                f"Content-Length: {len(data)}\r\n\r\n"]).encode("latin-1")
                self.close_connection = True
                try:
                    for i in range(len(head)):
                        if proxy._stopping.wait(rule.seconds if i else 0):
                            return
                        self.wfile.write(head[i:i + 1])
                        self.wfile.flush()
                    self.wfile.write(data)
                    ex.sent = len(data)
                except OSError:  # the client gave up: that is what the tests want
                    pass

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


class TrickleRelay:
    """``with TrickleRelay(port, seconds) as relay:`` then connect to ``relay.port``.

    A loopback TCP relay to ``127.0.0.1:port``: the client's bytes go through at once, the
    server's one byte every ``seconds`` from the first (TLS ServerHello) on, so the TLS
    handshake takes minutes while no single read ever waits ``seconds``. ``connect``: an
    HTTP proxy instead, whose ``200`` to the client's ``CONNECT`` trickles (wherever the
    client asked to go, the tunnel leads to ``port``). ``connections`` counts the clients
    accepted.
    """

    CONNECTED = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: trickle\r\n\r\n"

    def __init__(self, upstream_port: int, seconds: float, *, connect: bool = False) -> None:
        self.upstream_port = upstream_port
        self.seconds = seconds
        self.connect = connect
        self.connections = 0
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> TrickleRelay:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        for t in self._threads:
            t.join(timeout=5)
        self._listener.close()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True, name="trickle-relay")
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._spawn(self._relay, client)

    def _relay(self, client: socket.socket) -> None:
        client.settimeout(0.2)
        try:
            if self.connect and not self._tunnel(client):
                client.close()
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            client.close()
            return
        server.settimeout(0.2)
        self._spawn(self._pump, client, server, 0.0)
        self._pump(server, client, 0.0 if self.connect else self.seconds)

    def _tunnel(self, client: socket.socket) -> bool:
        """Read the client's CONNECT request, trickle the proxy's 200; False if it left."""
        request = b""
        while b"\r\n\r\n" not in request:
            try:
                data = client.recv(4096)
            except TimeoutError:
                if self._stopping.is_set():
                    return False
                continue
            if not data:
                return False
            request += data
        if not request.startswith(b"CONNECT "):
            return False
        for i in range(len(self.CONNECTED)):
            if self._stopping.wait(self.seconds if i else 0):
                return False
            client.sendall(self.CONNECTED[i:i + 1])
        return True

    def _pump(self, src: socket.socket, dst: socket.socket, seconds: float) -> None:
        """Copy ``src`` to ``dst`` (one byte per ``seconds`` when set) until either closes."""
        try:
            while not self._stopping.is_set():
                try:
                    data = src.recv(1 if seconds else 65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                dst.sendall(data)
                if seconds and self._stopping.wait(seconds):
                    break
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


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
