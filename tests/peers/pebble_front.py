"""What the loopback HTTPS proxies in front of Pebble share: a TLS listener on a free port,
forwarding to Pebble with URLs rewritten, and Pebble's missing RFC 9773 renewal info.

Requests are forwarded to Pebble unchanged (the JWS is signed for the proxy's URL; Pebble
builds and checks URLs from the Host header, which is passed through); every Pebble URL in
an answer is rewritten to the proxy's. Subclasses supply ``_handler``.
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from tests.peers.pebble import Pebble, make_tls_cert

Answer = tuple[int, dict[str, str], bytes]
_COPIED = ("Replay-Nonce", "Location", "Retry-After", "Content-Type", "Cache-Control",
           "Content-Encoding")
_Front = TypeVar("_Front", bound="PebbleFront")


@dataclass
class Window:
    """An RFC 9773 suggested renewal window, as the proxy serves it."""

    start: datetime
    end: datetime
    retry_after: int | None = 3600
    explanation_url: str | None = None


def renewal_info_answer(w: Window | None) -> Answer:
    """The renewalInfo answer for window ``w`` (None: 404, no window known)."""
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


class PebbleFront:
    """A TLS reverse proxy for ``pebble``; ``with Sub(pebble, workdir) as proxy:``."""

    thread_name = "pebble-front"

    def __init__(self, pebble: Pebble, workdir: Path, *, ari: bool) -> None:
        self.pebble = pebble
        self.ari = ari  # advertise renewalInfo in the directory
        workdir.mkdir(parents=True, exist_ok=True)
        self.tls_cert, self.tls_key = make_tls_cert(workdir)
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

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def respond(self, handler: BaseHTTPRequestHandler, method: str, body: bytes | None
                ) -> Answer:
        """The answer to a request: Pebble's (subclasses answer some paths themselves)."""
        return self.forward_request(handler, method, body)

    def _forwarding_handler(self) -> type[BaseHTTPRequestHandler]:
        """A keep-alive (HTTP/1.1) handler answering every request with ``respond``."""
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                status, headers, data = front.respond(self, method, body)
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

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def directory_url(self) -> str:
        return f"{self.base_url}/dir"

    @property
    def ca_bundle(self) -> str:
        return str(self.tls_cert)

    def start(self: _Front) -> _Front:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=self.thread_name)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self: _Front) -> _Front:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _rewrite(self, data: bytes) -> bytes:
        return data.replace(f"https://127.0.0.1:{self.pebble.port}".encode(),
                            self.base_url.encode())

    def _forward(self, method: str, path: str, host: str, headers: dict[str, str],
                 body: bytes | None) -> Answer:
        req = urllib.request.Request(f"https://127.0.0.1:{self.pebble.port}{path}", data=body,
                                     method=method)
        for k, v in headers.items():
            req.add_header(k, v)
        req.add_header("Host", host)  # Pebble builds its URLs (and checks JWS "url") from it
        req.add_header("Accept-Encoding", "identity")
        try:
            resp = urllib.request.urlopen(req, context=self._upstream, timeout=30)
        except urllib.error.HTTPError as err:
            resp = err
        with resp:
            data = resp.read()
            status = resp.status if hasattr(resp, "status") else resp.code
            return self.answer(method, path, int(status), resp.headers, data)

    def answer(self, method: str, path: str, status: int, headers: Message,
               data: bytes) -> Answer:
        """Pebble's answer as the front gives it: its URLs rewritten to the front's."""
        out = {k: self._rewrite(v.encode()).decode() for k in _COPIED
               if (v := headers.get(k)) is not None}
        links = headers.get_all("Link") or []
        if links:
            out["Link"] = ", ".join(self._rewrite(v.encode()).decode() for v in links)
        data = self._rewrite(data)
        if method == "GET" and path.split("?")[0] == "/dir" and status == 200 and self.ari:
            directory = json.loads(data)
            directory["renewalInfo"] = f"{self.base_url}/renewal-info"
            data = json.dumps(directory).encode()
        return status, out, data

    def forward_request(self, handler: BaseHTTPRequestHandler, method: str,
                        body: bytes | None) -> Answer:
        """Forward what ``handler`` received, with the headers Pebble cares about."""
        fwd = {k: v for k, v in handler.headers.items()
               if k.lower() in ("content-type", "accept", "user-agent")}
        return self._forward(method, handler.path,
                             handler.headers.get("Host") or f"127.0.0.1:{self.port}", fwd, body)
