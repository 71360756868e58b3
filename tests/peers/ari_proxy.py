"""A loopback HTTPS reverse proxy that gives Pebble 2.4 ACME Renewal Information (RFC 9773).

Pebble 2.4 (Debian) has no ``renewalInfo``. This proxy forwards every ACME request to
Pebble unchanged (the JWS is signed for the proxy's URL; Pebble builds and checks URLs from
the Host header, which the proxy passes through, and any Pebble URL left in a response is
rewritten to the proxy's), adds ``renewalInfo`` to the directory, and answers
``GET /renewal-info/<cert-id>`` with a window the test sets. It records the certificate
ids asked about and the ``replaces`` field of every newOrder payload.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.peers.pebble import Pebble
from tests.peers.pebble_front import Answer, PebbleFront, Window, renewal_info_answer


@dataclass
class AriLog:
    cert_ids: list[str] = field(default_factory=list)
    replaces: list[str | None] = field(default_factory=list)  # one entry per newOrder


class AriProxy(PebbleFront):
    """``with AriProxy(pebble, workdir) as proxy:`` then use ``proxy.directory_url``."""

    thread_name = "ari-proxy"

    def __init__(self, pebble: Pebble, workdir: Path) -> None:
        self.window: Window | None = None  # None: 404 for every renewal-info request
        self.log = AriLog()
        super().__init__(pebble, workdir, ari=True)

    def set_window(self, window: Window | None) -> None:
        with self._lock:
            self.window = window

    def cert_ids(self) -> list[str]:
        with self._lock:
            return list(self.log.cert_ids)

    def replaces(self) -> list[str | None]:
        with self._lock:
            return list(self.log.replaces)

    # ----------------------------------------------------------------- serving
    def _renewal_info(self, cert_id: str) -> Answer:
        with self._lock:
            self.log.cert_ids.append(cert_id)
            w = self.window
        return renewal_info_answer(w)

    def _record_new_order(self, body: bytes) -> None:
        try:
            jws = json.loads(body)
            payload = jws["payload"]
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            replaces = json.loads(raw).get("replaces")
        except (ValueError, KeyError, TypeError):
            replaces = "<undecodable>"
        with self._lock:
            self.log.replaces.append(replaces)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if method == "GET" and self.path.startswith("/renewal-info/"):
                    status, headers, data = proxy._renewal_info(
                        self.path[len("/renewal-info/"):])
                else:
                    if method == "POST" and self.path.startswith("/order-plz") and body:
                        proxy._record_new_order(body)
                    status, headers, data = proxy.forward_request(self, method, body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_HEAD(self) -> None:
                self._serve("HEAD")

        return Handler
