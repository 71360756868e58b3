"""``acmeali certs check``: the alarm a monitoring system polls (Let's Encrypt no longer
e-mails about expiry). Exit 0 when all is well; exit 1 and one line per problem otherwise.
Real certificates from Pebble put each lineage in the state being checked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from acmeali.lineage import from_iso
from tests.peers.pebble import Pebble
from tests.test_renew import Bed, pebble_like


@pytest.fixture(scope="module")
def tiny_pebble(pebble: Pebble, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """Pebble issuing 10-second certificates: long enough to be stored whole on a loaded
    machine (acmeali refuses to store an already expired certificate), short enough to
    expire before the check runs."""
    yield from pebble_like(pebble, tmp_path_factory, 10)


def test_healthy_lineages_exit_0(tmp_path: Path, pebble: Pebble) -> None:
    bed = Bed(tmp_path, pebble)
    bed.issue_many(["ok1.example.test", "ok2.example.test"])
    r = bed.cli("certs", "check")
    assert (r.returncode, r.stdout) == (0, ""), r.stderr
    assert "all 2 lineages healthy" in r.stderr
    r = bed.cli("certs", "check", "-q")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = bed.cli("certs", "check", "--json")
    assert r.returncode == 0
    assert json.loads(r.stdout) == {"ok": True, "checked": 2, "problems": []}
    # --warn-days: a 5-year certificate is "expiring" within 10 years, not within 30 days.
    assert bed.cli("certs", "check", "--warn-days", "30").returncode == 0
    r = bed.cli("certs", "check", "--warn-days", "3650")
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert sorted(line.split(":")[0] for line in lines) == ["ok1.example.test",
                                                            "ok2.example.test"]
    assert all(": expiring: expires " in line for line in lines), lines


def test_one_line_per_problem(tmp_path: Path, pebble: Pebble, tiny_pebble: Pebble) -> None:
    bed = Bed(tmp_path, pebble, extra_pebbles=[tiny_pebble])
    bed.issue("expired.example.test", pebble=tiny_pebble)
    bed.issue_many(["healthy.example.test", "revoked.example.test", "renewfail.example.test"])
    r = bed.issue("deployfail.example.test", "--deploy", "hook:echo cannot reload >&2; exit 3",
                  ok=False)
    assert r.returncode == 1

    r = bed.cli("revoke", "--name", "revoked.example.test", "--reason", "superseded",
                "--no-delete")
    assert r.returncode == 0, r.stderr
    assert pebble.cert_status(bed.serial("revoked.example.test"))["Status"] == "Revoked"
    (bed.ctl / "fail-renewfail.example.test").touch()
    bed.fresh_account()
    r = bed.cli("renew", "--force", "--name", "renewfail.example.test")
    assert r.returncode == 1
    na = from_iso(bed.meta("expired.example.test")["current"]["not_after"])
    assert na is not None
    time.sleep(max(0.0, min(15.0, (na - datetime.now(timezone.utc)).total_seconds() + 1)))
    assert na <= datetime.now(timezone.utc)

    r = bed.cli("certs", "check")
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    got = sorted((line.split(": ")[0], line.split(": ")[1]) for line in lines)
    assert got == [("deployfail.example.test", "deploy-failed"),
                   ("expired.example.test", "expired"),
                   ("renewfail.example.test", "renewal-failed"),
                   ("revoked.example.test", "revoked")], lines
    by_name = {line.split(": ")[0]: line for line in lines}
    assert "hook:echo cannot reload" in by_name["deployfail.example.test"]
    assert "test hook refuses to publish" in by_name["renewfail.example.test"]
    assert "expired " in by_name["expired.example.test"]
    assert "(superseded)" in by_name["revoked.example.test"]

    r = bed.cli("certs", "check", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["checked"] == 5
    assert all(set(p) == {"name", "problem", "detail"} for p in doc["problems"])
    assert sorted((p["name"], p["problem"]) for p in doc["problems"]) == got

    # `renew` fixes what it can: the failed renewal and the expired certificate.
    (bed.ctl / "fail-renewfail.example.test").unlink()
    r = bed.cli("renew", "--name", "renewfail.example.test", "--force")
    assert r.returncode == 0, r.stderr
    r = bed.cli("certs", "check")
    assert "renewfail.example.test" not in r.stdout
