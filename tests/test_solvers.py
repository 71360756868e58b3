"""Solvers against real things: sockets, files, /bin/sh, pebble-challtestsrv, a real DNS server."""

from __future__ import annotations

import errno
import io
import os
import select
import socket
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from acmeali.config import CertSettings
from acmeali.errors import ChallengeError, UsageError
from acmeali.solvers import check_supported, http01, make_solver
from acmeali.solvers.base import ChallengeTask, HasReadyTimeout
from acmeali.solvers.dns01 import Dns01Solver, wait_for_txt
from acmeali.solvers.dnshook import Hook
from acmeali.solvers.http01 import StandaloneSolver, WebrootSolver, check_can_listen
from acmeali.solvers.manual import Manual
from acmeali.solvers.registry import ProviderEnv
from acmeali.ui import UI
from tests.peers.pebble import Pebble, free_port, wait_until


def task(ident: str, token: str = "tok_-123", value: str = "value-1") -> ChallengeTask:
    return ChallengeTask(identifier=ident, token=token, key_authorization=f"{token}.thumb",
                         txt_name=f"_acme-challenge.{ident}", txt_value=value)


def quiet_ui() -> tuple[UI, io.StringIO]:
    err = io.StringIO()
    return UI(out=io.StringIO(), err=err), err


def port_is_free(port: int) -> bool:
    """Can a server listen there now? (SO_REUSEADDR as any server sets: TIME_WAIT is fine.)"""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
        return True


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


# --------------------------------------------------------------------------- selection
def test_wildcard_with_http01_is_refused_up_front() -> None:
    with pytest.raises(UsageError) as info:
        check_supported(CertSettings(challenge="http-01"), ["example.com", "*.example.com"])
    assert info.value.message == "*.example.com needs dns-01; http-01 cannot validate wildcards"
    check_supported(CertSettings(challenge="dns-01", dns_hook="true"), ["*.example.com"])


def test_ip_with_dns01_and_hook_without_command_are_refused() -> None:
    with pytest.raises(UsageError, match="IP address"):
        check_supported(CertSettings(challenge="dns-01", dns_hook="true"), ["192.0.2.1"])
    with pytest.raises(UsageError, match="--dns-hook"):
        check_supported(CertSettings(challenge="dns-01", dns="hook"), ["example.com"])


def test_make_solver_picks_by_settings(tmp_path: Path) -> None:
    ui, _ = quiet_ui()
    assert isinstance(make_solver(CertSettings(), ui), StandaloneSolver)
    assert isinstance(make_solver(CertSettings(webroot=str(tmp_path)), ui), WebrootSolver)
    hook = make_solver(CertSettings(challenge="dns-01", dns_hook="true"), ui)
    assert isinstance(hook, Dns01Solver) and isinstance(hook.provider, Hook)
    assert hook.challenge_type == "dns-01"
    assert isinstance(hook, HasReadyTimeout)
    manual = make_solver(CertSettings(challenge="dns-01", dns="manual"), ui)
    assert isinstance(manual, Dns01Solver) and isinstance(manual.provider, Manual)


