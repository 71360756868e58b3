"""The fleet drill (issue 16): three hosts, one PostgreSQL, one Pebble.

Three processes with their own ``live/`` directories (three "hosts") run ``renew`` over the
same lineages at once. Every lineage is issued exactly once (Pebble's log: one finalize
per lineage), and after ``acmeali sync`` all three hosts hold identical live files, equal
to the database's current versions, with each host's deploy hook run for what changed
there. A host killed with SIGKILL in the middle leaves nothing the next run cannot finish,
and nothing is issued twice; a PostgreSQL restart in the middle of a run makes it fail
clearly or ride it out, and the next run completes.

Challenges: http-01 through one shared webroot, served on Pebble's VA port (what a
fleet behind a load balancer does with a shared ``/.well-known`` location). The hosts talk
to Pebble through ``SerialFront``, one request at a time: Pebble 2.4.0 deadlocks under
this much concurrency (tests/peers/serial_front.py says how); the hosts still race each
other for every lineage.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acmeali import certutil, keys
from acmeali.lineage import LineageMeta
from acmeali.store.postgres import PostgresStorage
from acmeali.store.seam import BundleFiles
from tests.conftest import REPO, run_acmeali
from tests.peers.pebble import Pebble, PeerDied, wait_until
from tests.peers.postgres import Postgres
from tests.peers.serial_front import SerialFront
from tests.test_storage_postgres import key_file

# 300 lineages, as in the issue (about a minute for the three drills on 2 cores);
# ACMEALI_DRILL_N sets another number.
N = int(os.environ.get("ACMEALI_DRILL_N", "300"))
HOSTS = 3


class LocalCA:
    """Certificates to start from (version 1 of each lineage), from a throw-away CA."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.leaf = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drill CA")])
        self.leaf_pem = self.leaf.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption())
        now = dt.datetime.now(dt.timezone.utc)
        self.pem = (x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
                    .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(now - dt.timedelta(days=100))
                    .not_valid_after(now + dt.timedelta(days=100))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                    .sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))

    def issue(self, domain: str, *, due: bool) -> tuple[bytes, bytes]:
        now = dt.datetime.now(dt.timezone.utc)
        start = now - dt.timedelta(days=80 if due else 1)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
                .issuer_name(self.name).public_key(self.leaf.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + dt.timedelta(days=90))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), False)
                .sign(self.key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM), self.pem


