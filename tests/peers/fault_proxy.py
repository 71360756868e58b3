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