# --------------------------------------------------------------------------- http-01
def test_standalone_answers_only_expected_tokens_and_frees_the_port(
        capfd: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    ui, err = quiet_ui()
    solver = make_solver(CertSettings(http_address="127.0.0.1", http_port=port), ui)
    tasks = [task("a.example", token="tokA"), task("b.example", token="tokB")]
    try:
        solver.present(tasks)
        solver.wait_ready(tasks, time.monotonic() + 5)
        base = f"http://127.0.0.1:{port}/.well-known/acme-challenge/"
        assert get(base + "tokA") == (200, "text/plain", "tokA.thumb")
        assert get(base + "tokB") == (200, "text/plain", "tokB.thumb")
        assert get(base + "unknown")[0] == 404
        assert get(f"http://127.0.0.1:{port}/")[0] == 404
        assert not port_is_free(port)
    finally:
        solver.cleanup(tasks)
    assert port_is_free(port)
    captured = capfd.readouterr()
    assert captured.err == "" and err.getvalue() == ""  # no request logging without -v


def test_standalone_all_addresses_by_default() -> None:
    port = free_port()
    ui, _ = quiet_ui()
    solver = StandaloneSolver(CertSettings(http_port=port), ui)
    t = [task("a.example", token="tokC")]
    try:
        solver.present(t)
        solver.wait_ready(t, time.monotonic() + 5)
        assert get(f"http://127.0.0.1:{port}/.well-known/acme-challenge/tokC")[2] == "tokC.thumb"
    finally:
        solver.cleanup(t)
    assert port_is_free(port)


def test_standalone_solvers_in_one_process_share_the_port() -> None:
    """``renew --concurrency N`` validates lineages at once: one listener, not N binds."""
    port = free_port()
    ui, _ = quiet_ui()
    settings = CertSettings(http_address="127.0.0.1", http_port=port)
    first, second = StandaloneSolver(settings, ui), StandaloneSolver(settings, ui)
    t1, t2 = [task("a.example", token="tokS1")], [task("b.example", token="tokS2")]
    base = f"http://127.0.0.1:{port}/.well-known/acme-challenge/"
    try:
        first.present(t1)
        second.present(t2)  # would be "port already in use" with a server per solver
        assert first.bound_port == second.bound_port == port
        assert get(base + "tokS1")[2] == "tokS1.thumb"
        assert get(base + "tokS2")[2] == "tokS2.thumb"
        first.cleanup(t1)
        assert get(base + "tokS1")[0] == 404  # withdrawn with its owner
        assert get(base + "tokS2")[2] == "tokS2.thumb"  # the other lineage still validates
        assert not port_is_free(port)
    finally:
        first.close()
        second.cleanup(t2)
    assert port_is_free(port)
    third = StandaloneSolver(settings, ui)  # and a later run binds afresh
    try:
        third.present([task("c.example", token="tokS3")])
        assert get(base + "tokS3")[2] == "tokS3.thumb"
    finally:
        third.close()
    assert port_is_free(port)


def test_standalone_lineages_with_other_addresses_share_an_all_addresses_listener() -> None:
    """One lineage on all addresses, another on 127.0.0.1, same port, same ``renew``: the
    second binding 127.0.0.1 next to our own ``[::]`` socket was "already in use"."""
    port = free_port()
    ui, _ = quiet_ui()
    wide = StandaloneSolver(CertSettings(http_port=port), ui)
    narrow = StandaloneSolver(CertSettings(http_address="127.0.0.1", http_port=port), ui)
    t1, t2 = [task("a.example", token="tokW1")], [task("b.example", token="tokN2")]
    try:
        wide.present(t1)
        check_can_listen("127.0.0.1", port, ui)  # the next lineage's preflight
        narrow.present(t2)
        assert narrow.bound_port == port
        narrow.wait_ready(t2, time.monotonic() + 5)
        for host in ("127.0.0.1", "[::1]"):
            base = f"http://{host}:{port}/.well-known/acme-challenge/"
            assert get(base + "tokW1")[2] == "tokW1.thumb"
            assert get(base + "tokN2")[2] == "tokN2.thumb"
        wide.cleanup(t1)
        assert get(f"http://127.0.0.1:{port}/.well-known/acme-challenge/tokN2")[2] == "tokN2.thumb"
    finally:
        wide.close()
        narrow.cleanup(t2)
    assert port_is_free(port)


def test_standalone_all_addresses_waits_for_a_narrower_listener_of_this_process() -> None:
    """The reverse: 127.0.0.1 is held by one lineage, the next wants all addresses. It
    cannot share (the CA may come over ::1) nor bind beside it, so it waits for the port."""
    port = free_port()
    ui, _ = quiet_ui()
    narrow = StandaloneSolver(CertSettings(http_address="127.0.0.1", http_port=port), ui)
    wide = StandaloneSolver(CertSettings(http_port=port), ui)
    t1, t2 = [task("a.example", token="tokN1")], [task("b.example", token="tokW2")]
    errors: list[BaseException] = []

    def present_wide() -> None:
        try:
            wide.present(t2)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=present_wide, daemon=True)
    try:
        narrow.present(t1)
        check_can_listen("", port, ui)  # its preflight: the port is ours, not a stranger's
        thread.start()
        wait_until(lambda: http01.waiting_for(port) == 1, "the all-addresses solver waiting")
        assert get(f"http://127.0.0.1:{port}/.well-known/acme-challenge/tokN1")[2] == "tokN1.thumb"
        narrow.cleanup(t1)
        thread.join(timeout=10)
        assert not thread.is_alive() and not errors, errors
        assert wide.bound_port == port
        for host in ("127.0.0.1", "[::1]"):
            assert get(f"http://{host}:{port}/.well-known/acme-challenge/tokW2")[2] == "tokW2.thumb"
    finally:
        narrow.close()
        if thread.ident is not None:
            thread.join(timeout=10)
        wide.cleanup(t2)
    assert port_is_free(port)


