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

# A zone of its own: challtestsrv is session-wide (as in test_e2e_alibaba's LB test).
B = f"pb{uuid.uuid4().hex[:8]}.test"
TARGETS = [f"live:{B}", "live:auto", "vod:auto", f"ddos:www.{B}",
           "ga:ga-e2e0001:lsr-e2e0001", f"ga:ga-e2e0001:lsr-e2e0001:www.{B}"]
FOREIGN = "77777-cn-hangzhou"  # another team's certificate on the GA listener


def _seed(emu: AliyunEmulator) -> None:
    st = emu.state
    live.add_domain(st, B)  # explicit target: HTTPS switched on by request
    live.add_domain(st, f"www.{B}", https=True)
    live.add_domain(st, f".{B}", https=True)  # a wildcard domain, CDN style
    live.add_domain(st, f"plain.{B}")  # covered, but HTTP only: auto leaves it
    live.add_domain(st, f"old.{B}", https=True, status="offline")
    live.add_domain(st, "other.test", https=True)  # not covered
    vod.add_domain(st, f"v.{B}", https=True)
    vod.add_domain(st, f"cold.{B}")
    vod.add_domain(st, "elsewhere.test", https=True)
    ddos.add_rule(st, f"www.{B}")
    lsn = ga.add_listener(st, "ga-e2e0001", "lsr-e2e0001")
    lsn["Additional"]["shop.other.test"] = FOREIGN


def _live(emu: AliyunEmulator) -> dict[str, dict[str, Any]]:
    return live.domains(emu.state)


def _untouched(emu: AliyunEmulator) -> dict[str, Any]:
    """Everything acmeali must not change: other settings, domains it may not bind."""
    lv, vd = _live(emu), vod.domains(emu.state)
    rule = {k: v for k, v in ddos.rules(emu.state)[f"www.{B}"].items()
            if k not in ("CertName", "UserCertName", "CertRegion", "CasId")}
    lsn = ga.listeners(emu.state)["lsr-e2e0001"]
    return copy.deepcopy({
        "live-settings": {n: d["Settings"] for n, d in lv.items()},
        "live-others": {n: lv[n] for n in (f"plain.{B}", f"old.{B}",
                                           "other.test")},
        "vod-settings": {n: d["Settings"] for n, d in vd.items()},
        "vod-others": {n: vd[n] for n in (f"cold.{B}", "elsewhere.test")},
        "ddos-rule": rule,
        "ga-settings": lsn["Settings"],
        "ga-foreign": lsn["Additional"]["shop.other.test"],
    })


def _bound(emu: AliyunEmulator) -> dict[str, Any]:
    lv, vd = _live(emu), vod.domains(emu.state)
    lsn = ga.listeners(emu.state)["lsr-e2e0001"]
    return {
        "live": {n: lv[n]["CasId"] for n in (B, f"www.{B}",
                                             f".{B}")},
        "vod": vd[f"v.{B}"]["CertId"],
        "ddos": ddos.rules(emu.state)[f"www.{B}"]["CasId"],
        "ga": lsn["Default"], "ga-extra": lsn["Additional"][f"www.{B}"],
    }


def _expected(cert_id: int) -> dict[str, Any]:
    ident = f"{cert_id}-cn-hangzhou"
    return {"live": dict.fromkeys((B, f"www.{B}", f".{B}"),
                                  cert_id),
            "vod": cert_id, "ddos": cert_id, "ga": ident, "ga-extra": ident}


def test_video_ddos_ga_issue_deploy_renew(tmp_path: Path, pebble: Pebble,
                                          aliyun: AliyunEmulator) -> None:
    env = _setup(tmp_path, pebble, aliyun)
    _seed(aliyun)
    before = _untouched(aliyun)
    args = [a for t in TARGETS for a in ("--deploy", t)]
    aliyun.add_dns_zone(B)
    proc = run_acmeali("issue", "-d", B, "-d", f"*.{B}", "--dns", "alidns", *args, env=env)
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
        ["shop.other.test", f"www.{B}"]
    assert aliyun.calls_of("DissociateAdditionalCertificatesFromListener") == []
    assert [c["CertId"] for c in aliyun.calls_of("DeleteUserCertificate")] == [str(first_id)]
    check = run_acmeali("certs", "check", "--json", env=env)
    assert json.loads(check.stdout)["ok"] is True, check.stdout

    # Nothing left to do: a routine renew writes nothing.
    calls = len(aliyun.calls)
    proc = run_acmeali("renew", env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(aliyun.calls) == calls
