"""Pebble and pebble-challtestsrv on loopback, for tests, the demo and the bench.

Usable without pytest (``tests/demo.py`` and ``bench/`` start it the same way). Every
wait is bounded and polls for readiness; ports are picked free by binding port 0.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class PeerMissing(RuntimeError):
    """A Debian peer binary is not installed (``make test`` installs it)."""


class PeerDied(RuntimeError):
    """A peer process exited while we waited for it; waiting longer cannot help."""


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise PeerMissing(f"{name} is not installed; run `make test` (it apt-get installs "
                          f"pebble, mosquitto, mosquitto-clients, openssl)")
    return path


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    with closing(socket.socket(socket.AF_INET, kind)) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_tcp_udp_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP (DNS servers listen on both)."""
    for _ in range(50):
        port = free_port(host)
        try:
            with closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as u:
                u.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free for both TCP and UDP")


def make_tls_cert(directory: Path, names: tuple[str, ...] = ("localhost",),
                  ips: tuple[str, ...] = ("127.0.0.1", "::1")) -> tuple[Path, Path]:
    """A self-signed serving certificate for Pebble's listener (it is its own CA bundle)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acmeali test Pebble")])
    now = dt.datetime.now(dt.timezone.utc)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "pebble-tls.pem", directory / "pebble-tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def wait_until(check: Any, what: str, timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll ``check()`` until it returns a truthy value; bounded on a monotonic clock."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except PeerDied:
            raise
        except Exception as exc:
            last = exc
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)
    raise TimeoutError(f"{what} not ready within {timeout:.0f}s (last error: {last!r})")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


class ChallTestSrv:
    """pebble-challtestsrv: Pebble's DNS server, with a management API to set TXT records."""

    def __init__(self, workdir: Path, *, http01: bool = False) -> None:
        self.workdir = workdir
        self.dns_port = free_tcp_udp_port()
        self.mgmt_port = free_port()
        self.http01_port = free_port() if http01 else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def dns_address(self) -> str:
        return f"127.0.0.1:{self.dns_port}"

    @property
    def mgmt_url(self) -> str:
        return f"http://127.0.0.1:{self.mgmt_port}"

    def start(self) -> ChallTestSrv:
        binary = require_binary("pebble-challtestsrv")
        log = open(self.workdir / "challtestsrv.log", "wb")
        self.proc = subprocess.Popen(
            [binary, "-dns01", self.dns_address,
             "-http01", f"127.0.0.1:{self.http01_port}" if self.http01_port else "",
             "-https01", "", "-tlsalpn01", "",
             "-management", f"127.0.0.1:{self.mgmt_port}", "-defaultIPv6", ""],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise PeerDied("pebble-challtestsrv exited: " + self.log_text()[-2000:])
            self._post("set-default-ipv4", {"ip": "127.0.0.1"})
            return True
        wait_until(ready, "pebble-challtestsrv")
        return self

    def log_text(self) -> str:
        return (self.workdir / "challtestsrv.log").read_text(errors="replace")

    def _post(self, path: str, body: Mapping[str, Any]) -> None:
        req = urllib.request.Request(f"{self.mgmt_url}/{path}", data=json.dumps(body).encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()

    @staticmethod
    def _fqdn(host: str) -> str:
        return host if host.endswith(".") else host + "."

    def set_txt(self, host: str, value: str) -> None:
        self._post("set-txt", {"host": self._fqdn(host), "value": value})

    def clear_txt(self, host: str) -> None:
        self._post("clear-txt", {"host": self._fqdn(host)})

    def add_a(self, host: str, ip: str) -> None:
        self._post("add-a", {"host": self._fqdn(host), "addresses": [ip]})

    def set_cname(self, host: str, target: str) -> None:
        self._post("set-cname", {"host": self._fqdn(host), "target": self._fqdn(target)})

    def stop(self) -> None:
        _stop(self.proc)


@dataclass
class PebbleOptions:
    nonce_reject: int = 0  # PEBBLE_WFE_NONCEREJECT percentage
    authz_reuse: int = 0  # PEBBLE_AUTHZREUSE percentage
    alternate_roots: int = 0  # PEBBLE_ALTERNATE_ROOTS
    chain_length: int = 1  # PEBBLE_CHAIN_LENGTH
    validity_seconds: int | None = None  # certificateValidityPeriod
    eab_keys: dict[str, str] = field(default_factory=dict)  # kid -> base64url HMAC key
    retry_after_authz: int = 1
    retry_after_order: int = 1
    va_sleep: bool = False
    dns_server: str | None = None  # HOST:PORT Pebble's VA asks (default: its challtestsrv)
    extra_env: dict[str, str] = field(default_factory=dict)


class Pebble:
    """A Pebble CA on loopback, with its own challtestsrv as the DNS resolver."""

    def __init__(self, workdir: Path | None = None, options: PebbleOptions | None = None) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="pebble-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.options = options or PebbleOptions()
        self.port = free_port()
        self.mgmt_port = free_port()
        self.http_port = free_port()  # where Pebble's VA looks for http-01 answers
        self.tls_port = free_port()
        self.challtestsrv = ChallTestSrv(self.workdir)
        self.proc: subprocess.Popen[bytes] | None = None
        self.tls_cert, self.tls_key = make_tls_cert(self.workdir)

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    @property
    def mgmt_url(self) -> str:
        return f"https://127.0.0.1:{self.mgmt_port}"

    @property
    def ca_bundle(self) -> str:
        """Trust root for Pebble's TLS listener (pass as --ca-bundle)."""
        return str(self.tls_cert)

    @property
    def log_path(self) -> Path:
        return self.workdir / "pebble.log"

    def start(self) -> Pebble:
        binary = require_binary("pebble")
        self.challtestsrv.start()
        o = self.options
        cfg: dict[str, Any] = {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": str(self.tls_cert),
            "privateKey": str(self.tls_key),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(o.eab_keys),
            "externalAccountMACKeys": o.eab_keys,
            "retryAfter": {"authz": o.retry_after_authz, "order": o.retry_after_order},
        }
        if o.validity_seconds:
            cfg["certificateValidityPeriod"] = o.validity_seconds
        cfg_path = self.workdir / "pebble-config.json"
        cfg_path.write_text(json.dumps({"pebble": cfg}))
        env = dict(os.environ)
        env.update({
            "PEBBLE_WFE_NONCEREJECT": str(o.nonce_reject),
            "PEBBLE_AUTHZREUSE": str(o.authz_reuse),
            "PEBBLE_CHAIN_LENGTH": str(o.chain_length),
        })
        if not o.va_sleep:
            env["PEBBLE_VA_NOSLEEP"] = "1"
        if o.alternate_roots:
            env["PEBBLE_ALTERNATE_ROOTS"] = str(o.alternate_roots)
        # Pebble 2.4.0 (Debian's, and still upstream's main) can deadlock for good: its
        # order handler read-locks an order twice (wfe.go Order, then orderForDisplay),
        # and a writer queueing on that order in between (CompleteOrder after finalize,
        # GetOrderByID of another request) blocks the second read lock forever; the next
        # GetOrderByID then holds the store's read lock while it waits, and every
        # new-order hangs. One scheduler thread and no asynchronous preemption make
        # goroutines switch only where they block or call, which shrinks that window to
        # almost nothing (a stress of concurrent polls: 2 of 4 runs hung before, 0 of 4
        # after). Other cycles need several requests at once, so the fleet drills, which
        # send thousands at once, go through tests/peers/serial_front.py.
        env.setdefault("GOMAXPROCS", "1")
        env.setdefault("GODEBUG", "asyncpreemptoff=1")
        env.update(o.extra_env)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "-config", str(cfg_path),
             "-dnsserver", o.dns_server or self.challtestsrv.dns_address,
             "-strict=false"], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env)
        log.close()

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise PeerDied("pebble exited: " + self.log_path.read_text()[-2000:])
            self.get_json(self.directory_url)
            return True
        try:
            wait_until(ready, "pebble")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        _stop(self.proc)
        self.challtestsrv.stop()

    def __enter__(self) -> Pebble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- management API
    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tls_cert))

    def get(self, url: str) -> bytes:
        with urllib.request.urlopen(url, context=self._ssl(), timeout=10) as resp:
            data: bytes = resp.read()
            return data

    def get_json(self, url: str) -> Any:
        return json.loads(self.get(url))

    def root_pem(self, index: int = 0) -> str:
        return self.get(f"{self.mgmt_url}/roots/{index}").decode()

    def intermediate_pem(self, index: int = 0) -> str:
        return self.get(f"{self.mgmt_url}/intermediates/{index}").decode()

    def cert_status(self, serial_hex: str) -> dict[str, Any]:
        """{"Status": "Valid"|"Revoked", "Reason": int, ...} for a serial (hex, no 0x)."""
        status: dict[str, Any] = self.get_json(
            f"{self.mgmt_url}/cert-status-by-serial/{serial_hex.lower().lstrip('0') or '0'}")
        return status

    def root_bundle(self, path: Path | None = None) -> Path:
        """All roots (main and alternates) in one PEM file, for chain verification."""
        pems = [self.root_pem(i) for i in range(1 + self.options.alternate_roots)]
        path = path or self.workdir / "pebble-roots.pem"
        path.write_text("".join(pems))
        return path

    # ----------------------------------------------------------------- request counting
    _REQ = re.compile(r"\b(GET|POST|HEAD) (/\S*) -> calling handler")

    def requests_seen(self) -> list[tuple[str, str]]:
        """(method, path) of every ACME request Pebble logged so far, in order."""
        text = self.log_path.read_text(errors="replace")
        return [(m.group(1), m.group(2)) for m in self._REQ.finditer(text)]


def eab_key() -> tuple[str, str]:
    """A fresh (kid, base64url HMAC key) pair for Pebble's EAB config."""
    raw = os.urandom(32)
    return "kid-" + raw[:4].hex(), base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
