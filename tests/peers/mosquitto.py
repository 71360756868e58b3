"""A real mosquitto broker on a loopback port, and the mosquitto_pub/sub clients, for tests.

The broker demands a client certificate signed by the CA it is given
(``require_certificate true``) and takes the certificate's CN as the MQTT user name, which
is how ApsaraMQ for MQTT treats device certificates too. A missing binary raises
(PeerMissing), never skips: these tests exist to prove certificates work with a real peer.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.peers.pebble import PeerDied, free_port, require_binary, wait_until


def _find_mosquitto() -> str:
    # Debian installs the broker in /usr/sbin, which is not on every user's PATH.
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return require_binary("mosquitto")


@dataclass(frozen=True)
class ClientCreds:
    """What an MQTT client presents: trust anchor for the server, its own cert and key."""

    cafile: Path
    certfile: Path | None = None
    keyfile: Path | None = None

    def args(self) -> list[str]:
        out = ["--cafile", str(self.cafile)]
        if self.certfile is not None and self.keyfile is not None:
            out += ["--cert", str(self.certfile), "--key", str(self.keyfile)]
        return out


class Mosquitto:
    """``with Mosquitto(workdir, cafile=..., certfile=..., keyfile=...) as broker:``"""

    def __init__(self, workdir: Path, *, cafile: Path, certfile: Path, keyfile: Path,
                 host: str = "127.0.0.1") -> None:
        self.workdir = workdir
        self.cafile, self.certfile, self.keyfile = cafile, certfile, keyfile
        self.host = host
        self.port = free_port(host)
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"

    def _config(self) -> str:
        import pwd

        user = pwd.getpwuid(os.getuid()).pw_name
        return "\n".join([
            # Run as whoever started us: as root, mosquitto would otherwise drop to the
            # "mosquitto" user and fail to read 0600 keys owned by root.
            f"user {user}",
            "persistence false",
            f"log_dest file {self.log}",
            "log_type all",
            "connection_messages true",
            "per_listener_settings false",
            f"listener {self.port} {self.host}",
            f"cafile {self.cafile}",
            f"certfile {self.certfile}",
            f"keyfile {self.keyfile}",
            "require_certificate true",
            "use_identity_as_username true",
            "",
        ])

    def start(self) -> Mosquitto:
        binary = _find_mosquitto()
        self.conf.write_text(self._config())
        out = open(self.workdir / "mosquitto.out", "wb")
        self._proc = subprocess.Popen([binary, "-c", str(self.conf)], stdout=out,
                                      stderr=subprocess.STDOUT, cwd=self.workdir)
        out.close()
        self.pid = self._proc.pid
        try:
            wait_until(self._ready, f"mosquitto on {self.host}:{self.port}", timeout=20)
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        """A TLS handshake that trusts our CA completes: the listener is up with our cert."""
        if self._proc is not None and self._proc.poll() is not None:
            raise PeerDied(f"mosquitto exited with {self._proc.returncode}: {self.log_text()}")
        ctx = ssl.create_default_context(cafile=str(self.cafile))
        ctx.check_hostname = False  # readiness only; the tests check names for real
        with closing(socket.create_connection((self.host, self.port), timeout=2)) as raw:
            # TLS 1.3: the client side finishes before the server judges our (absent)
            # certificate, so no client certificate is needed to see the listener is up.
            with ctx.wrap_socket(raw) as tls:
                return tls.version() is not None

    def log_text(self) -> str:
        parts = []
        for p in (self.workdir / "mosquitto.out", self.log):
            if p.exists():
                parts.append(p.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM by PID (only the process we started), then SIGKILL if it lingers."""
        if self.pid is None or self._proc is None or self._proc.poll() is not None:
            return
        os.kill(self.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self._proc.wait(timeout=5)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ clients
    def publish(self, creds: ClientCreds, topic: str, message: str, *,
                host: str = "localhost", extra: tuple[str, ...] = (),
                timeout: float = 15) -> subprocess.CompletedProcess[str]:
        """mosquitto_pub verifying the server certificate and the host name (unless
        ``extra`` holds ``--insecure``)."""
        return subprocess.run(
            [require_binary("mosquitto_pub"), "-h", host, "-p", str(self.port), *creds.args(),
             "-t", topic, "-m", message, "-q", "1", "-i", f"pub-{os.getpid()}-{time.time_ns()}",
             *extra],
            capture_output=True, text=True, timeout=timeout)

    def subscribe(self, creds: ClientCreds, topic: str, *, host: str = "localhost",
                  count: int = 1, wait: int = 15) -> subprocess.Popen[str]:
        """mosquitto_sub in the background; exits after ``count`` messages or ``wait`` s."""
        return subprocess.Popen(
            [require_binary("mosquitto_sub"), "-h", host, "-p", str(self.port), *creds.args(),
             "-t", topic, "-C", str(count), "-W", str(wait), "-q", "1",
             "-i", f"sub-{os.getpid()}-{time.time_ns()}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def round_trip(broker: Mosquitto, sub_creds: ClientCreds, pub_creds: ClientCreds, topic: str,
               message: str, *, host: str = "localhost", timeout: float = 15) -> str:
    """Subscribe, publish until the subscriber has the message (no race with SUBACK)."""
    sub = broker.subscribe(sub_creds, topic, host=host, wait=int(timeout))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            pub = broker.publish(pub_creds, topic, message, host=host)
            if pub.returncode != 0:
                raise AssertionError(f"mosquitto_pub failed ({pub.returncode}): {pub.stderr}")
            try:
                out, err = sub.communicate(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            if sub.returncode != 0:
                raise AssertionError(f"mosquitto_sub failed ({sub.returncode}): {err}\n"
                                     f"{broker.log_text()}")
            return out.strip()
        raise AssertionError(f"no message within {timeout}s\n{broker.log_text()}")
    finally:
        if sub.poll() is None:
            os.kill(sub.pid, signal.SIGTERM)
            sub.wait(timeout=5)
