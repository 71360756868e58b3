"""http-01 (RFC 8555 §8.3): answer ``GET /.well-known/acme-challenge/<token>``.

Two ways: *standalone* runs a tiny server of our own for the few seconds of validation
(nothing else must hold the port), *webroot* drops files where an existing web server
already serves them. Both publish only the tokens of this run and remove them afterwards.
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from acmeali.config import CertSettings
from acmeali.errors import ChallengeError, UsageError
from acmeali.solvers.base import ChallengeTask, check_token
from acmeali.ui import UI

log = logging.getLogger(__name__)

CHALLENGE_PATH = "/.well-known/acme-challenge/"
_POLL = 0.05  # serve_forever's poll interval: how long shutdown() may take
_SELF_CHECK_TIMEOUT = 3.0
_WEBROOT_ATTEMPTS = 20  # re-creations of a challenge directory removed by a concurrent run


class _ChallengeServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that can listen on IPv6 and IPv4 together.

    The CA may validate over either family (Let's Encrypt prefers IPv6 when the name has
    an AAAA record), so "all addresses" means a dual-stack ``::`` socket where the host
    has IPv6, and ``0.0.0.0`` otherwise.
    """

    daemon_threads = True
    all_families = False  # a dual-stack ``::`` socket: reachable over IPv6 and IPv4
    answers: dict[str, bytes]

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily,
                 answers: dict[str, bytes]) -> None:
        self.address_family = family
        self.answers = answers
        super().__init__(address, _ChallengeHandler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            try:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                self.all_families = True
            except OSError:  # pragma: no cover - platforms without dual-stack sockets
                pass
        # HTTPServer.server_bind resolves the host name with getfqdn(), which can stall on
        # a box with broken reverse DNS; we never use it, so bind the socket directly.
        if self.allow_reuse_address and hasattr(socket, "SO_REUSEADDR"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name = "acmeali"
        self.server_port = int(self.server_address[1])


class _ChallengeHandler(BaseHTTPRequestHandler):
    server: _ChallengeServer
    server_version = "acmeali"
    sys_version = ""
    timeout = 10  # a client that connects and says nothing must not pin a thread for ever

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        body = None
        if path.startswith(CHALLENGE_PATH):
            body = self.server.answers.get(path[len(CHALLENGE_PATH):])
        if body is None:
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.write(b"not found\n")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Requests go to the log (shown with -v), never straight to stderr: -q means quiet.
        log.info("http-01 %s: %s", self.address_string(), format % args)


def _bind_error(exc: OSError, address: str, port: int) -> Exception:
    where = f"{address or 'all addresses'} port {port}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return UsageError(
            f"http-01: not allowed to listen on {where} (ports below 1024 need root or "
            f"CAP_NET_BIND_SERVICE)",
            hint="run as root, forward port 80 to a higher --http-port, or use --webroot DIR "
                 "with the web server that already runs here")
    if exc.errno == errno.EADDRINUSE:
        return ChallengeError(
            f"http-01: {where} is already in use (a web server, or another acmeali run?)",
            hint="use --webroot DIR so that server answers the challenge, or stop it, or "
                 "choose another --http-port the CA's requests are forwarded to")
    if exc.errno == errno.EADDRNOTAVAIL:
        return UsageError(f"http-01: {address!r} is not an address of this host",
                          hint="fix --http-address, or leave it out to listen on all addresses")
    return ChallengeError(f"http-01: cannot listen on {where}: {exc.strerror or exc}")


class _Listener:
    """One challenge server, shared by every solver of this process on the same port.

    ``renew`` validates many lineages at once, one thread each; were each to start its own
    server on port 80, all but the first would fail with "address in use". So a listener
    is shared: each solver adds its tokens to the one answer table, and the last one to
    leave closes the socket. Tokens are unique per challenge, so nothing collides.

    Lineages may name different addresses for one port (one issued with
    ``--http-address 127.0.0.1``, another on all addresses). A listener on all addresses
    serves the narrower ones too; one on a narrower address cannot serve a lineage the CA
    may reach on another address, and nothing can bind beside it, so that lineage waits
    until the port is free again (``_acquire``).
    """

    def __init__(self, server: _ChallengeServer, thread: threading.Thread,
                 address: str) -> None:
        self.server = server
        self.thread = thread
        self.address = address  # as asked for, normalised (_norm)
        self.users = 0

    def covers(self, address: str) -> bool:
        """Whether a solver asking for ``address`` (normalised) is served by this listener."""
        if address == self.address or self.server.all_families:
            return True
        return self.server.server_address[0] == "0.0.0.0" and _is_ipv4(address)  # noqa: S104


_listeners: dict[int, list[_Listener]] = {}  # by port; several only on distinct addresses
_waiting: dict[int, list[str]] = {}  # port -> addresses asked for by solvers waiting for it
_changed = threading.Condition()  # guards both; notified when a listener closes
# How long a solver waits for this process's own listeners on the port to close. A
# listener is held for one lineage's validation, which issuance bounds at 300 s
# (VALIDATION_TIMEOUT); the wait starts again whenever one of them closes.
_WAIT_FOR_PORT = 330.0


def _norm(address: str) -> str:
    """One spelling per address (``[::1]`` is ``::1``); ``""`` means all addresses."""
    return address.strip("[]")


def _is_ipv4(address: str) -> bool:
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return True


def waiting_for(port: int) -> int:
    """How many solvers of this process wait for ``port`` to be free (for tests and -v)."""
    with _changed:
        return len(_waiting.get(port, ()))


def _acquire(address: str, port: int) -> _Listener:
    """A listener of ours on ``port`` that serves ``address``, started if there is none.

    One of ours that serves it is shared. Otherwise a new one is bound; when the port is
    in use and we hold it (ours on another address: all addresses wanted while
    ``127.0.0.1`` is held), this waits until one of ours closes and tries again. While
    someone waits, newcomers neither join a listener that cannot serve the waiter nor
    bind beside it: the port must drain for the waiter to get its turn.
    """
    want = _norm(address)
    if not port:  # port 0: a fresh one each time, never shared
        try:
            fresh = _start(address, port)
        except OSError as exc:
            raise _bind_error(exc, address, port) from None
        fresh.users = 1
        return fresh
    with _changed:
        deadline = time.monotonic() + _WAIT_FOR_PORT
        logged = False
        while True:
            ours = _listeners.get(port, [])
            waiters = _waiting.get(port, [])
            for listener in ours:
                if listener.covers(want) and all(listener.covers(w) for w in waiters):
                    listener.users += 1
                    return listener
            if not ours or not waiters:
                try:
                    fresh = _start(address, port)
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE or not ours:
                        raise _bind_error(exc, address, port) from None
                else:
                    fresh.users = 1
                    _listeners.setdefault(port, []).append(fresh)
                    return fresh
            where = ", ".join(x.address or "all addresses" for x in ours)
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChallengeError(
                    f"http-01: port {port} stayed in use by this run's own challenge server "
                    f"on {where} for {_WAIT_FOR_PORT:.0f} s",
                    hint="give the lineages that share a --http-port the same --http-address")
            if not logged:
                logged = True
                log.info("http-01: port %d is in use by this run's listener on %s; waiting "
                         "for its lineages to finish to listen on %s", port, where,
                         want or "all addresses")
            held = list(ours)
            waiters = _waiting.setdefault(port, [])
            waiters.append(want)
            try:
                _changed.wait(left)
            finally:
                waiters.remove(want)
                if not waiters:
                    del _waiting[port]
            now = _listeners.get(port, [])
            if any(x not in now for x in held):  # one of them closed: progress, wait afresh
                deadline = time.monotonic() + _WAIT_FOR_PORT


def _release(address: str, port: int, listener: _Listener, ui: UI) -> None:
    """Drop one user; the last one stops the server, and the port is free on return."""
    with _changed:
        listener.users -= 1
        if listener.users > 0:
            return
        ours = _listeners.get(port, [])
        if listener in ours:
            ours.remove(listener)
            if not ours:
                del _listeners[port]
        try:
            listener.server.shutdown()
            listener.server.server_close()
            listener.thread.join(timeout=5)
        except Exception as exc:
            ui.warn(f"http-01: stopping the challenge server: {exc}")
        _changed.notify_all()


def _start(address: str, port: int) -> _Listener:
    """A serving listener on ``address``:``port``; the bind's OSError as it is."""
    server, host = _bind(address, port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": _POLL},
                              name="acmeali-http01", daemon=True)
    thread.start()
    log.info("http-01: listening on %s port %d", host, server.server_port)
    return _Listener(server, thread, _norm(address))


def _bind(address: str, port: int) -> tuple[_ChallengeServer, str]:
    """A challenge server bound to ``address``:``port`` (any address: IPv6, else IPv4).

    Raises the OSError of the last attempt; callers turn it into one line (_bind_error).
    """
    addr = address
    candidates: list[tuple[str, socket.AddressFamily]]
    if not addr:
        candidates = [("::", socket.AF_INET6), ("0.0.0.0", socket.AF_INET)]  # noqa: S104
        if not socket.has_ipv6:
            candidates = candidates[1:]
    else:
        addr = _norm(addr)
        candidates = [(addr, socket.AF_INET6 if ":" in addr else socket.AF_INET)]
    last: OSError | None = None
    for host, family in candidates:
        try:
            server = _ChallengeServer((host, port), family, {})
        except OSError as exc:
            last = exc
            # No IPv6 on this host: fall back to IPv4. Any other error is the answer.
            if exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL) and not address:
                continue
            break
        else:
            return server, host
    assert last is not None
    raise last


