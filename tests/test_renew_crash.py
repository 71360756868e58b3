"""Crash safety of ``acmeali renew``, tested with real ``kill -9``.

At each point a renewal can die (waiting for validation, after the download before
anything is stored, in the middle of the live switch, right after the order was created)
the process is SIGKILLed for real. Afterwards ``live/`` must still hold a complete,
matching bundle that verifies to Pebble's root, and the next ``renew`` must finish the
job, resuming the interrupted order by its stored URL rather than ordering again.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.peers.pebble import Pebble
from tests.test_renew import Bed, kill_group, wait_file

# Pebble's default lifetime is 5 years: "--days 100000" makes every lineage due without
# --force, so the second run decides on its own that the job is not finished.
DUE = ("--days", "100000")


@pytest.fixture
def bed(tmp_path: Path, pebble: Pebble) -> Bed:
    return Bed(tmp_path, pebble)


def _posts(pebble: Pebble, prefix: str) -> int:
    """POSTs Pebble logged to one endpoint (it logs the handler path, without ids)."""
    return sum(1 for method, path in pebble.requests_seen()
               if method == "POST" and path.startswith(prefix))


def _new_orders(pebble: Pebble) -> int:
    return _posts(pebble, "/order-plz")


def _finish_and_check_resumed(bed: Bed, name: str, old_serial: str, orders_before: int,
                              *, finalized: bool = False) -> str:
    """The killed run left old live files and a stored order; the next run completes it."""
    assert bed.assert_live_ok(name) == old_serial
    assert bed.live_version(name) == 1
    pending = bed.meta(name)["pending_order"]
    assert pending and pending["url"], "the order URL was not stored before the crash"
    assert _new_orders(bed.pebble) == orders_before + 1
    finalizes = _posts(bed.pebble, "/finalize-order")

    r = bed.cli("renew", *DUE)
    assert r.returncode == 0, r.stderr
    assert f"{name}: renewed" in r.stderr
    new_serial = bed.assert_live_ok(name)
    assert new_serial != old_serial
    assert bed.meta(name)["pending_order"] is None
    # Resumed by its stored URL: no second newOrder; an order the CA had already issued
    # is downloaded again, not finalized again.
    assert _new_orders(bed.pebble) == orders_before + 1
    assert _posts(bed.pebble, "/finalize-order") == finalizes + (0 if finalized else 1)
    return new_serial


def test_killed_while_waiting_for_validation(bed: Bed) -> None:
    name = "wait.example.test"
    bed.issue(name)
    old = bed.serial(name)
    orders = _new_orders(bed.pebble)
    block = bed.ctl / f"block-{name}"
    block.touch()
    bed.fresh_account()
    proc = bed.popen("renew", *DUE)
    try:
        wait_file(bed.ctl / f"blocked-{name}")  # the DNS hook is running: mid-validation
        kill_group(proc)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            kill_group(proc)
        block.unlink()  # the orphaned hook (own session) finishes and exits
    _finish_and_check_resumed(bed, name, old, orders)


@pytest.mark.parametrize("point", ["after-order", "after-download"])
def test_killed_before_anything_is_stored(bed: Bed, point: str) -> None:
    name = f"{point}.example.test"
    bed.issue(name)
    old = bed.serial(name)
    old_files = bed.live_bytes(name)
    orders = _new_orders(bed.pebble)
    r = bed.cli("renew", *DUE, env={"ACMEALI_CRASH_AT": point})
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert bed.live_bytes(name) == old_files
    assert bed.archive_versions(name) == [1]
    _finish_and_check_resumed(bed, name, old, orders, finalized=point == "after-download")
    assert bed.live_version(name) == 2


def test_killed_during_the_live_switch(bed: Bed) -> None:
    name = "switch.example.test"
    bed.issue(name)
    old = bed.serial(name)
    old_files = bed.live_bytes(name)
    orders = _new_orders(bed.pebble)
    r = bed.cli("renew", *DUE, env={"ACMEALI_CRASH_AT": "switch"})
    assert r.returncode == -signal.SIGKILL, r.stderr
    # Version 2 is fully written in the archive, but live still points at version 1.
    assert bed.archive_versions(name) == [1, 2]
    assert bed.live_bytes(name) == old_files
    live = bed.state / "live" / name
    assert any(p.endswith(".tmp") for p in os.listdir(live))  # the killed run's leftover
    new = _finish_and_check_resumed(bed, name, old, orders, finalized=True)
    assert bed.live_version(name) == 3
    assert sorted(os.listdir(live)) == ["cert.pem", "chain.pem", "current", "fullchain.pem",
                                        "privkey.pem"]  # the next switch tidied up
    # The resumed order delivered the very certificate the killed run had downloaded.
    v2 = bed.state / "archive" / name / "v2" / "cert.pem"
    assert v2.read_bytes() == bed.live_bytes(name)["cert"]
    assert new != old


# --------------------------------------------------------------------------- the last window
# Between the live switch and the record's save: the rename of `current` is done (inside
# activate, before its directory fsync: "switched"; back in the issuance: "after-switch"),
# the metadata still describes the old certificate. Killed there, or with the disk full
# from there on, the next runs must roll the record forward to the verified live version:
# `certs check` and `renew` then agree on it, and the lineage renews again normally.

def _check(bed: Bed) -> dict:  # type: ignore[type-arg]
    import json

    r = bed.cli("certs", "check", "--json")
    assert "Traceback" not in r.stderr
    return {"rc": r.returncode, **json.loads(r.stdout)}


def _agree_and_renew(bed: Bed, name: str, old: str) -> None:
    live_serial = bed.live_serial(name)
    assert live_serial != old  # the new certificate went live before the cut
    assert bed.live_version(name) == 2
    assert bed.meta(name)["current"]["serial"] == old  # ...and the record was not saved
    check = _check(bed)
    assert check["rc"] == 0 and check["ok"], check
    # A run with nothing due records what is live (no network, no new order).
    orders = _new_orders(bed.pebble)
    r = bed.cli("renew")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    meta = bed.meta(name)
    assert meta["current"]["serial"] == live_serial
    assert meta["current"]["version"] == 2
    assert meta["pending_order"] is None
    assert _new_orders(bed.pebble) == orders
    assert not (bed.state / "archive" / name / "pending-privkey.pem").exists()
    # And the lineage is not "hand-edited": a due renewal goes through.
    r = bed.cli("renew", *DUE)
    assert r.returncode == 0, r.stderr
    assert f"{name}: renewed" in r.stderr
    assert "hand-edited" not in r.stderr
    assert bed.assert_live_ok(name) not in (old, live_serial)
    assert bed.meta(name)["current"]["serial"] == bed.live_serial(name)
    check = _check(bed)
    assert check["rc"] == 0 and check["ok"], check


@pytest.mark.parametrize("point", ["switched", "after-switch"])
def test_killed_between_switch_and_record(bed: Bed, point: str) -> None:
    name = f"{point}.window.example.test"
    bed.issue(name)
    old = bed.serial(name)
    r = bed.cli("renew", *DUE, env={"ACMEALI_CRASH_AT": point})
    assert r.returncode == -signal.SIGKILL, r.stderr
    record = bed.state / "renewal" / f"{name}.json"
    before = record.read_bytes()
    r = bed.cli("renew", "--dry-run")  # judges the live version, but writes nothing
    assert r.returncode == 0, r.stderr
    assert record.read_bytes() == before
    _agree_and_renew(bed, name, old)


def test_disk_full_between_switch_and_record(bed: Bed) -> None:
    name = "full.window.example.test"
    bed.issue(name)
    old = bed.serial(name)
    r = bed.cli("renew", *DUE, env={"ACMEALI_DISK_FULL_AT": "after-switch"})
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "No space left on device" in r.stderr
    _agree_and_renew(bed, name, old)


def test_first_issue_killed_after_switch_is_recorded(bed: Bed) -> None:
    name = "first.window.example.test"
    r = bed.cli(*bed.issue_args(name), env={"ACMEALI_CRASH_AT": "after-switch"})
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert bed.meta(name)["current"] is None
    serial = bed.live_serial(name)
    check = _check(bed)
    assert check["rc"] == 0 and check["ok"], check  # not "no certificate was ever issued"
    orders = _new_orders(bed.pebble)
    r = bed.cli("renew")
    assert r.returncode == 0, r.stderr
    assert bed.meta(name)["current"]["serial"] == serial
    assert _new_orders(bed.pebble) == orders  # recorded, not issued a second time


def test_live_version_that_does_not_verify_is_reported_by_both(bed: Bed) -> None:
    """Roll-forward only to a version acmeali can vouch for: a bad one is named by both."""
    name = "bad.window.example.test"
    bed.issue(name)
    r = bed.cli("renew", *DUE, env={"ACMEALI_CRASH_AT": "after-switch"})
    assert r.returncode == -signal.SIGKILL, r.stderr
    v2 = bed.state / "archive" / name / "v2"
    (v2 / "privkey.pem").chmod(0o600)
    v1_key = (bed.state / "archive" / name / "v1" / "privkey.pem").read_bytes()
    (v2 / "privkey.pem").write_bytes(v1_key)  # a key that does not match the v2 cert
    check = _check(bed)
    assert check["rc"] == 1 and any(p["name"] == name and p["problem"] == "broken"
                                    for p in check["problems"]), check
    r = bed.cli("renew", *DUE)
    assert r.returncode == 1
    assert f"{name}:" in r.stderr and "does not verify" in r.stderr
    assert "Traceback" not in r.stderr
    # What the hint says to do works: an explicit `issue` replaces the damaged version.
    r = bed.cli(*bed.issue_args(name), "--force")
    assert r.returncode == 0, r.stderr
    serial = bed.assert_live_ok(name)
    assert bed.meta(name)["current"]["serial"] == serial
    check = _check(bed)
    assert check["rc"] == 0 and check["ok"], check


def test_deploy_after_a_cut_off_switch_records_the_live_certificate(bed: Bed) -> None:
    name = "deploy.window.example.test"
    bed.issue(name)
    r = bed.cli("renew", *DUE, env={"ACMEALI_CRASH_AT": "after-switch"})
    assert r.returncode == -signal.SIGKILL, r.stderr
    live = bed.live_serial(name)
    target = f"hook:{bed.record_hook('deploy')}"
    r = bed.cli("deploy", "--name", name, "--target", target)
    assert r.returncode == 0, r.stderr
    meta = bed.meta(name)
    assert meta["current"]["serial"] == live
    assert meta["deployments"][target]["fingerprint"] == meta["current"]["fingerprint"]
    assert meta["deployments"][target]["ok"] is True


def test_check_and_renew_agree_on_missing_live_files(bed: Bed) -> None:
    name = "missing.window.example.test"
    bed.issue(name)
    (bed.state / "live" / name / "fullchain.pem").unlink()
    check = _check(bed)
    assert check["rc"] == 1 and any(p["name"] == name and "fullchain.pem" in p["detail"]
                                    for p in check["problems"]), check
    r = bed.cli("renew", *DUE)
    assert r.returncode == 1 and f"{name}:" in r.stderr and "fullchain.pem" in r.stderr
