"""Issue 15, second half, end to end: one certificate issued by Pebble (DNS-01 through the
emulated Alidns) deployed to ApsaraVideo Live and VOD (explicit and ``auto``), an
Anti-DDoS website and a Global Accelerator listener (default and per-domain additional
certificate) in one run; a forced renewal moves all of them, changes no setting acmeali
does not own and leaves no orphaned CAS or product-side certificate."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import run_acmeali
from tests.emulator import AliyunEmulator, ddos, ga, live, vod
from tests.peers.pebble import Pebble
from tests.test_e2e_alibaba import _setup

FOREIGN = "77777-cn-hangzhou"  # another team's certificate on the GA listener


def targets(zone: str) -> list[str]:
    """The live:/vod:/ddos:/ga: deploy targets for certificates of ``zone`` and ``*.zone``."""
    return [f"live:{zone}", "live:auto", "vod:auto", f"ddos:www.{zone}",
            "ga:ga-e2e0001:lsr-e2e0001", f"ga:ga-e2e0001:lsr-e2e0001:www.{zone}"]


def seed(emu: AliyunEmulator, zone: str) -> None:
    """Live, VOD, Anti-DDoS and GA resources under ``zone`` (plus some not covered)."""
    st = emu.state
    live.add_domain(st, zone)  # explicit target: HTTPS switched on by request
    live.add_domain(st, f"www.{zone}", https=True)
    live.add_domain(st, f".{zone}", https=True)  # a wildcard domain, CDN style
    live.add_domain(st, f"plain.{zone}")  # covered, but HTTP only: auto leaves it
    live.add_domain(st, f"old.{zone}", https=True, status="offline")
    live.add_domain(st, "other.test", https=True)  # not covered
    vod.add_domain(st, f"v.{zone}", https=True)
    vod.add_domain(st, f"cold.{zone}")
    vod.add_domain(st, "elsewhere.test", https=True)
    ddos.add_rule(st, f"www.{zone}")
    lsn = ga.add_listener(st, "ga-e2e0001", "lsr-e2e0001")
    lsn["Additional"]["shop.other.test"] = FOREIGN


def _live(emu: AliyunEmulator) -> dict[str, dict[str, Any]]:
    return live.domains(emu.state)


def untouched(emu: AliyunEmulator, zone: str) -> dict[str, Any]:
    """Everything acmeali must not change: other settings, domains it may not bind."""
    lv, vd = _live(emu), vod.domains(emu.state)
    rule = {k: v for k, v in ddos.rules(emu.state)[f"www.{zone}"].items()
            if k not in ("CertName", "UserCertName", "CertRegion", "CasId")}
    lsn = ga.listeners(emu.state)["lsr-e2e0001"]
    return copy.deepcopy({
        "live-settings": {n: d["Settings"] for n, d in lv.items()},
        "live-others": {n: lv[n] for n in (f"plain.{zone}", f"old.{zone}",
                                           "other.test")},
        "vod-settings": {n: d["Settings"] for n, d in vd.items()},
        "vod-others": {n: vd[n] for n in (f"cold.{zone}", "elsewhere.test")},
        "ddos-rule": rule,
        "ga-settings": lsn["Settings"],
        "ga-foreign": lsn["Additional"]["shop.other.test"],
    })


def bound(emu: AliyunEmulator, zone: str) -> dict[str, Any]:
    """What each live:/vod:/ddos:/ga: target is bound to now."""
    lv, vd = _live(emu), vod.domains(emu.state)
    lsn = ga.listeners(emu.state)["lsr-e2e0001"]
    return {
        "live": {n: lv[n]["CasId"] for n in (zone, f"www.{zone}", f".{zone}")},
        "vod": vd[f"v.{zone}"]["CertId"],
        "ddos": ddos.rules(emu.state)[f"www.{zone}"]["CasId"],
        "ga": lsn["Default"], "ga-extra": lsn["Additional"][f"www.{zone}"],
    }


def expected(zone: str, cert_id: int) -> dict[str, Any]:
    """What :func:`bound` must return once CAS certificate ``cert_id`` is deployed."""
    ident = f"{cert_id}-cn-hangzhou"
    return {"live": dict.fromkeys((zone, f"www.{zone}", f".{zone}"), cert_id),
            "vod": cert_id, "ddos": cert_id, "ga": ident, "ga-extra": ident}


def assert_no_orphans(emu: AliyunEmulator, zone: str, first_id: int) -> None:
    """After a forced renewal: product-side names match CAS, GA dissociated nothing and
    only the previous CAS upload was deleted."""
    (_, cas), = emu.state.cas_certs.items()
    names = {d["CertName"] for d in _live(emu).values() if d["CasId"]}
    assert names == {cas["Name"]}
    assert sorted(ga.listeners(emu.state)["lsr-e2e0001"]["Additional"]) == \
        ["shop.other.test", f"www.{zone}"]
    assert emu.calls_of("DissociateAdditionalCertificatesFromListener") == []
    assert [c["CertId"] for c in emu.calls_of("DeleteUserCertificate")] == [str(first_id)]


def test_video_ddos_ga_issue_deploy_renew(tmp_path: Path, pebble: Pebble,
                                          aliyun: AliyunEmulator) -> None:
    env = _setup(tmp_path, pebble, aliyun)
    zone = f"pb{uuid.uuid4().hex[:8]}.test"  # unique: challtestsrv is session-wide
    seed(aliyun, zone)
    before = untouched(aliyun, zone)
    args = [a for t in targets(zone) for a in ("--deploy", t)]
    aliyun.add_dns_zone(zone)
    proc = run_acmeali("issue", "-d", zone, "-d", f"*.{zone}", "--dns", "alidns", *args,
                       env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (first_id, _), = aliyun.state.cas_certs.items()
    assert bound(aliyun, zone) == expected(zone, first_id)
    assert untouched(aliyun, zone) == before

    proc = run_acmeali("renew", "--force", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (new_id, _), = aliyun.state.cas_certs.items()  # the old upload is gone
    assert new_id != first_id
    assert bound(aliyun, zone) == expected(zone, new_id)
    assert untouched(aliyun, zone) == before
    # No orphans: nothing product-side names a certificate CAS no longer holds.
    assert_no_orphans(aliyun, zone, first_id)
    check = run_acmeali("certs", "check", "--json", env=env)
    assert json.loads(check.stdout)["ok"] is True, check.stdout

    # Nothing left to do: a routine renew writes nothing.
    calls = len(aliyun.calls)
    proc = run_acmeali("renew", env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(aliyun.calls) == calls