class Fleet:
    def __init__(self, pebble: Pebble, front: SerialFront, dsn: str, tmp: Path) -> None:
        self.pebble, self.front, self.dsn, self.tmp = pebble, front, dsn, tmp
        self.key = key_file(tmp / "storage.key")
        self.webroot = tmp / "webroot"
        self.webroot.mkdir()
        self.config = tmp / "acmeali.toml"
        self.config.write_text(
            "[storage]\nbackend = \"postgresql\"\n"
            f"dsn = \"{dsn}\"\nkey_file = \"{self.key}\"\n"
            "[renewal]\ndeploy_hook = 'echo \"$ACMEALI_LINEAGE\" >> \"$DRILL_HOOK_LOG\"'\n")
        self.hosts = [tmp / f"host{i}" for i in range(HOSTS)]
        self.names: list[str] = []

    def storage(self) -> PostgresStorage:
        return PostgresStorage(self.dsn, key_file=str(self.key))

    def argv(self, host: int, *args: str) -> list[str]:
        return ["--config", str(self.config), "--state-dir", str(self.hosts[host]),
                "--ca-bundle", self.front.ca_bundle, *args]

    def env(self, host: int) -> dict[str, str]:
        return {"DRILL_HOOK_LOG": str(self.hosts[host]) + ".hooks"}

    def run(self, host: int, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return run_acmeali(*self.argv(host, *args), env=self.env(host), timeout=timeout)

    def start(self, host: int, *args: str) -> subprocess.Popen[str]:
        env = dict(os.environ, **self.env(host))
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        out = open(self.tmp / f"host{host}.out", "a")
        try:
            return subprocess.Popen([sys.executable, "-m", "acmeali", *self.argv(host, *args)],
                                    stdout=out, stderr=subprocess.STDOUT, text=True, env=env,
                                    cwd=REPO, start_new_session=True)
        finally:
            out.close()

    def output(self, host: int) -> str:
        return (self.tmp / f"host{host}.out").read_text()

    def seed(self, n: int, *, due: bool) -> None:
        """n lineages (version 1 from a local CA) and an account at Pebble, in the database."""
        ca = LocalCA()
        key = keys.load_private_key(ca.leaf_pem)
        tag = uuid.uuid4().hex[:6]
        self.names = [f"l{i}-{tag}.fleet.test" for i in range(n)]
        pg = self.storage()
        try:
            for name in self.names:
                cert, chain = ca.issue(name, due=due)
                v = pg.write_version(name, BundleFiles(privkey=ca.leaf_pem, cert=cert,
                                                       chain=chain, fullchain=cert + chain))
                pg.activate(name, v)
                pg.save_meta(LineageMeta(
                    name=name, domains=[name], server=self.front.directory_url,
                    settings={"challenge": "http-01", "webroot": str(self.webroot),
                              "key_type": "ec256"},
                    current=certutil.cert_facts(cert + chain, key, v)))
        finally:
            pg.close()
        r = run_acmeali(*self.argv(0, "--server", self.front.directory_url, "account",
                                   "register", "--agree-tos", "--email", "ops@fleet.test"))
        assert r.returncode == 0, r.stderr

    def finalized(self) -> int:
        return sum(1 for m, p in self.pebble.requests_seen()
                   if m == "POST" and p.startswith("/finalize-order/"))

    def new_orders(self) -> int:
        return sum(1 for m, p in self.pebble.requests_seen()
                   if m == "POST" and p.startswith("/order-plz"))

    def check_in_step(self) -> None:
        """Every host's live files are the database's current version of every lineage."""
        for host in range(HOSTS):
            r = self.run(host, "sync")
            assert r.returncode == 0, r.stdout + r.stderr
            assert "Traceback" not in r.stderr
        pg = self.storage()
        try:
            for name in self.names:
                bundle = pg.read_current(name)
                for host in self.hosts:
                    live = host / "live" / name
                    got = {k: (live / f"{k}.pem").read_bytes()
                           for k in ("cert", "chain", "fullchain", "privkey")}
                    assert got == {"cert": bundle.cert, "chain": bundle.chain,
                                   "fullchain": bundle.fullchain,
                                   "privkey": bundle.privkey}, (host, name)
        finally:
            pg.close()

    def versions(self) -> dict[str, list[int]]:
        pg = self.storage()
        try:
            return {name: pg.versions(name) for name in self.names}
        finally:
            pg.close()


@contextlib.contextmanager
def serving(directory: Path, port: int) -> Iterator[None]:
    """The shared webroot on Pebble's http-01 port (the fleet's web server)."""
    log = open(directory.parent / "webroot.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                             "--directory", str(directory), str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        def up() -> bool:
            import socket

            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        wait_until(up, "webroot server", timeout=30)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def fleet(pebble: Pebble, pg_dsn: str, tmp_path: Path) -> Iterator[Fleet]:
    with SerialFront(pebble, tmp_path / "front") as front:
        f = Fleet(pebble, front, pg_dsn, tmp_path)
        with serving(f.webroot, pebble.http_port):
            yield f


def wait_all(procs: list[subprocess.Popen[str]], timeout: float = 900) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for q in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(q.pid, signal.SIGKILL)
            raise
    return codes


def quarter_renewed(fleet: Fleet, finals: int, procs: list[subprocess.Popen[str]]) -> None:
    """Wait until a quarter of the lineages are issued (failing if every host stopped)."""
    def check() -> bool:
        if fleet.finalized() - finals >= max(2, N // 4):
            return True
        if all(p.poll() is not None for p in procs):
            raise PeerDied("every host stopped before a quarter was renewed: "
                           + repr([fleet.output(h)[-2000:] for h in range(HOSTS)]))
        return False
    wait_until(check, "a quarter renewed", timeout=600, interval=0.02)


def hooks_run(fleet: Fleet, host: int) -> list[str]:
    path = Path(fleet.env(host)["DRILL_HOOK_LOG"])
    return path.read_text().split() if path.exists() else []


def test_three_hosts_renew_force_every_lineage_exactly_once(fleet: Fleet) -> None:
    fleet.seed(N, due=False)
    orders, finals = fleet.new_orders(), fleet.finalized()
    started = time.monotonic()
    procs = [fleet.start(h, "renew", "--force", "--concurrency", "4") for h in range(HOSTS)]
    codes = wait_all(procs)
    wall = time.monotonic() - started
    outputs = [fleet.output(h) for h in range(HOSTS)]
    assert codes == [0] * HOSTS, outputs
    assert not any("Traceback" in o for o in outputs)
    assert fleet.finalized() - finals == N, "every lineage issued exactly once"
    assert fleet.new_orders() - orders == N
    assert fleet.versions() == {name: [1, 2] for name in fleet.names}
    # Each lineage was renewed by one host; the others skipped it and said why.
    renewed = [o.count(": renewed") for o in outputs]
    assert sum(renewed) == N, renewed
    assert any("busy: lock" in o or "already renewed by another run" in o for o in outputs)
    # Local hooks, on every host once per version that went live there: version 1 when
    # `renew` first brought the lineage to the host, version 2 after the renewal (on the
    # host that renewed) or at `sync` (on the others).
    fleet.check_in_step()
    for h in range(HOSTS):
        assert sorted(hooks_run(fleet, h)) == sorted(fleet.names * 2), h
    print(f"drill: {N} lineages, 3 hosts, renew --force wall {wall:.1f}s, renewed per host "
          f"{renewed}")
    # A second sync on an in-step host changes nothing and runs no hook.
    r = fleet.run(0, "sync")
    assert r.returncode == 0 and "0 lineage(s) switched" in r.stderr + r.stdout
    assert sorted(hooks_run(fleet, 0)) == sorted(fleet.names * 2)


def test_hosts_that_start_late_join_the_forced_run(fleet: Fleet) -> None:
    """`renew --force` on hosts that start seconds apart is still one renewal per lineage.

    The CI failure this guards: a host whose process started after another host had
    already renewed some lineages renewed those again (it compared renewal times with its
    own start). A host starting while another host's forced run is in progress joins that
    run instead, whatever its clock says.
    """
    n = max(30, N // 5)
    fleet.seed(n, due=False)
    finals = fleet.finalized()
    # One at a time: host 0 is still in its run (seconds of work left) when the others
    # start, however slowly their processes get going on a loaded machine.
    first = fleet.start(0, "renew", "--force", "--concurrency", "1")

    def some_renewed() -> bool:
        if first.poll() is not None:
            raise PeerDied("host 0 stopped early: " + fleet.output(0)[-2000:])
        return fleet.finalized() - finals >= 5
    wait_until(some_renewed, "host 0 renewed some lineages", timeout=300, interval=0.02)
    late = [fleet.start(h, "renew", "--force", "--concurrency", "4") for h in (1, 2)]
    codes = wait_all([first, *late])
    outputs = [fleet.output(h) for h in range(HOSTS)]
    assert codes == [0] * HOSTS, outputs
    assert fleet.finalized() - finals == n, "a late host renewed again what the run had done"
    assert fleet.versions() == {name: [1, 2] for name in fleet.names}
    assert sum(o.count(": renewed") for o in outputs) == n
    # A forced run that starts after every host left is a new run: it renews again.
    r = fleet.run(1, "renew", "--force", "--cert-name", fleet.names[0])
    assert r.returncode == 0, r.stdout + r.stderr
    assert fleet.versions()[fleet.names[0]] == [1, 2, 3]


def test_a_host_killed_in_the_middle_loses_nothing_and_issues_nothing_twice(
        fleet: Fleet) -> None:
    fleet.seed(N, due=True)
    finals = fleet.finalized()
    procs = [fleet.start(h, "renew", "--concurrency", "4") for h in range(HOSTS)]
    quarter_renewed(fleet, finals, procs)
    os.killpg(procs[0].pid, signal.SIGKILL)
    codes = wait_all(procs)
    assert codes[0] == -signal.SIGKILL
    assert codes[1:] == [0, 0], [fleet.output(h) for h in (1, 2)]
    # The next run of any host (here the killed one) finishes what it left.
    r = fleet.run(0, "renew")
    assert r.returncode == 0, r.stdout + r.stderr
    assert fleet.finalized() - finals == N, "nothing issued twice"
    assert fleet.versions() == {name: [1, 2] for name in fleet.names}, "nothing lost"
    fleet.check_in_step()


def test_postgresql_restarted_in_the_middle_of_a_run(fleet: Fleet, postgres: Postgres) -> None:
    fleet.seed(N, due=True)
    finals = fleet.finalized()
    procs = [fleet.start(h, "renew", "--concurrency", "4") for h in range(HOSTS)]
    quarter_renewed(fleet, finals, procs)
    postgres.restart()
    codes = wait_all(procs)
    for h, code in enumerate(codes):
        out = fleet.output(h)
        assert "Traceback" not in out, out
        assert code in (0, 1), out
        if code == 1:  # failed clearly: one line naming the database per failed lineage
            assert "PostgreSQL" in out, out
    r = fleet.run(1, "renew")
    assert r.returncode == 0, r.stdout + r.stderr
    versions = fleet.versions()
    pg = fleet.storage()
    try:
        for name in fleet.names:
            assert len(versions[name]) >= 2 and pg.current_version(name) == max(versions[name])
            assert pg.load_meta(name).pending_order is None
    finally:
        pg.close()
    fleet.check_in_step()
