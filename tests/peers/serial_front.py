"""A front for Pebble that lets one request through at a time (the fleet drills).

Pebble 2.4.0 (Debian's; upstream's main has the same code) can deadlock for good when
requests run at once. Two cycles were caught with goroutine dumps of a hung Pebble:

1. new-order scans every authorization under the store's read lock
   (``FindValidAuthorization``, read-locking each), while an authorization poll holds one
   authorization's write lock (``wfe.go`` ``Authz``) and asks for the store's read lock
   behind a third request's queued write lock (``AddOrder``, ``AddAuthorization``,
   ``AddChallenge``);
2. the order handler read-locks an order twice (``Order``, then ``orderForDisplay``) while
   another request's ``GetOrderByID`` queues a write lock on it in between.

Both need several requests in flight. The drills send thousands from 12 threads on 3
hosts, and hung Pebble about once in ten runs of the drill module. Through this front
Pebble sees them one at a time; the hosts still run at once and race each other for every
lineage, which is what the drills are about. The upstream connection is kept open.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.peers.pebble import Pebble
from tests.peers.pebble_front import Answer, PebbleFront


class SerialFront(PebbleFront):
    thread_name = "pebble-serial-front"

    def __init__(self, pebble: Pebble, workdir: Path) -> None:
        super().__init__(pebble, workdir, ari=False)
        self._one = threading.Lock()
        self._conn: http.client.HTTPSConnection | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return self._forwarding_handler()

    def _forward(self, method: str, path: str, host: str, headers: dict[str, str],
                 body: bytes | None) -> Answer:
        with self._one:
            for attempt in (1, 2):
                if self._conn is None:
                    self._conn = http.client.HTTPSConnection(
                        "127.0.0.1", self.pebble.port, context=self._upstream, timeout=30)
                try:
                    return self._exchange(self._conn, method, path, host, headers, body)
                except (OSError, http.client.HTTPException):
                    self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    def _exchange(self, conn: http.client.HTTPSConnection, method: str, path: str,
                  host: str, headers: dict[str, str], body: bytes | None) -> Answer:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)  # Pebble builds its URLs (and checks JWS "url") from it
        conn.putheader("Accept-Encoding", "identity")
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        data = resp.read()
        return self.answer(method, path, resp.status, resp.headers, data)
