"""Issue 15, second half, end to end: one certificate issued by Pebble (DNS-01 through the
emulated Alidns) deployed to ApsaraVideo Live and VOD (explicit and ``auto``), an
Anti-DDoS website and a Global Accelerator listener (default and per-domain additional
certificate) in one run; a forced renewal moves all of them, changes no setting acmeali
does not own and leaves no orphaned CAS or product-side certificate."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.conftest import run_acmeali
from tests.emulator import AliyunEmulator, ddos, ga, live, vod
from tests.peers.pebble import Pebble
from tests.test_e2e_alibaba import _setup

TARGETS = ["live:example.test", "live:auto", "vod:auto", "ddos:www.example.test",
           "ga:ga-e2e0001:lsr-e2e0001", "ga:ga-e2e0001:lsr-e2e0001:www.example.test"]
FOREIGN = "77777-cn-hangzhou"  # another team's certificate on the GA listener


def _seed(emu: AliyunEmulator) -> None:
    st = emu.state
    live.add_domain(st, "example.test")  # explicit target: HTTPS switched on by request
    live.add_domain(st, "www.example.test", https=True)
    live.add_domain(st, ".example.test", https=True)  # a wildcard domain, CDN style
    live.add_domain(st, "plain.example.test")  # covered, but HTTP only: auto leaves it
    live.add_domain(st, "old.example.test", https=True, status="offline")
    live.add_domain(st, "other.test", https=True)  # not covered
    vod.add_domain(st, "v.example.test", https=True)
    vod.add_domain(st, "cold.example.test")
    vod.add_domain(st, "elsewhere.test", https=True)
    ddos.add_rule(st, "www.example.test")
    lsn = ga.add_listener(st, "ga-e2e0001", "lsr-e2e0001")
    lsn["Additional"]["shop.other.test"] = FOREIGN


def _live(emu: AliyunEmulator) -> dict[str, dict[str, Any]]:
    return live.domains(emu.state)


def _untouched(emu: AliyunEmulator) -> dict[str, Any]:
    """Everything acmeali must not change: other settings, domains it may not bind."""
    lv, vd = _live(emu), vod.domains(emu.state)
    rule = {k: v for k, v in ddos.rules(emu.state)["www.example.test"].items()
            if k not in ("CertName", "UserCertName", "CertRegion", "CasId")}
    lsn = ga.listeners(emu.state)["lsr-e2e0001"]
    return copy.deepcopy({
        "live-settings": {n: d["Settings"] for n, d in lv.items()},
        "live-others": {n: lv[n] for n in ("plain.example.test", "old.example.test",
                                           "other.test")},
        "vod-settings": {n: d["Settings"] for n, d in vd.items()},
        "vod-others": {n: vd[n] for n in ("cold.example.test", "elsewhere.test")},
        "ddos-rule": rule,
        "ga-settings": lsn["Settings"],
        "ga-foreign": lsn["Additional"]["shop.other.test"],
    })


def _bound(emu: AliyunEmulator) -> dict[str, Any]:
    lv, vd = _live(emu), vod.domains(emu.state)
    lsn = ga.listeners(emu.state)["lsr-e2e0001"]
    return {
        "live": {n: lv[n]["CasId"] for n in ("example.test", "www.example.test",
                                             ".example.test")},
        "vod": vd["v.example.test"]["CertId"],
        "ddos": ddos.rules(emu.state)["www.example.test"]["CasId"],
        "ga": lsn["Default"], "ga-extra": lsn["Additional"]["www.example.test"],
    }


def _expected(cert_id: int) -> dict[str, Any]:
    ident = f"{cert_id}-cn-hangzhou"
    return {"live": dict.fromkeys(("example.test", "www.example.test", ".example.test"),
                                  cert_id),
            "vod": cert_id, "ddos": cert_id, "ga": ident, "ga-extra": ident}


def test_video_ddos_ga_issue_deploy_renew(tmp_path: Path, pebble: Pebble,
                                          aliyun: AliyunEmulator) -> None:
    env = _setup(tmp_path, pebble, aliyun)
    _seed(aliyun)
    before = _untouched(aliyun)
    args = [a for t in TARGETS for a in ("--deploy", t)]
    proc = run_acmeali("issue", "-d", "example.test", "-d", "*.example.test",
                       "--dns", "alidns", *args, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (first_id, _), = aliyun.state.cas_certs.items()
    assert _bound(aliyun) == _expected(first_id)
    assert _untouched(aliyun) == before

    proc = run_acmeali("renew", "--force", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (new_id, cas), = aliyun.state.cas_certs.items()  # the old upload is gone
    assert new_id != first_id
    assert _bound(aliyun) == _expected(new_id)
    assert _untouched(aliyun) == before
    # No orphans: nothing product-side names a certificate CAS no longer holds.
    names = {d["CertName"] for d in _live(aliyun).values() if d["CasId"]}
    assert names == {cas["Name"]}
    assert sorted(ga.listeners(aliyun.state)["lsr-e2e0001"]["Additional"]) == \
        ["shop.other.test", "www.example.test"]
    assert aliyun.calls_of("DissociateAdditionalCertificatesFromListener") == []
    assert [c["CertId"] for c in aliyun.calls_of("DeleteUserCertificate")] == [str(first_id)]
    check = run_acmeali("certs", "check", "--json", env=env)
    assert json.loads(check.stdout)["ok"] is True, check.stdout

    # Nothing left to do: a routine renew writes nothing.
    calls = len(aliyun.calls)
    proc = run_acmeali("renew", env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(aliyun.calls) == calls
