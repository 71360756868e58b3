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
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.peers.pebble import Pebble, make_tls_cert

_COPIED = ("Replay-Nonce", "Location", "Link", "Retry-After", "Content-Type", "Cache-Control")


@dataclass
class Window:
    start: datetime
    end: datetime
    retry_after: int | None = 3600
    explanation_url: str | None = None


@dataclass
class AriLog:
    cert_ids: list[str] = field(default_factory=list)
    replaces: list[str | None] = field(default_factory=list)  # one entry per newOrder


class AriProxy:
    """``with AriProxy(pebble, workdir) as proxy:`` then use ``proxy.directory_url``."""

    def __init__(self, pebble: Pebble, workdir: Path) -> None:
        self.pebble = pebble
        workdir.mkdir(parents=True, exist_ok=True)
        self.tls_cert, self.tls_key = make_tls_cert(workdir)
        self.window: Window | None = None  # None: 404 for every renewal-info request
        self.log = AriLog()
        self._lock = threading.Lock()
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

    def set_window(self, window: Window | None) -> None:
        with self._lock:
            self.window = window

    def cert_ids(self) -> list[str]:
        with self._lock:
            return list(self.log.cert_ids)

    def replaces(self) -> list[str | None]:
        with self._lock:
            return list(self.log.replaces)

    def start(self) -> AriProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="ari-proxy")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> AriProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- serving
    def _rewrite(self, data: bytes) -> bytes:
        return data.replace(f"https://127.0.0.1:{self.pebble.port}".encode(),
                            self.base_url.encode())

    def _renewal_info(self, cert_id: str) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.log.cert_ids.append(cert_id)
            w = self.window
        if w is None:
            return 404, {"Content-Type": "application/problem+json"}, json.dumps(
                {"type": "urn:ietf:params:acme:error:malformed",
                 "detail": "no renewal info"}).encode()
        body: dict[str, Any] = {"suggestedWindow": {
            "start": w.start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": w.end.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}}
        if w.explanation_url:
            body["explanationURL"] = w.explanation_url
        headers = {"Content-Type": "application/json"}
        if w.retry_after is not None:
            headers["Retry-After"] = str(w.retry_after)
        return 200, headers, json.dumps(body).encode()

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

    def _forward(self, method: str, path: str, host: str, headers: dict[str, str],
                 body: bytes | None) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(f"https://127.0.0.1:{self.pebble.port}{path}", data=body,
                                     method=method)
        for k, v in headers.items():
            req.add_header(k, v)
        req.add_header("Host", host)  # Pebble builds its URLs (and checks JWS "url") from it
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
        if len(links) > 1:
            out["Link"] = ", ".join(self._rewrite(v.encode()).decode() for v in links)
        data = self._rewrite(data)
        if method == "GET" and path.split("?")[0] == "/dir" and status == 200:
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
                if method == "GET" and self.path.startswith("/renewal-info/"):
                    status, headers, data = proxy._renewal_info(
                        self.path[len("/renewal-info/"):])
                else:
                    if method == "POST" and self.path.startswith("/order-plz") and body:
                        proxy._record_new_order(body)
                    fwd = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "accept", "user-agent")}
                    status, headers, data = proxy._forward(
                        method, self.path, self.headers.get("Host") or
                        f"127.0.0.1:{proxy.port}", fwd, body)
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
