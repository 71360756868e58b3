"""The DNS provider contract, run against every registered provider through real peers.

Each provider gets a "bed": the provider built from settings as issuance builds it, a
view of the zone it writes to (the Alibaba emulator's Alidns for ``alidns``, a real BIND
for ``rfc2136``, a hook's own zone file for ``hook``, a simulated person at a terminal for
``manual``) and a way to put a record there by other means. A provider added to
``registry.PROVIDERS`` without a bed here fails ``test_every_provider_has_a_bed``.

Cases: add and remove are idempotent; of two values sharing a name (apex + wildcard)
plus a record someone else keeps there, only ours go; a present that failed halfway is
still cleaned up, including the record whose add never reported back; the records of a
run that died are removed from the ledger by the next run.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from acmeali.config import AliyunSettings, CertSettings
from acmeali.errors import ChallengeError
from acmeali.solvers import make_solver, registry
from acmeali.solvers.base import ChallengeTask
from acmeali.solvers.dns01 import Dns01Solver, build_provider, clean_leftovers
from acmeali.solvers.ledger import RecordLedger
from acmeali.solvers.registry import ProviderEnv, TxtRecord
from acmeali.store.files import FileStore
from acmeali.ui import UI
from tests.conftest import REPO
from tests.peers.bind import Bind
from tests.peers.pebble import Pebble

BIND_ZONE = "contract.test"

# A hook with a zone file (name -> values) of its own: present adds the value once,
# cleanup removes exactly that value.
SET_HOOK = r'''
import json, os, sys
path = sys.argv[1]
name, value = os.environ["ACMEALI_TXT_NAME"], os.environ["ACMEALI_TXT_VALUE"]
zone = json.load(open(path)) if os.path.exists(path) else {}
values = zone.setdefault(name, [])
if os.environ["ACMEALI_ACTION"] == "present":
    if value not in values:
        values.append(value)
elif value in values:
    values.remove(value)
json.dump(zone, open(path, "w"))
'''


@dataclass
class ZoneBed:
    """One provider, wired to a real zone."""

    settings: CertSettings
    values: Callable[[str], list[str]]          # the TXT values at a name, duplicates kept
    add_foreign: Callable[[str, str], None]     # someone else's record
    domain: str                                 # a name inside the zone, unique per test
    aliyun: AliyunSettings | None = None
    stdin: Any = None
    ui: UI = field(default_factory=lambda: UI(out=io.StringIO(), err=io.StringIO()))

    def env(self) -> ProviderEnv:
        return ProviderEnv(settings=self.settings, ui=self.ui, aliyun=self.aliyun,
                           stdin=self.stdin)

    def provider(self) -> registry.DnsProvider:
        return build_provider(self.settings.dns, self.env())

    def solver(self, ledger: RecordLedger | None = None) -> Dns01Solver:
        solver = make_solver(self.settings, self.ui, self.aliyun, ledger=ledger,
                             stdin=self.stdin)
        assert isinstance(solver, Dns01Solver)
        return solver


class Person(io.StringIO):
    """Stands at the terminal for ``--dns manual``: creates the records it is shown in its
    zone, presses Enter, and deletes what it is told it can delete."""

    SHOWN = re.compile(r'^\s+(\S+)\.\s+TXT\s+"([^"]*)"', re.M)
    DELETE = re.compile(r'delete the TXT record now: (\S+) "([^"]*)"')

    def __init__(self, master: int) -> None:
        super().__init__()
        self.master = master
        self.zone: dict[str, list[str]] = {}

    def write(self, text: str) -> int:
        for name, value in self.SHOWN.findall(text):
            values = self.zone.setdefault(name, [])
            if value not in values:
                values.append(value)
        for name, value in self.DELETE.findall(text):
            if value in self.zone.get(name, []):
                self.zone[name].remove(value)
        if "press Enter" in text:
            os.write(self.master, b"\n")
        return super().write(text)


# --------------------------------------------------------------------------- beds
def _hook_bed(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ZoneBed]:
    zone_file = tmp_path / "hook-zone.json"
    script = tmp_path / "set_hook.py"
    script.write_text(SET_HOOK)

    def load() -> dict[str, list[str]]:
        return json.loads(zone_file.read_text()) if zone_file.exists() else {}

    def add_foreign(name: str, value: str) -> None:
        zone = load()
        zone.setdefault(name, []).append(value)
        zone_file.write_text(json.dumps(zone))

    command = f"{sys.executable} {script} {zone_file}"
    yield ZoneBed(CertSettings(challenge="dns-01", dns="hook",
                               dns_options={"hook": {"command": command}}),
                  values=lambda n: list(load().get(n, [])), add_foreign=add_foreign,
                  domain="hook.example.test")


def _manual_bed(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ZoneBed]:
    master, slave = os.openpty()
    tty = os.fdopen(slave, "r")
    person = Person(master)
    try:
        yield ZoneBed(CertSettings(challenge="dns-01", dns="manual"),
                      values=lambda n: list(person.zone.get(n, [])),
                      add_foreign=lambda n, v: person.zone.setdefault(n, []).append(v),
                      domain="manual.example.test", stdin=tty,
                      ui=UI(out=io.StringIO(), err=person))
    finally:
        tty.close()
        os.close(master)


def _alidns_bed(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ZoneBed]:
    emu = request.getfixturevalue("emu")
    pebble: Pebble = request.getfixturevalue("pebble")
    from acmeali.aliyun import call, make_client
    from tests.test_deploy_helpers import settings_for

    zone = f"z{uuid.uuid4().hex[:10]}.test"
    emu.add_dns_zone(zone)
    aliyun = settings_for(emu)

    def values(name: str) -> list[str]:
        return [r["Value"] for r in emu.state.dns_zones[zone].values()
                if r["Type"] == "TXT" and f"{r['RR']}.{zone}" == name]

    def add_foreign(name: str, value: str) -> None:
        call(make_client("alidns", aliyun), "AddDomainRecord",
             {"DomainName": zone, "RR": name[: -len(zone) - 1], "Type": "TXT", "Value": value})

    yield ZoneBed(CertSettings(challenge="dns-01", dns="alidns",
                               dns_resolvers=(pebble.challtestsrv.dns_address,)),
                  values=values, add_foreign=add_foreign, domain=zone, aliyun=aliyun)


@pytest.fixture(scope="module")
def contract_bind() -> Iterator[Bind]:
    with Bind(zones=(BIND_ZONE,)) as b:
        yield b


def _rfc2136_bed(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ZoneBed]:
    bind: Bind = request.getfixturevalue("contract_bind")
    secret = tmp_path / "tsig.secret"
    secret.write_text(bind.secret)

    def values(name: str) -> list[str]:
        return sorted(bind.txt(name))

    options = {"server": bind.address, "tsig_key_name": bind.key_name,
               "tsig_secret_file": str(secret)}
    yield ZoneBed(CertSettings(challenge="dns-01", dns="rfc2136",
                               dns_resolvers=(bind.address,),
                               dns_options={"rfc2136": options}),
                  values=values, add_foreign=bind.add_txt,
                  domain=f"h{uuid.uuid4().hex[:8]}.{BIND_ZONE}")


BEDS: Mapping[str, Callable[[Path, pytest.FixtureRequest], Iterator[ZoneBed]]] = {
    "hook": _hook_bed, "manual": _manual_bed, "alidns": _alidns_bed, "rfc2136": _rfc2136_bed,
}


@pytest.fixture(params=sorted(registry.PROVIDERS))
def bed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ZoneBed]:
    make = BEDS.get(request.param)
    if make is None:
        pytest.fail(f"DNS provider {request.param!r} has no contract bed in this file")
    yield from make(tmp_path, request)


def _task(domain: str) -> ChallengeTask:
    return ChallengeTask(identifier=domain, token=secrets.token_urlsafe(16),
                         key_authorization="x", txt_name=f"_acme-challenge.{domain}",
                         txt_value=secrets.token_urlsafe(32))


def _record(task: ChallengeTask) -> TxtRecord:
    return TxtRecord(identifier=task.identifier, name=task.txt_name, fqdn=task.txt_name,
                     value=task.txt_value, ttl=600)


# --------------------------------------------------------------------------- the contract
def test_every_provider_has_a_bed() -> None:
    assert set(BEDS) == set(registry.PROVIDERS)


def test_provider_modules_import_nothing_heavy() -> None:
    """--help and config validation import every provider module: no dnspython, no SDK."""
    mods = ", ".join(e.target.partition(":")[0] for e in registry.PROVIDERS.values())
    code = (f"import sys, importlib; [importlib.import_module(m) for m in '{mods}'.split(', ')];"
            " import acmeali.config; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('dns', 'alibabacloud', "
            "'Tea', 'darabonba', 'requests')]; print(bad); sys.exit(1 if bad else 0)")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_add_and_remove_are_idempotent(bed: ZoneBed) -> None:
    provider = bed.provider()
    rec = _record(_task(bed.domain))
    data = provider.add_txt(rec)
    assert data is not None
    assert bed.values(rec.fqdn) == [rec.value]
    again = provider.add_txt(rec)  # a retry after a lost answer: still one record
    assert bed.values(rec.fqdn) == [rec.value]
    provider.remove_txt(rec, data)
    assert bed.values(rec.fqdn) == []
    provider.remove_txt(rec, data)  # already gone: not an error
    provider.remove_txt(rec, again or {})
    assert bed.values(rec.fqdn) == []


def test_only_our_values_go_from_a_shared_name(bed: ZoneBed) -> None:
    apex, wild = _task(bed.domain), _task(bed.domain)  # example.com + *.example.com
    bed.add_foreign(apex.txt_name, "someone-elses-value")
    solver = bed.solver()
    solver.present([apex, wild, apex])  # a task listed twice is published once
    assert sorted(bed.values(apex.txt_name)) == sorted(
        [apex.txt_value, wild.txt_value, "someone-elses-value"])
    solver.cleanup([apex])
    assert sorted(bed.values(apex.txt_name)) == sorted([wild.txt_value, "someone-elses-value"])
    solver.cleanup([wild, apex])
    assert bed.values(apex.txt_name) == ["someone-elses-value"]


class _DiesAfterAdding:
    """The provider, except that its second add really happens and then fails to report
    back (a timeout after the server applied it): the solver has no data for it."""

    def __init__(self, inner: registry.DnsProvider) -> None:
        self.inner = inner
        self.name = inner.name
        self.options = inner.options
        self.follows_cname = getattr(inner, "follows_cname", True)
        self.calls = 0

    def add_txt(self, record: TxtRecord) -> dict[str, str] | None:
        self.calls += 1
        data = self.inner.add_txt(record)
        if self.calls == 2:
            raise ChallengeError("the answer was lost")
        return data

    def remove_txt(self, record: TxtRecord, data: Mapping[str, str]) -> None:
        self.inner.remove_txt(record, data)


def test_cleanup_after_a_failed_present_removes_everything(bed: ZoneBed) -> None:
    tasks = [_task(bed.domain), _task(f"www.{bed.domain}"), _task(f"api.{bed.domain}")]
    solver = Dns01Solver(_DiesAfterAdding(bed.provider()), bed.settings, bed.ui)  # type: ignore[arg-type]
    with pytest.raises(ChallengeError):
        solver.present(tasks)
    assert bed.values(tasks[1].txt_name) == [tasks[1].txt_value]  # added, though it "failed"
    assert [e.record.value for e in solver._entries] == [t.txt_value for t in tasks[:2]]
    solver.cleanup(tasks)
    assert all(bed.values(t.txt_name) == [] for t in tasks)


def test_records_of_a_dead_run_are_removed_by_the_next(bed: ZoneBed, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    tasks = [_task(bed.domain), _task(bed.domain)]
    bed.solver(ledger=RecordLedger(store, "lineage")).present(tasks)
    # ... and the process dies here. The next run, with a fresh provider, reads the ledger:
    ledger = RecordLedger(store, "lineage")
    assert len(ledger.load()) == 2 and ledger.path.stat().st_mode & 0o777 == 0o600
    assert sorted(bed.values(tasks[0].txt_name)) == sorted(t.txt_value for t in tasks)
    clean_leftovers(ledger, bed.settings, bed.ui, bed.aliyun)
    assert bed.values(tasks[0].txt_name) == []
    assert not ledger.path.exists()


def test_unconfirmed_ledger_entry_is_removed_by_value(bed: ZoneBed, tmp_path: Path) -> None:
    """Killed between the add and the ledger update: the entry has no provider data."""
    store = FileStore(tmp_path / "state")
    task = _task(bed.domain)
    bed.provider().add_txt(_record(task))
    from acmeali.solvers.ledger import LedgerEntry

    ledger = RecordLedger(store, "lineage")
    ledger.save([LedgerEntry(bed.settings.dns, _record(task), None)])
    clean_leftovers(ledger, bed.settings, bed.ui, bed.aliyun)
    assert bed.values(task.txt_name) == []
    assert not ledger.path.exists()


# --------------------------------------------------------------------------- from the registry
def test_dns_choices_and_help_come_from_the_registry() -> None:
    from tests.conftest import run_acmeali

    r = run_acmeali("issue", "--help")
    assert r.returncode == 0, r.stderr
    text = " ".join(r.stdout.split())
    for name, entry in registry.PROVIDERS.items():
        assert f"{name}: {entry.summary}" in text
    r = run_acmeali("issue", "-d", "a.example", "--dns", "nosuch")
    assert r.returncode == 2 and "invalid choice: 'nosuch'" in r.stderr
    assert all(name in r.stderr for name in registry.PROVIDERS)


def test_provider_tables_replace_the_flat_keys() -> None:
    """[dns.hook] command and [dns.alidns] zone do what dns_hook and dns_zone do; the flat
    keys (and their flags) still work and win."""
    from tests.test_config import load

    c = load('[defaults]\nchallenge = "dns-01"\n[dns.hook]\ncommand = "/bin/dns-txt"\n'
             '[dns.alidns]\nzone = "Example.COM."\n'
             '[[certificates]]\ndomains = ["a.example.com"]\n'
             '[[certificates]]\ndomains = ["b.example.com"]\ndns_hook = "/bin/other"\n')
    first, second = (cert.settings for cert in c.certificates)
    assert registry.provider_options("hook", first) == {"command": "/bin/dns-txt"}
    assert registry.provider_options("hook", second) == {"command": "/bin/other"}
    assert registry.provider_options("alidns", first) == {"zone": "example.com"}
    hook = build_provider("hook", ProviderEnv(settings=second, ui=UI()))
    assert hook.command == "/bin/other"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- optional capabilities
# A DNS service that holds ONE TXT value per name (a new value replaces the old), mirrored
# into challtestsrv; every call is logged as "<action> <value>".
ONE_VALUE_HOOK = r'''
import json, os, sys, urllib.request
log, mgmt = sys.argv[1], sys.argv[2]
action, name = os.environ["ACMEALI_ACTION"], os.environ["ACMEALI_TXT_NAME"] + "."
value = os.environ["ACMEALI_TXT_VALUE"]
with open(log, "a") as f:
    f.write(f"{action} {value}\n")
def post(path, body):
    req = urllib.request.Request(f"{mgmt}/{path}", data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(req, timeout=5).read()
post("clear-txt", {"host": name})
if action == "present":
    post("set-txt", {"host": name, "value": value})
'''


@pytest.mark.parametrize("sequential", [False, True])
def test_sequential_provider_gets_one_authorization_at_a_time(
        tmp_path: Path, pebble: Pebble, sequential: bool) -> None:
    """Apex + wildcard need two values on one name; a zone holding one cannot serve both at
    once. With ``sequential = true`` each is presented, validated and removed in turn."""
    from tests.conftest import run_acmeali

    domain = f"seq{int(sequential)}-{uuid.uuid4().hex[:6]}.example.test"
    log = tmp_path / "calls.log"
    script = tmp_path / "one_value.py"
    script.write_text(ONE_VALUE_HOOK)
    command = f"{sys.executable} {script} {log} {pebble.challtestsrv.mgmt_url}"
    config = tmp_path / "acmeali.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[acme]\nserver = "{pebble.directory_url}"\n'
        f'ca_bundle = "{pebble.ca_bundle}"\nagree_tos = true\n'
        f'[defaults]\ndns_resolvers = ["{pebble.challtestsrv.dns_address}"]\n'
        f'dns_timeout = 3\n[dns.hook]\ncommand = "{command}"\n'
        f"sequential = {'true' if sequential else 'false'}\n")
    r = run_acmeali("issue", "-d", domain, "-d", f"*.{domain}", "--dns", "hook",
                    env={"ACMEALI_CONFIG": str(config)})
    calls = [line.split()[0] for line in log.read_text().splitlines()]
    if not sequential:
        assert r.returncode != 0 and "not visible" in r.stderr  # the second value won
        assert calls == ["present", "present", "cleanup", "cleanup"]
        return
    assert r.returncode == 0, r.stderr
    assert calls == ["present", "cleanup", "present", "cleanup"]


def test_leftovers_that_could_not_be_removed_stay_in_the_ledger(tmp_path: Path) -> None:
    """A leftover whose removal failed (its provider is unreachable today) is still listed
    after this run's own records come and go, so a later run retries it."""
    from acmeali.solvers.ledger import LedgerEntry

    store = FileStore(tmp_path / "state")
    ledger = RecordLedger(store, "lineage")
    stuck = LedgerEntry("alidns", _record(_task("old.example.test")), {"record_id": "42"})
    ledger.save([stuck])
    settings = CertSettings(challenge="dns-01", dns="hook", dns_hook="true")
    solver = make_solver(settings, UI(out=io.StringIO(), err=io.StringIO()), ledger=ledger)
    task = _task("new.example.test")
    solver.present([task])
    assert {e.record.value for e in ledger.load()} == {stuck.record.value, task.txt_value}
    solver.cleanup([task])
    assert [e.record.value for e in ledger.load()] == [stuck.record.value]
