"""``acmeali renew`` against a real Pebble, through the real CLI in child processes.

What a cron user relies on: silence and no network when nothing is due, only due lineages
renewed, failures isolated and summarised, overlapping runs refused politely, hooks run
with the documented environment, ``--dry-run`` touching nothing, broken lineages named
and skipped, failed deploys retried.

The helpers at the top (``Bed``, the DNS hook) are shared with the other renewal test
modules (``test_renew_crash``, ``test_ari``, ``test_certs_check``).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from acmeali.lineage import AriState, CertFacts, LineageMeta, from_iso, to_iso
from acmeali.renewal import choose_ari_moment, decide, renewal_time
from tests.conftest import REPO, run_acmeali
from tests.peers.pebble import Pebble, PebbleOptions, wait_until

# --------------------------------------------------------------------------- shared helpers

# A dns-01 hook for pebble-challtestsrv, steerable through flag files in a control dir:
#   fail-<domain>   present exits 1 with a message on stderr
#   block-<domain>  present writes blocked-<domain> (its pid) and waits until the flag goes
# Every call is appended to <ctl>/hook.log as "<action> <domain>".
DNS_HOOK = r'''
import json, os, sys, time, urllib.request
ctl, mgmt = sys.argv[1], sys.argv[2]
action, domain = os.environ["ACMEALI_ACTION"], os.environ["ACMEALI_DOMAIN"]
host = os.environ["ACMEALI_TXT_NAME"] + "."
flag = lambda n: os.path.exists(os.path.join(ctl, n))
with open(os.path.join(ctl, "hook.log"), "a") as f:
    f.write(f"{action} {domain}\n")
if action == "present":
    if flag("fail-" + domain):
        sys.stderr.write(f"test hook refuses to publish {host}\n")
        sys.exit(1)
    if flag("block-" + domain):
        with open(os.path.join(ctl, "blocked-" + domain), "w") as f:
            f.write(str(os.getpid()))
        deadline = time.monotonic() + 60
        while flag("block-" + domain) and time.monotonic() < deadline:
            time.sleep(0.05)
    path, body = "set-txt", {"host": host, "value": os.environ["ACMEALI_TXT_VALUE"]}
else:
    path, body = "clear-txt", {"host": host}
req = urllib.request.Request(f"{mgmt}/{path}", data=json.dumps(body).encode(), method="POST")
urllib.request.urlopen(req, timeout=5).read()
'''

# A user hook that records its name and the ACMEALI_* environment as one JSON line.
RECORD_HOOK = r'''
import json, os, sys
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"hook": sys.argv[2], "env": {k: v for k, v in os.environ.items()
                                                      if k.startswith("ACMEALI_")}}) + "\n")
'''


@dataclass
class Bed:
    """One state directory, the CLI pointed at one (or more) Pebbles, and the test hooks."""

    root: Path
    pebble: Pebble
    extra_pebbles: Sequence[Pebble] = ()
    config_text: str = ""  # more TOML for the bed's config file
    env: dict[str, str] = field(default_factory=dict)
    server: str | None = None  # default: pebble.directory_url (an ARI proxy sets its own)
    trust: Sequence[str] = ()  # PEM files for --ca-bundle (default: the Pebbles' own)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state = self.root / "state"
        # agree_tos in the config lets `renew` register an account (see fresh_account).
        self.config = self.root / "acmeali.toml"
        self.config.write_text('[acme]\nagree_tos = true\nemail = ["test@example.test"]\n\n'
                               + self.config_text)
        self.ctl = self.root / "ctl"
        self.ctl.mkdir(exist_ok=True)
        hook = self.root / "dnshook.py"
        hook.write_text(DNS_HOOK)
        rec = self.root / "record.py"
        rec.write_text(RECORD_HOOK)
        self.record_script = rec
        self.hook_log = self.root / "hooks.jsonl"
        # One trust file for every Pebble listener this bed talks to.
        self.ca_bundle = self.root / "ca.pem"
        files = list(self.trust) or [p.ca_bundle for p in (self.pebble, *self.extra_pebbles)]
        self.ca_bundle.write_text("".join(dict.fromkeys(Path(f).read_text() for f in files)))

    # ----------------------------------------------------------------- commands
    def dns_hook(self, pebble: Pebble | None = None) -> str:
        p = pebble or self.pebble
        return " ".join(shlex.quote(a) for a in (sys.executable, str(self.root / "dnshook.py"),
                                                  str(self.ctl), p.challtestsrv.mgmt_url))

    def record_hook(self, label: str) -> str:
        return " ".join(shlex.quote(a) for a in (sys.executable, str(self.record_script),
                                                  str(self.hook_log), label))

    def args(self, *args: str, server: str | None = None) -> list[str]:
        return ["--state-dir", str(self.state),
                "--server", server or self.server or self.pebble.directory_url,
                "--ca-bundle", str(self.ca_bundle), "--config", str(self.config), *args]

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        return run_acmeali(*self.args(*args), env={**self.env, **(env or {})}, timeout=timeout)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start the CLI in its own process group (so a test can kill -9 all of it)."""
        full = dict(os.environ)
        full.update(self.env)
        full.update(env or {})
        full["PYTHONPATH"] = str(REPO) + os.pathsep + full.get("PYTHONPATH", "")
        return subprocess.Popen([sys.executable, "-m", "acmeali", *self.args(*args)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=full, cwd=REPO, start_new_session=True)

    def issue_args(self, domain: str, *extra: str, pebble: Pebble | None = None) -> list[str]:
        p = pebble or self.pebble
        return ["issue", "-d", domain, "--challenge", "dns-01", "--dns", "hook",
                "--dns-hook", self.dns_hook(p), "--dns-resolver", p.challtestsrv.dns_address,
                "--agree-tos", "--email", "test@example.test", *extra]

    def issue(self, domain: str, *extra: str, pebble: Pebble | None = None,
              ok: bool = True) -> subprocess.CompletedProcess[str]:
        p = pebble or self.pebble
        r = run_acmeali(*self.args(*self.issue_args(domain, *extra, pebble=p),
                                   server=p.directory_url if pebble else None), env=self.env)
        if ok:
            assert r.returncode == 0, r.stderr
        return r

    def issue_many(self, domains: Sequence[str], *extra: str) -> None:
        """The first one alone (it registers the account), the rest in parallel."""
        self.issue(domains[0], *extra)
        procs = [self.popen(*self.issue_args(d, *extra)) for d in domains[1:]]
        for d, proc in zip(domains[1:], procs, strict=True):
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, f"{d}: {err}"

    def fresh_account(self) -> None:
        """Put the ACME account aside, so the next run registers a new one.

        Pebble reuses a valid authorization of the same account 1% of the time even with
        PEBBLE_AUTHZREUSE=0 (it creates a new one only when rand.Intn(100) > 0). A test
        that needs the DNS hook to run during a renewal (to fail or block in it) renews
        with a new account, which has no authorization to reuse.
        """
        accounts = self.state / "accounts"
        n = len(list(self.root.glob("accounts-old-*")))
        accounts.rename(self.root / f"accounts-old-{n}")

    # ----------------------------------------------------------------- looking at state
    def meta(self, name: str) -> dict:  # type: ignore[type-arg]
        data: dict = json.loads((self.state / "renewal" / f"{name}.json").read_text())  # type: ignore[type-arg]
        return data

    def serial(self, name: str) -> str:
        return str(self.meta(name)["current"]["serial"])

    def live_version(self, name: str) -> int:
        target = os.readlink(self.state / "live" / name / "current")
        return int(target.rsplit("/v", 1)[1])

    def live_bytes(self, name: str) -> dict[str, bytes]:
        d = self.state / "live" / name
        return {f: (d / f"{f}.pem").read_bytes() for f in ("privkey", "cert", "chain", "fullchain")}

    def archive_versions(self, name: str) -> list[int]:
        return sorted(int(p.name[1:]) for p in (self.state / "archive" / name).glob("v*"))

    def live_serial(self, name: str) -> str:
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(self.live_bytes(name)["cert"])
        return format(cert.serial_number, "x")

    def hook_records(self) -> list[dict]:  # type: ignore[type-arg]
        if not self.hook_log.exists():
            return []
        return [json.loads(line) for line in self.hook_log.read_text().splitlines()]

    def assert_live_ok(self, name: str, pebble: Pebble | None = None) -> str:
        """live/<name> is a complete bundle: key matches, chain verifies to Pebble's root,
        fullchain = cert + chain, metadata agrees. Returns the live serial."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        p = pebble or self.pebble
        b = self.live_bytes(name)
        cert = x509.load_pem_x509_certificate(b["cert"])
        key = serialization.load_pem_private_key(b["privkey"], None)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        assert key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(der, spki)
        assert b["fullchain"].replace(b"\n", b"") == (b["cert"] + b["chain"]).replace(b"\n", b"")
        roots = p.root_bundle(self.root / f"roots-{p.port}.pem")
        live = self.state / "live" / name
        r = subprocess.run(["openssl", "verify", "-no_check_time", "-CAfile", str(roots),
                            "-untrusted", str(live / "chain.pem"), str(live / "cert.pem")],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stdout + r.stderr
        serial = format(cert.serial_number, "x")
        assert self.serial(name) == serial, "metadata does not describe the live certificate"
        return serial


def wait_file(path: Path, timeout: float = 30) -> None:
    wait_until(path.exists, f"{path.name}", timeout=timeout)


def kill_group(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def wait_due(bed: Bed, name: str, timeout: float = 30) -> None:
    """Wait (bounded) until a short-lived lineage reaches its renewal moment."""
    m = bed.meta(name)["current"]
    nb, na = from_iso(m["not_before"]), from_iso(m["not_after"])
    assert nb and na
    at, _ = renewal_time(LineageMeta.from_json(bed.meta(name)))
    left = (at - datetime.now(timezone.utc)).total_seconds() + 0.2
    assert left < timeout, f"{name} becomes due only in {left:.0f}s"
    if left > 0:
        time.sleep(left)  # waiting for the clock itself: nothing to poll


# --------------------------------------------------------------------------- fixtures
def pebble_like(base: Pebble, factory: pytest.TempPathFactory, validity_seconds: int
                ) -> Iterator[Pebble]:
    """For a fixture: another Pebble issuing certificates that live ``validity_seconds``,
    serving ``base``'s TLS certificate so one --ca-bundle trusts both (two self-signed
    certificates with the same subject in one CA file confuse OpenSSL)."""
    p = Pebble(factory.mktemp(f"pebble-{validity_seconds}s"),
               PebbleOptions(validity_seconds=validity_seconds))
    p.tls_cert, p.tls_key = base.tls_cert, base.tls_key
    p.start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def short_pebble(pebble: Pebble, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """Pebble issuing 8-second certificates: due (half the lifetime) 4 s after issuance."""
    yield from pebble_like(pebble, tmp_path_factory, 8)


@pytest.fixture
def bed(tmp_path: Path, pebble: Pebble) -> Bed:
    return Bed(tmp_path, pebble)


# --------------------------------------------------------------------------- due-ness units
def _meta(lifetime: timedelta, left: timedelta, **kw: object) -> LineageMeta:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    na = now + left
    nb = na - lifetime
    facts = CertFacts(version=1, serial="abc", fingerprint="f" * 64, not_before=to_iso(nb) or "",
                      not_after=to_iso(na) or "", issuer="Test CA", key_type="ec256",
                      key_sha256="k" * 64, ari_cert_id="aki.serial")
    return LineageMeta(name="n", domains=["n.example"], server="https://ca/dir", current=facts,
                       **kw)  # type: ignore[arg-type]


NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.mark.parametrize(("lifetime_days", "left_days", "due"), [
    (90, 31, False), (90, 29, True),          # a third of 90 days = 30
    (45, 15.5, False), (45, 14.5, True),      # 45-day certificates: 15 days, not 30
    (6, 3.2, False), (6, 2.8, True),          # under 10 days: half of the lifetime
    (9.9, 5.1, False), (9.9, 4.8, True),
])
def test_lifetime_rule(lifetime_days: float, left_days: float, due: bool) -> None:
    m = _meta(timedelta(days=lifetime_days), timedelta(days=left_days))
    assert decide(m, datetime.now(timezone.utc)).due is due


def test_days_before_overrides_lifetime_rule() -> None:
    m = _meta(timedelta(days=90), timedelta(days=40))
    now = datetime.now(timezone.utc)
    assert not decide(m, now).due
    assert decide(m, now, days_before=45).due
    assert not decide(m, now, days_before=35).due
    assert decide(m, now, days_before=35, force=True).due
    # A small --days never postpones renewal past the emergency floor (1/20 of 90 = 4.5).
    m = _meta(timedelta(days=90), timedelta(days=4))
    assert decide(m, now, days_before=1).due
    assert not decide(_meta(timedelta(days=90), timedelta(days=5)), now, days_before=1).due


def test_emergency_overrides_ari() -> None:
    # ARI says "later", but under 1/20 of the lifetime is left: due now.
    m = _meta(timedelta(days=90), timedelta(days=4))
    m.ari = AriState(cert_id="x", selected=to_iso(NOW + timedelta(days=3)))
    assert decide(m, datetime.now(timezone.utc)).due
    # With 10 days left the ARI moment rules (not the lifetime third, which has passed).
    m = _meta(timedelta(days=90), timedelta(days=10))
    m.ari = AriState(cert_id="x", selected=to_iso(NOW + timedelta(days=3)))
    d = decide(m, datetime.now(timezone.utc))
    assert not d.due and "ARI" in d.reason


def test_compromised_is_due_revoked_is_parked() -> None:
    m = _meta(timedelta(days=90), timedelta(days=80), compromised_keys=["k" * 64])
    assert decide(m, datetime.now(timezone.utc)).due
    # Revoked by the user (`revoke --no-delete`): `renew` leaves it, even with --force,
    # until `issue --force`; so does a lineage that never got a certificate.
    m = _meta(timedelta(days=90), timedelta(days=80), revoked={"abc": "keyCompromise"})
    for force in (False, True):
        d = decide(m, datetime.now(timezone.utc), force=force)
        assert not d.due and "revoked" in d.reason and "--force" in d.reason
    m.current = None
    assert not decide(m, datetime.now(timezone.utc), force=True).due


def test_choose_ari_moment_is_stable_until_the_window_moves() -> None:
    import random

    now = NOW
    ari = AriState(cert_id="x")
    start, end = now + timedelta(days=1), now + timedelta(days=2)
    choose_ari_moment(ari, start, end, now, random.Random(1))
    first = ari.selected
    sel = from_iso(first)
    assert sel is not None and start <= sel <= end
    for seed in range(2, 6):  # same window, other randomness: the moment stays
        choose_ari_moment(ari, start, end, now + timedelta(hours=seed), random.Random(seed))
        assert ari.selected == first
    earlier_start, earlier_end = now - timedelta(hours=2), now - timedelta(hours=1)
    choose_ari_moment(ari, earlier_start, earlier_end, now, random.Random(7))
    assert ari.selected != first and ari.window_end == to_iso(earlier_end)
    moved = from_iso(ari.selected)
    assert moved is not None and moved <= now  # a window in the past: renew now


# --------------------------------------------------------------------------- nothing due
_PROBE = r'''
import json, sys
from acmeali.cli import main
rc = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules
               if m.split(".")[0] in ("cryptography", "requests", "dns", "josepy", "urllib3")
               or m.startswith("alibabacloud"))
print(json.dumps({"rc": rc, "heavy": heavy}))
'''


def test_nothing_due_is_quiet_fast_and_offline(bed: Bed) -> None:
    bed.issue("quiet.example.test")
    bed.issue("quiet2.example.test")
    seen = len(bed.pebble.requests_seen())
    r = bed.cli("renew", "-q")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    # --jitter only delays network work: with nothing due it must not sleep at all.
    r = bed.cli("renew", "-q", "--jitter", "3600", timeout=20)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = bed.cli("renew")
    assert r.returncode == 0 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert "No renewals due" in lines[0] and "next:" in lines[0] and "example.test" in lines[0]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-c", _PROBE, *bed.args("renew", "-q")],
                       capture_output=True, text=True, env=env, timeout=30, cwd=REPO)
    probe = json.loads(p.stdout.strip().splitlines()[-1])
    assert probe == {"rc": 0, "heavy": []}, probe
    assert len(bed.pebble.requests_seen()) == seen, "a run with nothing due contacted the CA"


# --------------------------------------------------------------------------- short-lived certs
def test_renews_only_due_lineages_keeps_and_prunes_versions(tmp_path: Path, pebble: Pebble,
                                                            short_pebble: Pebble) -> None:
    bed = Bed(tmp_path, pebble, extra_pebbles=[short_pebble],
              config_text="[renewal]\nkeep_versions = 2\n")
    bed.issue("short.example.test", pebble=short_pebble)
    bed.issue("long.example.test")  # 5-year Pebble default: never due here
    old_short, old_long = bed.serial("short.example.test"), bed.serial("long.example.test")
    old_bytes = bed.live_bytes("short.example.test")
    wait_due(bed, "short.example.test")

    r = bed.cli("renew")
    assert r.returncode == 0, r.stderr
    assert "short.example.test: renewed" in r.stderr
    assert "long.example.test" not in r.stderr
    assert "1 done, 0 failed, 1 not due (of 2)" in r.stderr
    assert bed.serial("long.example.test") == old_long
    new = bed.assert_live_ok("short.example.test", short_pebble)
    assert new != old_short
    assert bed.live_version("short.example.test") == 2
    assert bed.archive_versions("short.example.test") == [1, 2]
    v1 = bed.state / "archive" / "short.example.test" / "v1"
    assert (v1 / "cert.pem").read_bytes() == old_bytes["cert"]  # old version kept intact

    for _ in range(2):
        r = bed.cli("renew", "--force", "--name", "short.example.test")
        assert r.returncode == 0, r.stderr
    assert bed.live_version("short.example.test") == 4
    assert bed.archive_versions("short.example.test") == [3, 4]  # keep_versions = 2
    bed.assert_live_ok("short.example.test", short_pebble)


# --------------------------------------------------------------------------- many at once
def test_concurrent_renewal_isolates_failures_and_runs_hooks(bed: Bed) -> None:
    names = [f"c{i}.example.test" for i in range(7)]
    bed.issue_many(names)
    before = {n: bed.serial(n) for n in names}
    (bed.ctl / "fail-c3.example.test").touch()
    bed.fresh_account()
    failure_out = bed.root / "failure.env"
    failure_hook = (f"{shlex.quote(sys.executable)} -c "
                    + shlex.quote("import os,sys; open(sys.argv[1],'w').write("
                                  "os.environ['ACMEALI_FAILED_LINEAGES'] + '|' + "
                                  "os.environ['ACMEALI_FAILURES'])")
                    + f" {shlex.quote(str(failure_out))}")
    r = bed.cli("renew", "--force", "--concurrency", "4",
                "--pre-hook", bed.record_hook("pre"), "--post-hook", bed.record_hook("post"),
                "--deploy-hook", bed.record_hook("deploy"), "--failure-hook", failure_hook)
    assert r.returncode == 1, r.stderr
    assert "6 done, 1 failed, 0 not due (of 7)" in r.stderr
    assert r.stderr.count("Registered account") == 1  # one account, not one per worker
    err_lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err_lines) >= 1 and "c3.example.test" in err_lines[0]
    assert "test hook refuses to publish" in r.stderr  # the hook's own words
    for n in names:
        if n == "c3.example.test":
            assert bed.serial(n) == before[n]
            assert bed.meta(n)["last_renewal"]["ok"] is False
        else:
            assert bed.assert_live_ok(n) != before[n], n
    failed, _, failures = failure_out.read_text().partition("|")
    assert failed == "c3.example.test" and failures.startswith("c3.example.test: ")

    recs = bed.hook_records()
    assert [x["hook"] for x in recs].count("pre") == 1
    assert [x["hook"] for x in recs].count("post") == 1
    assert recs[0]["hook"] == "pre" and recs[-1]["hook"] == "post"
    deploys = [x["env"] for x in recs if x["hook"] == "deploy"]
    assert sorted(e["ACMEALI_LINEAGE"] for e in deploys) == [n for n in names
                                                              if n != "c3.example.test"]
    for e in deploys:
        n = e["ACMEALI_LINEAGE"]
        assert e["ACMEALI_DOMAINS"] == n
        live = bed.live_bytes(n)
        for var, f in (("ACMEALI_CERT_PATH", "cert"), ("ACMEALI_KEY_PATH", "privkey"),
                       ("ACMEALI_FULLCHAIN_PATH", "fullchain"), ("ACMEALI_CHAIN_PATH", "chain")):
            assert Path(e[var]) == bed.state / "live" / n / f"{f}.pem"
            assert Path(e[var]).read_bytes() == live[f]

    # Nothing due now: no hooks at all.
    bed.hook_log.unlink()
    r = bed.cli("renew", "--pre-hook", bed.record_hook("pre"),
                "--post-hook", bed.record_hook("post"), "--deploy-hook", bed.record_hook("deploy"))
    assert r.returncode == 0 and "No renewals due" in r.stderr
    assert bed.hook_records() == []


def test_concurrent_renewal_with_standalone_http01(bed: Bed) -> None:
    """Lineages validated by our own http-01 server renew in parallel on one port."""
    names = [f"h{i}.example.test" for i in range(4)]
    http = ["--challenge", "http-01", "--http-address", "127.0.0.1",
            "--http-port", str(bed.pebble.http_port)]
    for n in names:
        r = bed.cli("issue", "-d", n, *http, "--agree-tos", "--email", "test@example.test")
        assert r.returncode == 0, r.stderr
    before = {n: bed.serial(n) for n in names}
    bed.fresh_account()  # no authorization to reuse: every lineage really validates
    r = bed.cli("renew", "--force", "--concurrency", "4")
    assert r.returncode == 0, r.stderr
    assert "4 done, 0 failed" in r.stderr
    assert "already in use" not in r.stderr
    for n in names:
        assert bed.assert_live_ok(n) != before[n], n


def test_many_lineages_renew_at_once_on_one_standalone_port(tmp_path: Path,
                                                            pebble: Pebble) -> None:
    """16 lineages, 8 at a time, on Pebble's one http-01 port; half on 127.0.0.1, half on
    all addresses (as `issue` with and without --http-address leaves them). Each lineage's
    preflight binds the port while others' listeners serve it, and an all-addresses
    listener cannot be bound beside a 127.0.0.1 one: none of it may fail a lineage."""
    bed = Bed(tmp_path, pebble)
    names = [f"p{i}.example.test" for i in range(16)]
    bed.issue_many(names)  # by dns-01 (parallel processes); the config moves them to http-01
    tables = "".join(
        f'[[certificates]]\nname = "{n}"\ndomains = ["{n}"]\nchallenge = "http-01"\n'
        f'http_port = {pebble.http_port}\n' + ('http_address = "127.0.0.1"\n' if i % 2 else "")
        for i, n in enumerate(names))
    bed.config.write_text(bed.config.read_text() + tables)
    before = {n: bed.serial(n) for n in names}
    bed.fresh_account()  # no authorization to reuse: every lineage really validates
    r = bed.cli("renew", "--force", "--concurrency", "8", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "16 done, 0 failed" in r.stderr, r.stderr
    assert "in use" not in r.stderr, r.stderr
    for n in names:
        assert bed.serial(n) != before[n], n
    assert bed.assert_live_ok(names[0]) and bed.assert_live_ok(names[1])


def test_per_lineage_deploy_hook_from_config(tmp_path: Path, pebble: Pebble) -> None:
    bed = Bed(tmp_path, pebble)
    config = bed.config
    config.write_text(config.read_text() + f'[[certificates]]\nname = "cfg.example.test"\n'
                      f'domains = ["cfg.example.test"]\n'
                      f'deploy_hook = {json.dumps(bed.record_hook("cfg"))}\n')
    bed.issue("cfg.example.test", "--name", "cfg.example.test")
    bed.issue("other.example.test")
    bed.hook_log.unlink(missing_ok=True)
    r = bed.cli("renew", "--force")
    assert r.returncode == 0, r.stderr
    recs = bed.hook_records()
    assert [(x["hook"], x["env"]["ACMEALI_LINEAGE"]) for x in recs] == [
        ("cfg", "cfg.example.test")]

    # Added to the config after issuance: the config file is what the user edits.
    hook2 = bed.record_hook("cfg-later")
    config.write_text(config.read_text() + f'\n[[certificates]]\nname = "other.example.test"\n'
                      f'domains = ["other.example.test"]\n'
                      f'deploy_hook = {json.dumps(hook2)}\n')
    bed.hook_log.unlink()
    r = bed.cli("renew", "--force", "--name", "other.example.test")
    assert r.returncode == 0, r.stderr
    assert [(x["hook"], x["env"]["ACMEALI_LINEAGE"]) for x in bed.hook_records()] == [
        ("cfg-later", "other.example.test")]


def test_config_file_now_outranks_the_record(tmp_path: Path, pebble: Pebble) -> None:
    """[defaults] added later fills what `issue` left unset; a [[certificates]] table is
    the declared state: new names are renewed for at once, its hooks run once each."""
    bed = Bed(tmp_path, pebble)
    for n in ("rec.example.test", "rec2.example.test"):
        bed.issue(n)  # dns-01 through the test hook: recorded as `issue` flags
    base = bed.config.read_text()
    bed.config.write_text(base + "[defaults]\n"
                          f"deploy_hook = {json.dumps(bed.record_hook('deploy-defaults'))}\n"
                          f"pre_hook = {json.dumps(bed.record_hook('pre-defaults'))}\n")
    r = bed.cli("renew", "--force", "--pre-hook", bed.record_hook("pre-flag"))
    assert r.returncode == 0, r.stderr
    hooks = [(x["hook"], x["env"].get("ACMEALI_LINEAGE")) for x in bed.hook_records()]
    # Recorded "no deploy hook" does not mask the one [defaults] gained since.
    assert sorted(hooks) == [("deploy-defaults", "rec.example.test"),
                             ("deploy-defaults", "rec2.example.test"),
                             ("pre-defaults", None), ("pre-flag", None)]
    assert hooks[:2] == [("pre-flag", None), ("pre-defaults", None)]  # before any renewal

    entry_hooks = (f"pre_hook = {json.dumps(bed.record_hook('pre-entry'))}\n"
                   f"post_hook = {json.dumps(bed.record_hook('post-entry'))}\n")
    bed.config.write_text(bed.config.read_text()
                          + '\n[[certificates]]\nname = "rec.example.test"\n'
                          + 'domains = ["rec.example.test", "www.rec.example.test"]\n'
                          + entry_hooks
                          + '\n[[certificates]]\nname = "rec2.example.test"\n'
                          + 'domains = ["rec2.example.test"]\n' + entry_hooks)
    bed.hook_log.unlink()
    bed.fresh_account()
    r = bed.cli("renew")  # not forced: only the lineage whose names changed is due
    assert r.returncode == 0, r.stderr
    assert "1 done, 0 failed, 1 not due (of 2)" in r.stderr
    assert bed.meta("rec.example.test")["domains"] == ["rec.example.test",
                                                       "www.rec.example.test"]
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(bed.live_bytes("rec.example.test")["cert"])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == ["rec.example.test",
                                                             "www.rec.example.test"]
    bed.assert_live_ok("rec.example.test")
    hooks = [(x["hook"], x["env"].get("ACMEALI_LINEAGE")) for x in bed.hook_records()]
    assert hooks == [("pre-entry", None), ("deploy-defaults", "rec.example.test"),
                     ("post-entry", None)]

    r = bed.cli("renew")
    assert r.returncode == 0 and "No renewals due" in r.stderr, r.stderr


# --------------------------------------------------------------------------- locks
def test_overlapping_runs_issue_refused_and_dead_lock_taken_over(bed: Bed) -> None:
    name = "lock.example.test"
    bed.issue(name)
    old = bed.serial(name)
    (bed.ctl / f"block-{name}").touch()
    bed.fresh_account()
    first = bed.popen("renew", "--force")
    try:
        wait_file(bed.ctl / f"blocked-{name}")
        second = bed.cli("renew", "--force")
        assert second.returncode == 0, second.stderr
        assert "another renew is running" in second.stderr
        other = bed.cli(*bed.issue_args(name), "--force")
        assert other.returncode == 1
        assert name in other.stderr and "held by process" in other.stderr
        assert "another acmeali run is working on it" in other.stderr
        kill_group(first)  # kill -9 while the lineage lock and the run lock are held
    finally:
        if first.poll() is None:
            kill_group(first)
        (bed.ctl / f"block-{name}").unlink()
    bed.assert_live_ok(name)  # the killed run changed nothing live
    assert bed.serial(name) == old
    r = bed.cli("renew", "--force")
    assert r.returncode == 0, r.stderr
    assert f"{name}: renewed" in r.stderr
    assert bed.assert_live_ok(name) != old


# --------------------------------------------------------------------------- dry run
def test_dry_run_writes_nothing_and_runs_no_hooks(bed: Bed) -> None:
    name = "dry.example.test"
    bed.issue(name)
    before = (bed.live_bytes(name), bed.live_version(name), bed.archive_versions(name),
              bed.meta(name))
    r = bed.cli("renew", "--dry-run", "--pre-hook", bed.record_hook("pre"),
                "--post-hook", bed.record_hook("post"), "--deploy-hook", bed.record_hook("deploy"))
    assert r.returncode == 0, r.stderr
    assert "dry run succeeded" in r.stderr  # certbot-like: every lineage is tried
    after = (bed.live_bytes(name), bed.live_version(name), bed.archive_versions(name),
             bed.meta(name))
    assert after == before
    assert bed.hook_records() == []
    assert sorted(os.listdir(bed.state / "live" / name)) == [
        "cert.pem", "chain.pem", "current", "fullchain.pem", "privkey.pem"]


# --------------------------------------------------------------------------- broken lineages
def test_broken_lineages_are_named_and_skipped(bed: Bed) -> None:
    names = ["ok.example.test", "nolive.example.test", "badpem.example.test",
             "json.example.test", "wrongkey.example.test"]
    bed.issue_many(names)
    ok_serial = bed.serial("ok.example.test")
    (bed.state / "live" / "nolive.example.test" / "cert.pem").unlink()
    (bed.state / "archive" / "badpem.example.test" / "v1" / "cert.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    (bed.state / "renewal" / "json.example.test.json").write_text('{"name": "json.exa')
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    (bed.state / "archive" / "wrongkey.example.test" / "v1" / "privkey.pem").write_bytes(other)

    r = bed.cli("renew", "--days", "100000")  # everything is due
    assert r.returncode == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    for broken in names[1:]:
        assert any(broken in line for line in errors), (broken, r.stderr)
    assert "ok.example.test: renewed" in r.stderr
    assert bed.assert_live_ok("ok.example.test") != ok_serial
    for broken in ("nolive.example.test", "badpem.example.test", "wrongkey.example.test"):
        assert bed.archive_versions(broken) == [1], f"{broken} was renewed over a broken state"
    assert "1 done, 4 failed" in r.stderr


# --------------------------------------------------------------------------- redeploy
def test_failed_deploy_is_redeployed_when_nothing_is_due(bed: Bed) -> None:
    name = "redeploy.example.test"
    flag = bed.ctl / "deploy-fails"
    flag.touch()
    marker = bed.root / "deployed.txt"
    target_cmd = (f"test ! -e {shlex.quote(str(flag))} && "
                  f"echo \"$ACMEALI_FINGERPRINT\" >> {shlex.quote(str(marker))}")
    r = bed.issue(name, "--deploy", f"hook:{target_cmd}", ok=False)
    assert r.returncode == 1 and "deploy" in r.stderr
    assert not marker.exists()
    fp = bed.meta(name)["current"]["fingerprint"]

    flag.unlink()
    r = bed.cli("renew")
    assert r.returncode == 0, r.stderr
    assert f"{name}: redeployed" in r.stderr
    assert marker.read_text().split() == [fp]
    assert bed.live_version(name) == 1  # redeployed, not renewed
    r = bed.cli("renew", "-q")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert marker.read_text().split() == [fp]  # and only once


def test_deploy_targets_follow_the_config_table(bed: Bed) -> None:
    """A target added to a lineage's table is deployed to at the next run (nothing due);
    one removed from it is no longer retried, though its record stays."""
    name = "targets.example.test"
    bed.issue(name)
    marker, flag = bed.root / "deployed.txt", bed.ctl / "deploy-fails"
    target = (f"hook:test ! -e {shlex.quote(str(flag))} && "
              f"echo \"$ACMEALI_LINEAGE\" >> {shlex.quote(str(marker))}")
    base = bed.config.read_text()
    table = f'\n[[certificates]]\nname = "{name}"\ndomains = ["{name}"]\n'
    bed.config.write_text(base + table + f"deploy = [{json.dumps(target)}]\n")
    r = bed.cli("renew")
    assert r.returncode == 0, r.stderr
    assert f"{name}: redeployed" in r.stderr and bed.live_version(name) == 1
    assert marker.read_text().split() == [name]
    assert bed.meta(name)["deploy"] == [target]

    flag.touch()  # the target breaks ...
    r = bed.cli("renew", "--force")
    assert r.returncode == 1 and "deploy failed" in r.stderr, r.stderr
    bed.config.write_text(base + table + "deploy = []\n")  # ... and the user drops it
    r = bed.cli("renew", "-q")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = bed.cli("certs", "check")
    assert r.returncode == 0, r.stdout + r.stderr  # not an alarm about a dropped target
    assert bed.meta(name)["deploy"] == [target]  # recorded until the next change ...
    r = bed.cli("renew", "--force")
    assert r.returncode == 0, r.stderr
    meta = bed.meta(name)
    assert meta["deploy"] == [] and target in meta["deployments"]  # ... record kept