def test_standalone_wait_for_our_own_narrower_listener_is_bounded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A listener held past the bound (a validation that never ends) fails the waiter in
    one line naming the fix, and leaves no waiter behind."""
    monkeypatch.setattr(http01, "_WAIT_FOR_PORT", 0.3)
    port = free_port()
    ui, _ = quiet_ui()
    narrow = StandaloneSolver(CertSettings(http_address="127.0.0.1", http_port=port), ui)
    wide = StandaloneSolver(CertSettings(http_port=port), ui)
    try:
        narrow.present([task("a.example", token="tokT1")])
        with pytest.raises(ChallengeError) as info:
            wide.present([task("b.example", token="tokT2")])
        assert f"port {port} stayed in use by this run's own challenge server" in info.value.message
        assert info.value.hint and "--http-address" in info.value.hint
        assert http01.waiting_for(port) == 0
        assert get(f"http://127.0.0.1:{port}/.well-known/acme-challenge/tokT1")[2] == "tokT1.thumb"
    finally:
        wide.close()
        narrow.close()
    assert port_is_free(port)


def test_standalone_distinct_addresses_on_one_port_listen_side_by_side() -> None:
    """A multi-homed host: lineages on two addresses of one port do not wait for each
    other, each address its own socket."""
    port = free_port()
    ui, _ = quiet_ui()
    one = StandaloneSolver(CertSettings(http_address="127.0.0.1", http_port=port), ui)
    two = StandaloneSolver(CertSettings(http_address="127.0.0.2", http_port=port), ui)
    try:
        one.present([task("a.example", token="tokD1")])
        two.present([task("b.example", token="tokD2")])  # at once, no waiting
        assert get(f"http://127.0.0.1:{port}/.well-known/acme-challenge/tokD1")[2] == "tokD1.thumb"
        assert get(f"http://127.0.0.2:{port}/.well-known/acme-challenge/tokD2")[2] == "tokD2.thumb"
        assert get(f"http://127.0.0.1:{port}/.well-known/acme-challenge/tokD2")[0] == 404
    finally:
        one.close()
        two.close()
    assert port_is_free(port)


def test_standalone_address_spellings_are_one_listener() -> None:
    """``[::1]`` and ``::1`` are one address: two spellings must not bind twice."""
    port = free_port()
    ui, _ = quiet_ui()
    a = StandaloneSolver(CertSettings(http_address="[::1]", http_port=port), ui)
    b = StandaloneSolver(CertSettings(http_address="::1", http_port=port), ui)
    try:
        a.present([task("a.example", token="tokB1")])
        b.present([task("b.example", token="tokB2")])
        assert get(f"http://[::1]:{port}/.well-known/acme-challenge/tokB2")[2] == "tokB2.thumb"
    finally:
        a.close()
        b.close()


def test_standalone_port_in_use_is_explained() -> None:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ui, _ = quiet_ui()
        solver = StandaloneSolver(CertSettings(http_address="127.0.0.1", http_port=port), ui)
        with pytest.raises(ChallengeError) as info:
            solver.present([task("a.example")])
        solver.cleanup([task("a.example")])
    assert f"port {port} is already in use" in info.value.message
    assert info.value.hint and "--webroot" in info.value.hint and "--http-port" in info.value.hint


def _port80_error() -> str:
    """What binding port 80 says without privileges: here, or as root in a forked child
    that became `nobody` (no exec: the interpreter may live where `nobody` cannot read)."""
    def attempt() -> str:
        ui, _ = quiet_ui()
        solver = StandaloneSolver(CertSettings(http_address="127.0.0.1", http_port=80), ui)
        try:
            solver.present([task("a.example")])
        except UsageError as exc:
            return exc.message
        except Exception as exc:
            return f"unexpected: {exc!r}"
        solver.close()
        return "bound port 80"

    if os.geteuid() != 0:
        return attempt()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop root (and with it every capability), report, leave
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, attempt().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 20)
        assert ready, "the unprivileged child did not answer within 20 s"
        return os.read(read_end, 4096).decode()
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)


def test_standalone_low_port_without_root_is_explained() -> None:
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        if int(f.read()) <= 80:
            pytest.skip("this kernel lets anyone bind port 80")
    message = _port80_error()
    assert "port 80" in message and "root" in message, message


def test_webroot_files_are_0644_and_removed_with_our_directories(tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    old = os.umask(0o077)  # a strict umask must not make the answer unreadable to nginx
    try:
        ui, _ = quiet_ui()
        solver = make_solver(CertSettings(webroot=str(root)), ui)
        tasks = [task("a.example", token="tokA"), task("b.example", token="tokB")]
        solver.present(tasks)
    finally:
        os.umask(old)
    cdir = root / ".well-known" / "acme-challenge"
    assert (cdir / "tokA").read_text() == "tokA.thumb"
    assert stat.S_IMODE((cdir / "tokA").stat().st_mode) == 0o644
    assert stat.S_IMODE(cdir.stat().st_mode) == 0o755
    assert stat.S_IMODE((root / ".well-known").stat().st_mode) == 0o755
    solver.wait_ready(tasks, time.monotonic() + 1)
    solver.cleanup(tasks)
    assert list(root.iterdir()) == []


def test_webroot_keeps_directories_it_did_not_create(tmp_path: Path) -> None:
    cdir = tmp_path / ".well-known" / "acme-challenge"
    cdir.mkdir(parents=True)
    (tmp_path / ".well-known" / "security.txt").write_text("contact")
    ui, _ = quiet_ui()
    solver = WebrootSolver(CertSettings(webroot=str(tmp_path)), ui)
    solver.present([task("a.example", token="tokA")])
    solver.cleanup([task("a.example", token="tokA")])
    assert cdir.is_dir() and list(cdir.iterdir()) == []
    assert (tmp_path / ".well-known" / "security.txt").exists()


def test_webroot_refuses_a_token_that_is_a_path(tmp_path: Path) -> None:
    ui, _ = quiet_ui()
    solver = WebrootSolver(CertSettings(webroot=str(tmp_path)), ui)
    with pytest.raises(ChallengeError, match="base64url"):
        solver.present([task("a.example", token="../../etc/evil")])
    solver.cleanup([task("a.example", token="../../etc/evil")])
    assert not (tmp_path.parent / "etc").exists()


# --------------------------------------------------------------------------- dns-01 hook
def test_dns_hook_gets_values_in_env_per_task(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\n"
                      f'echo "$ACMEALI_ACTION|$ACMEALI_DOMAIN|$ACMEALI_TXT_NAME|$ACMEALI_TXT_VALUE"'
                      f" >> {log}\n")
    script.chmod(0o755)
    ui, _ = quiet_ui()
    solver = make_solver(CertSettings(challenge="dns-01", dns_hook=str(script)), ui)
    tasks = [task("example.com", value="apex"), task("example.com", token="t2", value="wild")]
    solver.present(tasks)
    solver.cleanup(tasks)
    assert log.read_text().splitlines() == [
        "present|example.com|_acme-challenge.example.com|apex",
        "present|example.com|_acme-challenge.example.com|wild",
        "cleanup|example.com|_acme-challenge.example.com|apex",
        "cleanup|example.com|_acme-challenge.example.com|wild",
    ]


def test_dns_hook_present_failure_shows_the_commands_words(tmp_path: Path) -> None:
    ui, err = quiet_ui()
    solver = make_solver(CertSettings(
        challenge="dns-01",
        dns_hook='echo "API says: zone $ACMEALI_DOMAIN not found" >&2; exit 4'), ui)
    with pytest.raises(ChallengeError) as info:
        solver.present([task("example.com")])
    msg = info.value.message
    assert "_acme-challenge.example.com" in msg
    assert "exited with status 4" in msg
    assert "API says: zone example.com not found" in msg
    solver.cleanup([task("example.com")])  # cleanup fails too: only a warning
    assert "warning:" in err.getvalue() and "cleanup" in err.getvalue()


def test_a_slow_providers_own_propagation_timeout_is_used() -> None:
    """Optional capability (lego's ProviderTimeout): found at run time, never below ours."""
    class Slow(Hook):
        def propagation_timeout(self) -> float:
            return 900.0

    ui, _ = quiet_ui()
    settings = CertSettings(challenge="dns-01", dns_hook="true", dns_timeout=60)
    env = ProviderEnv(settings=settings, ui=ui)
    assert Dns01Solver(Slow({"command": "true"}, env), settings, ui).ready_timeout() == 900
    assert Dns01Solver(Hook({"command": "true"}, env), settings, ui).ready_timeout() == 60
    fast = CertSettings(challenge="dns-01", dns_hook="true", dns_timeout=1200)
    assert Dns01Solver(Slow({"command": "true"}, env), fast, ui).ready_timeout() == 1200


# --------------------------------------------------------------------------- via challtestsrv
def test_propagation_waits_until_the_record_appears(pebble: Pebble) -> None:
    cts = pebble.challtestsrv
    t = task("late.example", value="late-value")
    timer = threading.Timer(1.0, cts.set_txt, args=(t.txt_name, t.txt_value))
    ui, err = quiet_ui()
    start = time.monotonic()
    timer.start()
    try:
        wait_for_txt([t], resolvers=[cts.dns_address], timeout=20, ui=ui,
                     deadline=time.monotonic() + 30)
    finally:
        timer.cancel()
        cts.clear_txt(t.txt_name)
    assert 0.9 <= time.monotonic() - start < 15
    assert "waiting for _acme-challenge.late.example TXT on 0/1 servers" in err.getvalue()


def test_propagation_needs_every_value_of_a_shared_name(pebble: Pebble) -> None:
    cts = pebble.challtestsrv
    apex = task("both.example", value="v-apex")
    wild = task("both.example", token="t2", value="v-wild")
    cts.set_txt(apex.txt_name, apex.txt_value)
    ui, _ = quiet_ui()
    try:
        with pytest.raises(ChallengeError) as info:
            wait_for_txt([apex, wild], resolvers=[cts.dns_address], timeout=1.0, ui=ui)
        assert '"v-apex" and "v-wild"' in info.value.message
        cts.set_txt(wild.txt_name, wild.txt_value)
        wait_for_txt([apex, wild], resolvers=[cts.dns_address], timeout=5, ui=ui)
    finally:
        cts.clear_txt(apex.txt_name)


def test_propagation_timeout_says_what_was_expected_and_seen(pebble: Pebble) -> None:
    cts = pebble.challtestsrv
    t = task("never.example", value="expected-value")
    ui, _ = quiet_ui()
    start = time.monotonic()
    with pytest.raises(ChallengeError) as info:
        wait_for_txt([t], resolvers=[cts.dns_address], timeout=1.5, ui=ui)
    assert time.monotonic() - start < 6
    msg = info.value.message
    assert "_acme-challenge.never.example" in msg
    assert '"expected-value"' in msg
    assert f"{cts.dns_address}: no TXT record" in msg
    assert info.value.hint and "--dns-timeout" in info.value.hint


def test_propagation_follows_cname(pebble: Pebble) -> None:
    cts = pebble.challtestsrv
    t = task("aliased.example", value="via-cname")
    cts.set_cname(t.txt_name, "hop.validation.test")
    cts.set_cname("hop.validation.test", "final.validation.test")
    ui, _ = quiet_ui()
    try:
        cts.set_txt("final.validation.test", "something-else")
        with pytest.raises(ChallengeError) as info:
            wait_for_txt([t], resolvers=[cts.dns_address], timeout=1.0, ui=ui)
        assert "CNAME -> final.validation.test" in info.value.message
        assert '"something-else"' in info.value.message
        cts.set_txt("final.validation.test", "via-cname")
        wait_for_txt([t], resolvers=[cts.dns_address], timeout=5, ui=ui)
    finally:
        cts.clear_txt("final.validation.test")


def test_hook_solver_end_to_end_with_challtestsrv(pebble: Pebble, tmp_path: Path) -> None:
    cts = pebble.challtestsrv
    # The hook talks to challtestsrv's management API with values from the environment.
    hook = ('curl -sf -X POST -d "{\\"host\\":\\"$ACMEALI_TXT_NAME.\\",\\"value\\":'
            '\\"$ACMEALI_TXT_VALUE\\"}" ' + cts.mgmt_url + '/$( [ "$ACMEALI_ACTION" = present ]'
            ' && echo set-txt || echo clear-txt)')
    settings = CertSettings(challenge="dns-01", dns_hook=hook, dns_resolvers=(cts.dns_address,),
                            dns_timeout=10)
    ui, _ = quiet_ui()
    solver = make_solver(settings, ui)
    tasks = [task("hooked.example", value="hooked-value")]
    solver.present(tasks)
    try:
        solver.wait_ready(tasks, time.monotonic() + 10)
    finally:
        solver.cleanup(tasks)
    with pytest.raises(ChallengeError):
        wait_for_txt(tasks, resolvers=[cts.dns_address], timeout=0.5, ui=ui)


# --------------------------------------------------------------------------- authoritative path
@dataclass
class ZoneData:
    """A tiny zone: SOA + NS at the apex, A for the name servers, CNAMEs, TXT per server."""

    origin: str
    ns: dict[str, str]                                   # ns host -> IPv4
    cnames: dict[str, str] = field(default_factory=dict)


class AuthServer:
    """An authoritative-only DNS server (no recursion) built on dnspython, on UDP."""

    def __init__(self, zone: ZoneData, ip: str, port: int) -> None:
        self.zone = zone
        self.txt: dict[str, list[str]] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, port))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.queries: list[tuple[str, str, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _answer(self, wire: bytes) -> bytes:
        import dns.flags
        import dns.message
        import dns.rcode
        import dns.rdatatype
        import dns.rrset

        q = dns.message.from_wire(wire)
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        r.flags &= ~dns.flags.RA
        question = q.question[0]
        name = str(question.name).lower()
        rdtype = question.rdtype
        self.queries.append((name, dns.rdatatype.to_text(rdtype), bool(q.flags & dns.flags.RD)))
        origin = self.zone.origin
        if not (name == origin or name.endswith("." + origin)):
            r.set_rcode(dns.rcode.REFUSED)
            return r.to_wire()

        def add(rrname: str, rtype: str, *texts: str) -> None:
            r.answer.append(dns.rrset.from_text(rrname, 0, "IN", rtype, *texts))

        soa = dns.rrset.from_text(origin, 0, "IN", "SOA",
                                  f"ns1.{origin} admin.{origin} 1 60 60 60 0")
        existing = {origin, *self.zone.ns, *self.zone.cnames, *self.txt}
        if name in self.zone.cnames:
            add(name, "CNAME", self.zone.cnames[name])
        elif name == origin and rdtype == dns.rdatatype.SOA:
            r.answer.append(soa)
        elif name == origin and rdtype == dns.rdatatype.NS:
            add(name, "NS", *self.zone.ns)
        elif name in self.zone.ns and rdtype == dns.rdatatype.A:
            add(name, "A", self.zone.ns[name])
        elif name in self.txt and rdtype == dns.rdatatype.TXT:
            add(name, "TXT", *(f'"{v}"' for v in self.txt[name]))
        else:
            r.authority.append(soa)
            if not any(e == name or e.endswith("." + name) for e in existing):
                r.set_rcode(dns.rcode.NXDOMAIN)
        return r.to_wire()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.sock.sendto(self._answer(wire), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def auth_servers() -> Iterator[tuple[AuthServer, AuthServer]]:
    """Two name servers for zone.test on 127.0.0.1 and 127.0.0.2, sharing one port."""
    zone = ZoneData(origin="zone.test.", ns={"ns1.zone.test.": "127.0.0.1",
                                             "ns2.zone.test.": "127.0.0.2"})
    for _ in range(20):
        first = AuthServer(zone, "127.0.0.1", 0)
        try:
            second = AuthServer(zone, "127.0.0.2", first.port)
        except OSError as exc:
            first.close()
            if exc.errno == errno.EADDRINUSE:
                continue
            raise
        break
    else:
        pytest.fail("no UDP port free on both 127.0.0.1 and 127.0.0.2")
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def test_authoritative_check_requires_every_name_server(
        auth_servers: tuple[AuthServer, AuthServer]) -> None:
    ns1, ns2 = auth_servers
    t = task("www.zone.test", value="auth-value")
    name = t.txt_name + "."
    ns1.txt[name] = ["auth-value"]
    ui, err = quiet_ui()
    bootstrap = [f"127.0.0.1:{ns1.port}"]
    with pytest.raises(ChallengeError) as info:
        wait_for_txt([t], timeout=1.5, ui=ui, bootstrap=bootstrap, ns_port=ns1.port)
    msg = info.value.message
    assert "ns2.zone.test: no TXT record" in msg or "ns2.zone.test: NXDOMAIN" in msg
    assert "ns1.zone.test" not in msg  # that one had it
    assert "on 1/2 servers" in err.getvalue()
    # Asked directly, without recursion: the answer comes from the zone, not a cache.
    assert (name, "TXT", False) in ns2.queries

    timer = threading.Timer(0.7, ns2.txt.__setitem__, args=(name, ["auth-value"]))
    timer.start()
    try:
        wait_for_txt([t], timeout=10, ui=ui, bootstrap=bootstrap, ns_port=ns1.port)
    finally:
        timer.cancel()


def test_authoritative_check_follows_cname_within_the_zone(
        auth_servers: tuple[AuthServer, AuthServer]) -> None:
    ns1, ns2 = auth_servers
    t = task("api.zone.test", value="cname-value")
    ns1.zone.cnames[t.txt_name + "."] = "api.validations.zone.test."
    for s in auth_servers:
        s.txt["api.validations.zone.test."] = ["cname-value"]
    ui, _ = quiet_ui()
    wait_for_txt([t], timeout=5, ui=ui, bootstrap=[f"127.0.0.1:{ns1.port}"], ns_port=ns1.port)
    assert ("api.validations.zone.test.", "TXT", False) in ns2.queries


def test_authoritative_check_unreachable_servers_time_out_clearly() -> None:
    ui, _ = quiet_ui()
    port = free_port(kind=socket.SOCK_DGRAM)  # nobody listens here
    start = time.monotonic()
    with pytest.raises(ChallengeError) as info:
        wait_for_txt([task("x.zone.test")], timeout=1.0, ui=ui,
                     bootstrap=[f"127.0.0.1:{port}"], ns_port=port)
    assert time.monotonic() - start < 8
    assert "could not find its name servers" in info.value.message


# --------------------------------------------------------------------------- manual
def test_manual_refuses_without_a_terminal(tmp_path: Path) -> None:
    with open(os.devnull) as devnull:
        with pytest.raises(UsageError, match="needs a terminal"):
            check_supported(CertSettings(challenge="dns-01", dns="manual"), ["example.com"],
                            stdin=devnull)
        ui, _ = quiet_ui()
        solver = make_solver(CertSettings(challenge="dns-01", dns="manual"), ui,
                             stdin=devnull)
        with pytest.raises(UsageError, match="needs a terminal"):
            solver.present([task("example.com")])


def test_manual_prints_records_and_waits_for_enter_on_a_terminal() -> None:
    master, slave = os.openpty()
    with os.fdopen(slave, "r") as tty:
        ui, err = quiet_ui()
        settings = CertSettings(challenge="dns-01", dns="manual")
        manual = Manual({}, ProviderEnv(settings=settings, ui=ui, stdin=tty), max_wait=10)
        solver = Dns01Solver(manual, settings, ui)
        threading.Timer(0.3, os.write, args=(master, b"\n")).start()
        tasks = [task("example.com", value="v1"), task("example.com", token="t2", value="v2")]
        solver.present(tasks)
        solver.cleanup(tasks)
    os.close(master)
    text = err.getvalue()
    assert '_acme-challenge.example.com.  TXT  "v1"' in text
    assert '_acme-challenge.example.com.  TXT  "v2"' in text
    assert "delete the TXT record now: _acme-challenge.example.com \"v1\"" in text


def test_missing_webroot_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        check_supported(CertSettings(webroot=str(tmp_path / "nope")), ["example.com"])
