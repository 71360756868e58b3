"""Issue 12: a CA other than Pebble, and a hostile network, through ``tests.peers.fault_proxy``.

Pebble answers every request; the proxy in front of it drops, stalls, trickles, truncates,
inflates or rewrites the answers a test picks. What is checked is what a cron user sees:
the exit code, one clear line (never a traceback), how long it took, and that the live
certificate and the lock are left as they should be.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.peers.fault_proxy import (
    FaultProxy,
    Rule,
    TrickleRelay,
    Window,
    json_edit,
    now_utc,
)
from tests.peers.pebble import Pebble
from tests.test_renew import Bed

ORDER = r"^/(my-order|order-plz)"


@pytest.fixture(scope="module")
def proxy(pebble: Pebble, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProxy]:
    with FaultProxy(pebble, tmp_path_factory.mktemp("fault-proxy")) as p:
        yield p


@pytest.fixture
def bed(tmp_path: Path, pebble: Pebble, proxy: FaultProxy) -> Bed:
    proxy.clear(log=True)
    proxy.ari = False
    proxy.window = None
    # Trust: the proxy's TLS certificate, and Pebble's root as the CA's trust anchor.
    roots = pebble.root_bundle(tmp_path / "pebble-roots.pem")
    return Bed(tmp_path / "bed", pebble, server=proxy.directory_url,
               trust=[proxy.ca_bundle, str(roots)])


def no_traceback(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert "unexpected error" not in r.stderr, r.stderr


def _leave_pending(doc: dict[str, Any]) -> None:
    """A CA that keeps an order ``pending`` after its authorization failed."""
    if doc.get("status") == "invalid":
        doc["status"] = "pending"
        doc.pop("error", None)


def _still_processing(doc: dict[str, Any]) -> None:
    if doc.get("status") == "invalid":
        doc["status"] = "pending"
        for ch in doc.get("challenges", []):
            if ch.get("status") == "invalid":
                ch["status"] = "processing"
                ch.pop("error", None)


# --------------------------------------------------------------------------- item 1
@pytest.mark.parametrize("killed", [False, True], ids=["failed", "killed-after-answer"])
def test_order_left_pending_after_failed_authorization_is_replaced(
        bed: Bed, proxy: FaultProxy, tmp_path: Path, killed: bool) -> None:
    name = f"pending{int(killed)}.example.test"
    bed.issue(name)  # a lineage (a failed first issuance would leave nothing to resume)
    serial = bed.serial(name)
    bed.fresh_account()  # no valid authorization Pebble could reuse (see Bed.fresh_account)
    proxy.add(Rule(ORDER, "rewrite", times=None, edit=json_edit(_leave_pending)))
    # http-01 into a webroot nobody serves: Pebble's validation fails, authz invalid.
    webroot = tmp_path / "webroot"
    webroot.mkdir()
    r = bed.cli("issue", "-d", name, "--force", "--challenge", "http-01", "--webroot",
                str(webroot), env={"ACMEALI_CRASH_AT": "after-answer"} if killed else None)
    assert r.returncode != 0
    stored = bed.meta(name)["pending_order"]
    assert stored and stored["url"]
    dead_order = stored["url"]
    if killed:
        # The next run starts while the CA is still validating: the authorization shows
        # `pending` with its challenge `processing` twice before its outcome (invalid).
        proxy.add(Rule("^/authZ/", "rewrite", method="POST", times=2,
                       edit=json_edit(_still_processing)))
    # The next run replaces the dead order by a new one, in the same run.
    r = bed.issue(name, "--force", ok=False)
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert bed.assert_live_ok(name) != serial
    assert bed.meta(name)["pending_order"] is None
    finalized = [e.path for e in proxy.exchanges("^/finalize-order/")]
    assert not any(dead_order.rsplit("/", 1)[1] in p for p in finalized)


# --------------------------------------------------------------------------- item 2
def _issue_with_ari(bed: Bed, proxy: FaultProxy, name: str) -> None:
    proxy.ari = True
    bed.issue(name)
    assert bed.meta(name)["ari"]["cert_id"]


def test_ari_gone_from_the_directory_clears_state_and_stays_offline(
        bed: Bed, proxy: FaultProxy) -> None:
    name = "ari-gone.example.test"
    _issue_with_ari(bed, proxy, name)
    proxy.ari = False  # the CA stops offering renewalInfo
    r = bed.cli("renew", "-q")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert bed.meta(name)["ari"] is None
    seen = len(proxy.exchanges())
    for _ in range(2):
        r = bed.cli("renew", "-q")
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert len(proxy.exchanges()) == seen, "a renew with nothing due went online"


@pytest.mark.parametrize("fault", ["problem", "drop", "truncate", "error-500"])
def test_failing_ari_backs_off_quietly(bed: Bed, proxy: FaultProxy, fault: str) -> None:
    name = f"ari-{fault}.example.test"
    _issue_with_ari(bed, proxy, name)
    if fault == "error-500":
        proxy.add(Rule("^/renewal-info/", "status", times=None, status=500,
                       body=b"oops", headers={"Retry-After": "600"}))
    elif fault != "problem":  # "problem": no window set, the proxy answers a 404 problem
        proxy.add(Rule("^/renewal-info/", fault, times=None))
    r = bed.cli("renew", "-q")
    no_traceback(r)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    ari = bed.meta(name)["ari"]
    assert ari["failures"] == 1 and ari["next_poll"]
    asked = len(proxy.exchanges("^/renewal-info/"))
    assert asked >= 1
    r = bed.cli("renew")  # within the backoff: offline, and nothing to say
    assert r.returncode == 0 and "No renewals due" in r.stderr, r.stderr
    assert len(proxy.exchanges("^/renewal-info/")) == asked


# --------------------------------------------------------------------------- item 7
def test_dropped_or_cut_answers_are_retried_when_safe(bed: Bed, proxy: FaultProxy) -> None:
    proxy.add(Rule("^/dir", "truncate", method="GET", keep=20))
    proxy.add(Rule("^/dir", "drop", method="GET"))
    proxy.add(Rule("^/dir", "rewrite", method="GET", edit=lambda s, h, b: (
        s, {**h, "Content-Encoding": "gzip"}, b"not gzip at all")))
    proxy.add(Rule("^/authZ/", "truncate", method="POST"))
    proxy.add(Rule("^/my-order/", "drop", method="POST", times=2))
    r = bed.issue("retried.example.test", ok=False)
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    bed.assert_live_ok("retried.example.test")
    assert all(rule.applied == rule.times for rule in proxy.rules)


@pytest.mark.parametrize("fault", ["truncate", "drop"])
def test_cut_short_answer_to_an_unsafe_post_is_one_clear_line(
        bed: Bed, proxy: FaultProxy, fault: str) -> None:
    proxy.add(Rule("^/order-plz", fault, method="POST"))
    r = bed.issue(f"cut-{fault}.example.test", ok=False)
    no_traceback(r)
    assert r.returncode == 1
    assert "error: cannot reach the CA at" in r.stderr
    assert "not repeated" in r.stderr
    assert len(proxy.exchanges("^/order-plz")) == 1  # newOrder is never sent twice


def test_a_broken_ari_answer_never_stops_the_other_lineages(
        bed: Bed, proxy: FaultProxy) -> None:
    names = ["ari-a.example.test", "ari-b.example.test"]
    for n in names:
        _issue_with_ari(bed, proxy, n)
    old = {n: bed.serial(n) for n in names}
    proxy.window = Window(now_utc() - timedelta(hours=2), now_utc() - timedelta(hours=1))
    broken = bed.meta(names[0])["ari"]["cert_id"]
    proxy.add(Rule(f"^/renewal-info/{broken}", "truncate", times=None, keep=5))
    r = bed.cli("renew")
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert f"{names[1]}: renewed" in r.stderr
    assert bed.serial(names[1]) != old[names[1]]
    assert bed.serial(names[0]) == old[names[0]]
    assert "renewal info not available" in r.stderr


# --------------------------------------------------------------------------- item 6
def test_trickling_ca_hits_the_request_deadline_and_frees_the_lock(
        bed: Bed, proxy: FaultProxy) -> None:
    name = "trickle.example.test"
    bed.issue(name)
    bed.config.write_text(bed.config.read_text().replace("[acme]\n", "[acme]\ntimeout = 2\n"))
    rule = proxy.add(Rule("^/dir", "trickle", method="GET", times=None, seconds=0.5))
    started = time.monotonic()
    r = bed.cli("renew", "--force", timeout=60)
    took = time.monotonic() - started
    no_traceback(r)
    assert r.returncode == 1, r.stderr
    assert "within 2 s" in r.stderr
    assert took < 20, f"took {took:.1f}s"
    assert rule.applied >= 1
    proxy.clear()
    r = bed.cli("renew", "--force")
    assert r.returncode == 0 and f"{name}: renewed" in r.stderr, r.stderr


@pytest.mark.parametrize("limit", ["request", "run"])
@pytest.mark.parametrize("where", ["tls-handshake", "response-headers", "proxy-connect"])
def test_trickled_handshake_or_headers_end_at_the_deadline(
        proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, where: str, limit: str) -> None:
    # One byte every 0.3 s: no single read waits anywhere near the socket timeout, so only
    # a deadline for the whole request (connect, proxy, handshake, headers) ends it.
    # "request": [acme] timeout = 2 s; "run": timeout 30 s, but the run's limit is in 2 s.
    from acmeali.acme.errors import TransportError
    from acmeali.acme.transport import Transport, set_run_deadline

    proxy.clear(log=True)
    url = proxy.directory_url
    with contextlib.ExitStack() as stack:
        if where == "tls-handshake":
            relay = stack.enter_context(TrickleRelay(proxy.port, 0.3))
            url = f"https://127.0.0.1:{relay.port}/dir"
        elif where == "proxy-connect":  # HTTPS_PROXY is honoured (docs/issuing.md)
            relay = stack.enter_context(TrickleRelay(proxy.port, 0.3, connect=True))
            monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{relay.port}")
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
        else:
            rule = proxy.add(Rule("^/dir", "trickle-head", method="GET", times=None,
                                  seconds=0.3))
        transport = stack.enter_context(contextlib.closing(Transport(
            ca_bundle=proxy.ca_bundle, timeout=2.0 if limit == "request" else 30.0,
            backoff=0.0)))
        started = time.monotonic()
        if limit == "run":
            stack.callback(set_run_deadline, None)
            set_run_deadline(started + 2.0)
        with pytest.raises(TransportError) as info:
            transport.get(url)
        took = time.monotonic() - started
    if limit == "request":
        assert info.value.message == f"no complete answer to GET {url} within 2 s", info.value
    else:
        assert info.value.message == f"GET {url} was cut off: the run's time limit passed", \
            info.value
    assert took < 2 + 1.5, f"took {took:.1f}s for a 2 s deadline"
    assert transport.request_count == 1  # a deadline is not retried
    if where == "response-headers":
        assert rule.applied == 1
    else:
        assert relay.connections == 1


def test_a_plain_http_url_from_the_ca_is_refused_unsent(proxy: FaultProxy) -> None:
    # A directory (or Location, or Link) naming http:// would get signed requests in
    # clear text, on a plain connection no deadline arms: refused before connecting.
    from acmeali.acme.errors import TransportError
    from acmeali.acme.transport import Transport

    with TrickleRelay(proxy.port, 0.3) as relay, contextlib.closing(
            Transport(ca_bundle=proxy.ca_bundle, timeout=2.0, backoff=0.0)) as transport:
        url = f"http://127.0.0.1:{relay.port}/nonce-plz"
        with pytest.raises(TransportError) as info:
            transport.get(url)
        assert relay.connections == 0
    assert info.value.message == (f"not sending GET {url}: the CA gave a URL that is not "
                                  "https (ACME is HTTPS only, RFC 8555 §6.1)"), info.value


# --------------------------------------------------------------------------- item 8
def test_a_100_mb_certificate_answer_is_refused_after_1_mib(
        bed: Bed, proxy: FaultProxy) -> None:
    rule = proxy.add(Rule("^/certZ/", "inflate", method="POST", size=100 * 1024 * 1024))
    r = bed.issue("inflated.example.test", ok=False)
    no_traceback(r)
    assert r.returncode == 1
    assert "larger than 1024 KiB" in r.stderr
    time.sleep(0.5)
    sent = [e.sent for e in proxy.exchanges("^/certZ/") if e.fault == "inflate"]
    assert rule.applied == 1 and sent and sent[0] < 16 * 1024 * 1024, sent
    # Announced as huge: refused before reading.
    proxy.clear()
    proxy.add(Rule("^/certZ/", "rewrite", method="POST",
                   edit=lambda s, h, b: (s, h, b + b" " * (2 << 20))))
    r = bed.issue("inflated.example.test", ok=False)
    no_traceback(r)
    assert r.returncode == 1 and "announced" in r.stderr, r.stderr
    proxy.clear()
    bed.issue("inflated.example.test")  # the order is resumed and completes


def test_non_ascii_certificate_answer_is_a_clear_error(bed: Bed, proxy: FaultProxy) -> None:
    proxy.add(Rule("^/certZ/", "rewrite", method="POST",
                   edit=lambda s, h, b: (s, h, "Zertifikat für\n".encode() + b)))
    r = bed.issue("accent.example.test", ok=False)
    no_traceback(r)
    assert r.returncode == 1
    assert "not ASCII PEM" in r.stderr
    assert not (bed.state / "live" / "accent.example.test").exists()


# --------------------------------------------------------------------------- item 6: whole run
def test_run_time_limit_cuts_off_a_stalled_ca(bed: Bed, proxy: FaultProxy) -> None:
    name = "run-limit.example.test"
    bed.issue(name)
    serial = bed.serial(name)
    proxy.add(Rule("^/order-plz", "stall", method="POST", seconds=60))
    started = time.monotonic()
    r = bed.cli("renew", "--force", "--timeout", "3", timeout=60)
    took = time.monotonic() - started
    no_traceback(r)
    assert r.returncode == 1, r.stderr
    assert "time limit" in r.stderr
    assert took < 30, f"took {took:.1f}s"
    assert bed.serial(name) == serial
    bed.assert_live_ok(name)


def test_run_time_limit_stops_a_stuck_run_and_releases_its_locks(
        bed: Bed, proxy: FaultProxy) -> None:
    import shlex
    import sys

    name = "run-stuck.example.test"
    bed.issue(name)
    stuck = " ".join(shlex.quote(a) for a in (
        sys.executable, "-c", "import os, time; os.close(1); os.close(2); time.sleep(40)"))
    started = time.monotonic()
    proc = bed.popen("renew", "--force", "--timeout", "2", "--pre-hook", stuck)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == 1, err
    assert "past its time limit of 2 s" in err and "locks are released" in err, err
    assert took < 25, f"took {took:.1f}s"
    logged = (bed.state / "logs" / "acmeali.log").read_text()
    assert "past its time limit of 2 s" in logged  # the run log says why it stopped
    r = bed.cli("renew", "--force")  # not "another renew is running"
    assert r.returncode == 0 and f"{name}: renewed" in r.stderr, r.stderr


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphan's zombie waits on whatever reaps for PID 1)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("deaf", [False, True], ids=["plain", "ignores-sigterm"])
def test_run_time_limit_kills_a_stuck_deploy_hook_and_what_it_started(
        bed: Bed, proxy: FaultProxy, tmp_path: Path, deaf: bool) -> None:
    import os
    import signal

    name = f"hook-stuck{int(deaf)}.example.test"
    bed.issue(name)
    pids = tmp_path / "hook.pids"
    # The shell (the hook itself) and a child of it, as a script holding port 80 would be;
    # "deaf": both ignore SIGTERM (inherited by sleep), so only SIGKILL stops them.
    hook = (("trap '' TERM; " if deaf else "")
            + f"sleep 1000 & echo $$ $! > {pids}.tmp && mv {pids}.tmp {pids}; wait")
    started = time.monotonic()
    r = bed.cli("renew", "--force", "--timeout", "6", "--deploy-hook", hook, timeout=90)
    took = time.monotonic() - started
    try:
        no_traceback(r)
        assert pids.exists(), f"the deploy hook never ran (renewal too slow?): {r.stderr}"
        shell, child = (int(p) for p in pids.read_text().split())
        assert r.returncode == 1, r.stderr
        assert "past its time limit of 6 s" in r.stderr, r.stderr
        assert took < 40, f"took {took:.1f}s"
        gone_by = time.monotonic() + 15
        while time.monotonic() < gone_by and (_alive(shell) or _alive(child)):
            time.sleep(0.05)
        assert not _alive(shell) and not _alive(child), "the hook outlived acmeali"
        assert f"killed the deploy hook for {name}" in r.stderr, r.stderr
    finally:
        if pids.exists():  # never leave an orphan behind, whatever failed above
            for pid in (int(p) for p in pids.read_text().split()):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    assert bed.assert_live_ok(name)  # renewed and live; only the hook was stopped
    r = bed.cli("renew", "--force")  # the locks went with the process
    assert r.returncode == 0 and f"{name}: renewed" in r.stderr, r.stderr


# --------------------------------------------------------------------------- item 5
def test_must_staple_dropped_by_the_ca_is_reported(bed: Bed) -> None:
    # Pebble 2.4 leaves the TLS feature extension out of what it issues (as CAs that
    # stopped supporting must-staple do): the certificate is stored, and the user told.
    name = "staple.example.test"
    r = bed.issue(name, "--must-staple", "-q")
    assert "warning: staple.example.test: the CA left out the OCSP must-staple extension" \
        in r.stderr, r.stderr
    bed.assert_live_ok(name)
    r = bed.cli("renew", "--force", "-q")
    assert r.returncode == 0 and "must-staple" in r.stderr, r.stderr


def _still_processing(doc: dict[str, Any]) -> None:
    if doc.get("status") == "invalid":
        doc["status"] = "pending"
        for ch in doc.get("challenges", []):
            if ch.get("status") == "invalid":
                ch["status"] = "processing"
                ch.pop("error", None)


# --------------------------------------------------------------------------- item 17
def _leaf_only(status: int, headers: dict[str, str], body: bytes) -> tuple[
        int, dict[str, str], bytes]:
    end = b"-----END CERTIFICATE-----\n"
    return status, headers, body[:body.index(end) + len(end)]


def test_chain_without_intermediate_is_refused_and_the_old_one_stays(
        bed: Bed, proxy: FaultProxy) -> None:
    name = "nointer.example.test"
    bed.issue(name)
    serial = bed.serial(name)
    proxy.add(Rule("^/certZ/", "rewrite", method="POST", times=None, edit=_leaf_only))
    r = bed.cli("renew", "--force")
    no_traceback(r)
    assert r.returncode == 1
    assert "without any intermediate certificate, where the previous one came with 1" \
        in r.stderr, r.stderr
    assert bed.assert_live_ok(name) == serial
    # A new lineage whose chain is only the leaf: refused too (no root signed the leaf).
    r = bed.issue("nointer2.example.test", ok=False)
    assert r.returncode == 1 and "without its issuer" in r.stderr, r.stderr
    assert not (bed.state / "live" / "nointer2.example.test").exists()


def test_chain_must_lead_to_the_cas_trusted_root(bed: Bed, proxy: FaultProxy,
                                                 pebble: Pebble, tmp_path: Path) -> None:
    # The trusted "Pebble Root CA" in the bundle is swapped for an impostor of the same
    # name: the intermediate Pebble sends is not signed by it, so nothing is stored.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    real = x509.load_pem_x509_certificate(pebble.root_pem().encode())
    key = ec.generate_private_key(ec.SECP256R1())
    fake = (x509.CertificateBuilder().subject_name(real.subject).issuer_name(real.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(real.not_valid_before_utc)
            .not_valid_after(real.not_valid_after_utc)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    bundle = Path(proxy.ca_bundle).read_bytes() + fake.public_bytes(serialization.Encoding.PEM)
    bed.ca_bundle.write_bytes(bundle)
    r = bed.issue("impostor.example.test", ok=False)
    no_traceback(r)
    assert r.returncode == 1
    assert "is not signed by the trusted root" in r.stderr, r.stderr
    assert not (bed.state / "live" / "impostor.example.test").exists()


# --------------------------------------------------------------------------- item 4
@pytest.mark.parametrize(("ptype", "expected"), [
    ("accountDoesNotExist", "signed by the certificate's own key"),
    ("unauthorized", "signed by the certificate's own key"),
    ("alreadyRevoked", "already lists this certificate as revoked"),
])
def test_cert_key_revocation_refused_hint_says_what_is_true(
        bed: Bed, proxy: FaultProxy, ptype: str, expected: str) -> None:
    name = f"revoke-{ptype.lower()}.example.test"
    bed.issue(name)
    problem = {"type": f"urn:ietf:params:acme:error:{ptype}", "detail": "refused by test CA"}
    proxy.add(Rule("^/revoke-cert", "status", method="POST", status=400,
                   body=json.dumps(problem).encode(),
                   headers={"Content-Type": "application/problem+json"}))
    r = bed.cli("revoke", "--name", name, "--use-cert-key")
    no_traceback(r)
    assert r.returncode == 1
    assert f"CA error {ptype}" in r.stderr and "refused by test CA" in r.stderr
    hint = r.stderr.split("hint:", 1)[1]
    assert expected in hint, r.stderr
    assert "register" not in hint  # never "register an account" for the certificate key
    assert bed.meta(name)["revoked"] == {}