def check_can_listen(address: str, port: int, ui: UI) -> None:
    """Raise the same error ``present`` would when ``address``:``port`` cannot be bound.

    Called before the order is placed. A listener this process already has on the port
    counts as bindable: ``present`` shares it, binds beside it, or waits until it closes.
    """
    if not port:
        return
    with _changed:  # held: a concurrent _acquire must not find the port taken by us
        if port in _listeners:
            return
        # Bind and close at once: no serving thread, so no shutdown wait (~0.1 s an issue).
        try:
            server, _host = _bind(address, port)
        except OSError as exc:
            raise _bind_error(exc, address, port) from None
        server.server_close()


class StandaloneSolver:
    """Our own HTTP server on ``http_address``:``http_port``, only while it is needed."""

    challenge_type = "http-01"

    def __init__(self, settings: CertSettings, ui: UI) -> None:
        self.address = settings.http_address
        self.port = settings.http_port
        self.ui = ui
        self._tokens: set[str] = set()
        self._listener: _Listener | None = None

    @property
    def bound_port(self) -> int | None:
        """The port actually listened on (differs from ``port`` only when that was 0)."""
        return self._listener.server.server_port if self._listener else None

    def present(self, tasks: Sequence[ChallengeTask]) -> None:
        if self._listener is None:
            self._listener = _acquire(self.address, self.port)
        answers = self._listener.server.answers
        for t in tasks:
            token = check_token(t.token)
            answers[token] = t.key_authorization.encode("ascii")
            self._tokens.add(token)

    def wait_ready(self, tasks: Sequence[ChallengeTask], deadline: float) -> None:
        """Fetch one answer from our own server: proves it serves before the CA is told."""
        port = self.bound_port
        if port is None or not tasks:
            return
        host = self.address.strip("[]") or "127.0.0.1"
        if host in ("0.0.0.0", "::"):  # noqa: S104
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"  # noqa: S104
        task = tasks[0]
        conn = http.client.HTTPConnection(host, port, timeout=_SELF_CHECK_TIMEOUT)
        try:
            conn.request("GET", CHALLENGE_PATH + task.token)
            resp = conn.getresponse()
            body = resp.read()
        except OSError as exc:
            # The CA connects from outside; a local loopback quirk must not block issuance.
            log.info("http-01 self-check against %s failed: %s", host, exc)
            return
        finally:
            conn.close()
        if resp.status != 200 or body != task.key_authorization.encode("ascii"):
            raise ChallengeError(f"http-01: our own server on port {port} "
                                 f"answered {resp.status} instead of the key authorization")

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        listener = self._listener
        for t in tasks:
            self._tokens.discard(t.token)
            if listener is not None:
                listener.server.answers.pop(t.token, None)
        if self._tokens:
            return  # other tasks still being validated by a later present()
        self.close()

    def close(self) -> None:
        """Withdraw our answers and leave the listener; the last one out frees the port."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        for token in self._tokens:
            listener.server.answers.pop(token, None)
        self._tokens.clear()
        _release(self.address, self.port, listener, self.ui)


class WebrootSolver:
    """Files under ``<webroot>/.well-known/acme-challenge/`` for an existing web server."""

    challenge_type = "http-01"

    def __init__(self, settings: CertSettings, ui: UI) -> None:
        if not settings.webroot:
            raise UsageError("http-01 webroot: no webroot directory given")
        self.root = Path(settings.webroot)
        self.ui = ui
        self._written: list[Path] = []
        self._created_dirs: list[Path] = []  # outermost first

    @property
    def challenge_dir(self) -> Path:
        return self.root / ".well-known" / "acme-challenge"

    def present(self, tasks: Sequence[ChallengeTask]) -> None:
        """Write one file per token; other runs may share the webroot at the same time.

        Several hosts behind one NFS webroot, or parallel ``issue`` runs, create and remove
        ``.well-known/acme-challenge`` concurrently: a directory another run created first
        is used as it is, and one that another run's cleanup removed (it does so only when
        empty, so never under our files) is created again and the files written again.
        """
        if not self.root.is_dir():
            raise UsageError(f"webroot {self.root} is not a directory",
                             hint="give the directory your web server serves for this name")
        for attempt in range(_WEBROOT_ATTEMPTS):
            try:
                self._make_dirs()
                for t in tasks:
                    self._write_token(t)
                return
            except FileNotFoundError:
                if attempt + 1 < _WEBROOT_ATTEMPTS:
                    continue  # a directory vanished under us: another run's cleanup
                raise ChallengeError(f"http-01 webroot: {self.challenge_dir} keeps "
                                     "disappearing while answers are written",
                                     hint="something removes it; keep the webroot to "
                                          "acmeali runs and the web server") from None
            except OSError as exc:
                raise ChallengeError(f"http-01 webroot: cannot write under {self.challenge_dir}: "
                                     f"{exc.strerror or exc}",
                                     hint="acmeali needs write access to the webroot") from None

    def _make_dirs(self) -> None:
        for d in (self.root / ".well-known", self.challenge_dir):
            try:
                d.mkdir(mode=0o755)
            except FileExistsError:
                if d.is_dir():  # followed symlinks count, as a web server would
                    continue  # ours from a retry, or another run's: used, never removed by us
                if not os.path.lexists(d):
                    # Another run made it and its cleanup removed it again before we
                    # looked: vanished, like any other (present() starts over).
                    raise FileNotFoundError(d) from None
                raise ChallengeError(f"http-01 webroot: {d} exists and is not a "
                                     "directory") from None
            # mkdir's mode passes through the umask; the web server must read it.
            os.chmod(d, 0o755)  # noqa: S103 - public on purpose, it is served
            if d not in self._created_dirs:
                self._created_dirs.append(d)

    def _write_token(self, t: ChallengeTask) -> None:
        path = self.challenge_dir / check_token(t.token)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        if path not in self._written:
            self._written.append(path)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(t.key_authorization.encode("ascii"))

    def wait_ready(self, tasks: Sequence[ChallengeTask], deadline: float) -> None:
        """Nothing to wait for: the files are served as soon as they exist."""

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        tokens = {t.token for t in tasks}
        keep: list[Path] = []
        for path in self._written:
            if path.name not in tokens:
                keep.append(path)
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.ui.warn(f"http-01 webroot: cannot remove {path}: {exc.strerror or exc}")
        self._written = keep
        if keep:
            return
        # Only directories we made, deepest first, and only when nothing else lives there.
        for d in reversed(self._created_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        self._created_dirs = []
