"""BIND 9 (Debian ``bind9``, binary ``named``) on loopback: a primary taking RFC 2136
updates signed with a TSIG key, for the ``--dns rfc2136`` tests.

The zone and its journal live in a fresh temp dir. As root, ``named -u bind`` (or
``nobody``) drops privileges, so the directory is handed to that user; it is made with
``tempfile.mkdtemp`` directly under the system temp dir, because pytest's own temp dirs
are 0700 and the unprivileged server could not reach into them. Ports are picked free,
readiness is an SOA answer over UDP and TCP, every wait is bounded.
"""

from __future__ import annotations

import base64
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.pebble import PeerDied, _stop, free_tcp_udp_port, require_binary, wait_until

NAMED = "/usr/sbin/named"


@dataclass
class Bind:
    """One ``named`` serving ``zones`` (each updatable with ``key_name``)."""

    zones: tuple[str, ...] = ("example.test",)
    key_name: str = "acmeali-test-key"
    algorithm: str = "hmac-sha256"
    secret: str = field(default_factory=lambda: base64.b64encode(os.urandom(32)).decode())
    # More keys allowed to update, by algorithm: name -> (algorithm, base64 secret).
    extra_keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    port: int = field(default_factory=free_tcp_udp_port)
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="acmeali-bind-")))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        for name in ("bind", "nobody"):
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                continue
        raise RuntimeError("running as root, but neither user bind nor nobody exists")

    def _config(self) -> str:
        d = self.workdir
        keys = {self.key_name: (self.algorithm, self.secret), **self.extra_keys}
        allowed = " ".join(f'key "{k}";' for k in keys)
        zones = "".join(
            f'zone "{z}" {{ type primary; file "{z}.zone"; '
            f'allow-update {{ {allowed} }}; }};\n' for z in self.zones)
        key_stmts = "".join(f'key "{k}" {{ algorithm {alg}; secret "{secret}"; }};\n'
                            for k, (alg, secret) in keys.items())
        return (f'options {{\n  directory "{d}";\n'
                f'  listen-on port {self.port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n'
                f'  pid-file none;\n  session-keyfile "{d}/session.key";\n'
                f'  managed-keys-directory "{d}";\n  recursion no;\n'
                f'  dnssec-validation no;\n  notify no;\n}};\ncontrols {{ }};\n'
                + key_stmts + zones)

    def start(self) -> Bind:
        binary = shutil.which("named") or (NAMED if os.path.exists(NAMED) else None)
        if binary is None:
            require_binary("named")  # raises PeerMissing with the install hint
        assert binary is not None
        self.workdir.chmod(0o700)
        for zone in self.zones:
            (self.workdir / f"{zone}.zone").write_text(
                f"$TTL 60\n@ IN SOA ns1.{zone}. admin.{zone}. 1 60 60 600 60\n"
                f"@ IN NS ns1.{zone}.\nns1 IN A 127.0.0.1\n")
        (self.workdir / "named.conf").write_text(self._config())
        args = [binary, "-g", "-4", "-c", str(self.workdir / "named.conf")]
        user = self._user()
        if user is not None:
            pw = pwd.getpwnam(user)
            for p in (self.workdir, *self.workdir.iterdir()):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            args += ["-u", user]
        log = open(self.workdir / "named.log", "wb")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.workdir)
        log.close()

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise PeerDied("named exited: " + self.log_text()[-2000:])
            import dns.message
            import dns.query

            for zone in self.zones:
                q = dns.message.make_query(zone + ".", "SOA")
                dns.query.udp(q, "127.0.0.1", port=self.port, timeout=1)
                dns.query.tcp(q, "127.0.0.1", port=self.port, timeout=1)
            return True
        try:
            wait_until(ready, "named", timeout=30)
        except BaseException:
            self.stop()
            raise
        return self

    def log_text(self) -> str:
        return (self.workdir / "named.log").read_text(errors="replace")

    def txt(self, name: str) -> set[str]:
        """The TXT values BIND serves at ``name`` now (asked over TCP, no cache)."""
        import dns.message
        import dns.query
        import dns.rdatatype

        q = dns.message.make_query(name.rstrip(".") + ".", "TXT")
        r = dns.query.tcp(q, "127.0.0.1", port=self.port, timeout=5)
        return {b"".join(rd.strings).decode() for rrset in r.answer
                if rrset.rdtype == dns.rdatatype.TXT for rd in rrset}

    def add_txt(self, name: str, value: str) -> None:
        """Publish a TXT value by hand (signed update), as another tool would."""
        import dns.name
        import dns.query
        import dns.rcode
        import dns.tsigkeyring
        import dns.update

        zone = next(z for z in self.zones if name.rstrip(".").endswith(z))
        upd = dns.update.UpdateMessage(zone + ".", keyring=dns.tsigkeyring.from_text(
            {self.key_name: self.secret}), keyname=dns.name.from_text(self.key_name),
            keyalgorithm=self.algorithm)
        upd.add(name.rstrip(".") + ".", 60, "TXT", f'"{value}"')
        r = dns.query.tcp(upd, "127.0.0.1", port=self.port, timeout=5)
        assert r.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(r.rcode())

    def stop(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Bind:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
