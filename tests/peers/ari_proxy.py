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
        return self._forwarding_handler()

    def respond(self, handler: BaseHTTPRequestHandler, method: str, body: bytes | None
                ) -> Answer:
        if method == "GET" and handler.path.startswith("/renewal-info/"):
            return self._renewal_info(handler.path[len("/renewal-info/"):])
        if method == "POST" and handler.path.startswith("/order-plz") and body:
            self._record_new_order(body)
        return super().respond(handler, method, body)
