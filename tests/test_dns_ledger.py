"""DNS records of a killed run are removed by the next run (issue 12 item 10).

A run is SIGKILLed for real while it waits for DNS propagation: its TXT records are in
the zone, nothing of it runs any more. The next run of the lineage must remove them, for
Alidns (records with ids, in the emulator) and for the hook provider (a hook that, like a
record-per-call DNS API, adds one record per ``present`` and removes one per ``cleanup``).
The killed run is held in the propagation wait by pointing ``--dns-resolver`` at a second
challtestsrv that never has the record; the next run checks propagation where Pebble
validates and finishes (for Alidns with a new order: re-presenting the same values would
meet the old records by chance, and adopt them).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, run_acmeali
from tests.emulator import AliyunEmulator
from tests.peers.pebble import ChallTestSrv, Pebble, wait_until

# A hook keeping its "zone" in a JSON list of [name, value] records: present appends one
# record per call, cleanup removes one record with that value; the zone is mirrored into
# challtestsrv so that Pebble sees it.
ZONE_HOOK = r'''
import json, os, sys, urllib.request
zone_file, mgmt = sys.argv[1], sys.argv[2]
action, name = os.environ["ACMEALI_ACTION"], os.environ["ACMEALI_TXT_NAME"]
value = os.environ["ACMEALI_TXT_VALUE"]
records = json.load(open(zone_file)) if os.path.exists(zone_file) else []
if action == "present":
    records.append([name, value])
elif [name, value] in records:
    records.remove([name, value])
tmp = zone_file + ".tmp"
json.dump(records, open(tmp, "w"))
os.replace(tmp, zone_file)
def post(path, body):
    req = urllib.request.Request(f"{mgmt}/{path}", data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(req, timeout=5).read()
post("clear-txt", {"host": name + "."})
for n, v in records:
    if n == name:
        post("set-txt", {"host": name + ".", "value": v})
'''


@pytest.fixture
def silent_dns(tmp_path: Path) -> Iterator[ChallTestSrv]:
    """A DNS server that answers, but never has the TXT record: the propagation wait lasts."""
    srv = ChallTestSrv(tmp_path).start()
    try:
        yield srv
    finally:
        srv.stop()


def _config(tmp_path: Path, pebble: Pebble, extra: str = "") -> Path:
    config = tmp_path / "acmeali.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[acme]\nserver = "{pebble.directory_url}"\nca_bundle = "{pebble.ca_bundle}"\n'
        'email = ["ops@example.test"]\nagree_tos = true\n'
        '[defaults]\ndns_timeout = 60\n' + extra)
    return config


def _start_killable(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    full = dict(os.environ)
    full.update(env)
    full["PYTHONPATH"] = str(REPO) + os.pathsep + full.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-m", "acmeali", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full, cwd=REPO,
                            start_new_session=True)


def _kill(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def test_alidns_records_of_a_killed_run_are_removed_next_run(
        tmp_path: Path, pebble: Pebble, aliyun: AliyunEmulator, silent_dns: ChallTestSrv) -> None:
    zone = "ledger-alidns.example.test"
    aliyun.add_dns_zone(zone)
    config = _config(tmp_path, pebble, aliyun.config_toml())
    env = {**aliyun.env(), "ACMEALI_CONFIG": str(config)}

    def txt() -> dict[str, str]:
        return {rid: r["Value"] for rid, r in aliyun.state.dns_zones[zone].items()
                if r["Type"] == "TXT"}

    proc = _start_killable(["issue", "-d", zone, "-d", f"*.{zone}", "--dns", "alidns",
                            "--dns-resolver", silent_dns.dns_address], env)
    try:
        wait_until(lambda: len(txt()) == 2, "both TXT records in Alidns", timeout=60)
    finally:
        _kill(proc)
    leftovers = txt()
    assert len(leftovers) == 2  # the killed run could not clean up
    # The next run cannot resume that order (here: another account; in life: the order
    # expired), so it publishes other values and never meets the old records by chance.
    (tmp_path / "state" / "accounts").rename(tmp_path / "old-accounts")
    adds_before = len(aliyun.calls_of("AddDomainRecord"))

    r = run_acmeali("issue", "-d", zone, "-d", f"*.{zone}", "--dns", "alidns", "--dns-resolver",
                    pebble.challtestsrv.dns_address, env=env)
    new_values = {c["Value"] for c in aliyun.calls_of("AddDomainRecord")[adds_before:]}
    assert new_values and not new_values & set(leftovers.values())
    assert txt() == {}, "records of the killed run are still in the zone"
    # (Left there, they also break validation: four values on the name are more than
    # Pebble's resolver takes, "dns: overflowing header size".)
    assert r.returncode == 0, r.stderr
    deleted = {c["RecordId"] for c in aliyun.calls_of("DeleteDomainRecord")}
    assert set(leftovers) <= deleted
    ledger = tmp_path / "state" / "archive" / zone / "dns-records.json"
    assert not ledger.exists()


def test_hook_records_of_a_killed_run_are_removed_next_run(
        tmp_path: Path, pebble: Pebble, silent_dns: ChallTestSrv) -> None:
    domain = "ledger-hook.example.test"
    zone_file = tmp_path / "zone.json"
    script = tmp_path / "zonehook.py"
    script.write_text(ZONE_HOOK)
    hook = " ".join(shlex.quote(a) for a in (sys.executable, str(script), str(zone_file),
                                             pebble.challtestsrv.mgmt_url))
    env = {"ACMEALI_CONFIG": str(_config(tmp_path, pebble))}

    def records() -> list[list[str]]:
        return json.loads(zone_file.read_text()) if zone_file.exists() else []

    proc = _start_killable(["issue", "-d", domain, "--dns-hook", hook,
                            "--dns-resolver", silent_dns.dns_address], env)
    try:
        wait_until(lambda: len(records()) == 1, "the hook's TXT record", timeout=60)
    finally:
        _kill(proc)
    assert len(records()) == 1

    r = run_acmeali("issue", "-d", domain, "--dns-hook", hook, "--dns-resolver",
                    pebble.challtestsrv.dns_address, env=env)
    assert r.returncode == 0, r.stderr
    assert records() == [], "the record of the killed run is still in the zone"


def test_renew_killed_at_the_propagation_wait_leaves_a_ledger_the_next_renew_uses(
        tmp_path: Path, pebble: Pebble, aliyun: AliyunEmulator) -> None:
    """The exact instant (``ACMEALI_CRASH_AT=dns-propagation``): records added, ledger on
    disk with their ids, nothing waited for yet. ``renew`` picks the leftovers up too."""
    zone = "ledger-renew.example.test"
    aliyun.add_dns_zone(zone)
    config = _config(tmp_path, pebble, f'dns_resolvers = ["{pebble.challtestsrv.dns_address}"]\n'
                     + aliyun.config_toml())
    env = {**aliyun.env(), "ACMEALI_CONFIG": str(config)}
    r = run_acmeali("issue", "-d", zone, "-d", f"*.{zone}", "--dns", "alidns", env=env)
    assert r.returncode == 0, r.stderr
    state = tmp_path / "state"
    (state / "accounts").rename(tmp_path / "old-accounts")  # no authorization to reuse

    r = run_acmeali("renew", "--force", env={**env, "ACMEALI_CRASH_AT": "dns-propagation"})
    assert r.returncode == -signal.SIGKILL, r.stderr
    in_zone = {rid: rec["Value"] for rid, rec in aliyun.state.dns_zones[zone].items()
               if rec["Type"] == "TXT"}
    assert len(in_zone) == 2
    ledger = state / "archive" / zone / "dns-records.json"
    assert ledger.stat().st_mode & 0o777 == 0o600
    entries = json.loads(ledger.read_text())["records"]
    assert {e["data"]["record_id"]: e["record"]["value"] for e in entries} == in_zone
    assert {e["provider"] for e in entries} == {"alidns"}

    r = run_acmeali("renew", "--force", env=env)
    assert r.returncode == 0, r.stderr
    assert not any(rec["Type"] == "TXT" for rec in aliyun.state.dns_zones[zone].values())
    assert set(in_zone) <= {c["RecordId"] for c in aliyun.calls_of("DeleteDomainRecord")}
    assert not ledger.exists()
