"""Every registered deploy target through the same cases, against the emulator.

A case per registered kind says how to prepare the emulated account and which spec to
deploy; the contract is the same for all: the first deploy succeeds and is confirmed by
reading back (``Target.check``), a redeploy changes nothing (no write call reaches the
account), a failure is recorded (with a hint naming the missing RAM action for cloud
targets) and retried by the next run, ``--dry-run`` changes nothing, and every API action
the target called is among the RAM actions it declares (``Target.ram_policy``, mapped the
way the hints map them). A target registered without a case here fails
``test_every_target_has_a_contract_case``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from acmeali.deployers import deploy
from acmeali.deployers.base import READ_PREFIXES, DeployContext, Target
from acmeali.deployers.cas import CAS
from acmeali.deployers.registry import TARGETS, parse_target, target_class
from tests.emulator import AliyunEmulator, apig, ddos, esa, fc, ga, live, oss, vod, waf
from tests.test_deploy_helpers import (
    Lineage,
    TinyCA,
    live_paths,
    make_lineage,
    make_ui,
    settings_for,
)


@dataclass(frozen=True)
class Case:
    spec: str
    prepare: Callable[[AliyunEmulator, Path], None]
    deny: str | None  # a write action to refuse for the failure case (None: cannot)
    names: tuple[str, ...] = ("example.test", "*.example.test")


def _nothing(emu: AliyunEmulator, tmp: Path) -> None:
    return None


def _cas_deploy(emu: AliyunEmulator, tmp: Path) -> None:
    emu.add_alb_listener("lsn-contract-job")
    emu.add_cas_contact()


def _resource_id(emu: AliyunEmulator) -> int:
    return next(int(r["Id"]) for r in emu.cloud_resources()
                if r["ListenerId"] == "lsn-contract-job")


CASES: dict[str, Case] = {
    "cas": Case("cas", _nothing, "UploadUserCertificate"),
    "cdn": Case("cdn:www.example.test", lambda e, t: e.add_cdn_domain("www.example.test"),
                "SetCdnDomainSSLCertificate"),
    "dcdn": Case("dcdn:www.example.test", lambda e, t: e.add_dcdn_domain("www.example.test"),
                 "SetDcdnDomainSSLCertificate"),
    "apigateway": Case("apigateway:grp1:api.example.test",
                       lambda e, t: e.add_apigateway_domain("grp1", "api.example.test"),
                       "SetDomainCertificate"),
    "mqtt-server": Case("mqtt-server:mqtt-cn-contract", _nothing, "UploadUserCertificate"),
    "hook": Case("hook:" + sys.executable + " -c \"import os,sys; "
                 "sys.exit(1 if os.path.exists('FAIL') else 0)\"", _nothing, None),
    "clb": Case("clb:lb-contract1:443", lambda e, t: e.add_clb_listener("lb-contract1", 443),
                "SetLoadBalancerHTTPSListenerAttribute"),
    "slb": Case("slb:cn-hangzhou:lb-contract2:443:www.example.test",
                lambda e, t: e.add_clb_listener("lb-contract2", 443,
                                                domains=("www.example.test",)),
                "SetDomainExtensionAttribute"),
    "alb": Case("alb:lsn-contract-alb", lambda e, t: e.add_alb_listener("lsn-contract-alb"),
                "UpdateListenerAttribute"),
    "nlb": Case("nlb:lsn-contract-nlb:extra",
                lambda e, t: e.add_nlb_listener("lsn-contract-nlb"),
                "AssociateAdditionalCertificatesWithListener"),
    "cas-deploy": Case("cas-deploy:{rid}", _cas_deploy, "CreateDeploymentJob"),
    "waf": Case("waf:www.example.test", lambda e, t: waf.add_domain(e, "www.example.test"),
                "ModifyDomain"),
    "esa": Case("esa:example.test", lambda e, t: esa.add_site(e, "example.test"),
                "SetCertificate"),
    "fc": Case("fc:fn.example.test", lambda e, t: fc.add_domain(e, "fn.example.test"),
               "UpdateCustomDomain"),
    "apig": Case("apig:auto", lambda e, t: apig.add_domain(e, "gw.example.test"),
                 "UpdateDomain"),
    "oss": Case("oss:bucket-contract:img.example.test",
                lambda e, t: oss.add_cname(e, "bucket-contract", "img.example.test"),
                "PutCname"),
    "live": Case("live:www.example.test", lambda e, t: live.add_domain(e.state, "www.example.test"), "SetLiveDomainCertificate"),  # noqa: E501
    "vod": Case("vod:auto", lambda e, t: vod.add_domain(e.state, "v.example.test", https=True), "SetVodDomainSSLCertificate"),  # noqa: E501
    "ddos": Case("ddos:www.example.test", lambda e, t: ddos.add_rule(e.state, "www.example.test"), "AssociateWebCert"),  # noqa: E501
    "ga": Case("ga:ga-contract:lsr-contract:www.example.test", lambda e, t: ga.add_listener(e.state, "ga-contract", "lsr-contract"), "AssociateAdditionalCertificatesWithListener"),  # noqa: E501
}


def test_every_target_has_a_contract_case() -> None:
    assert set(CASES) == set(TARGETS)


def _writes(emu: AliyunEmulator) -> list[str]:
    return [a for a, _ in emu.calls if not a.startswith(READ_PREFIXES)]


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_target_contract(kind: str, emu: AliyunEmulator, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[kind]
    first_call = len(emu.calls)  # the emulator lives for the session
    monkeypatch.chdir(tmp_path)
    case.prepare(emu, tmp_path)
    spec = case.spec.format(rid=_resource_id(emu) if kind == "cas-deploy" else "")
    target = parse_target(spec)
    assert type(target) is target_class(kind) and target.spec == spec
    ca = TinyCA()
    lin: Lineage = make_lineage(ca, list(case.names))
    settings = settings_for(emu)
    paths = live_paths(tmp_path / "live", lin)

    def run(dry_run: bool = False) -> tuple[bool, str]:
        ui = make_ui()
        out = deploy(lin.meta, lin.bundle, [spec], settings=settings, ui=ui,
                     live_paths=paths, dry_run=dry_run)
        return out[0].ok, out[0].message

    # --dry-run: a plan, and nothing changes anywhere.
    ok, msg = run(dry_run=True)
    assert ok, msg
    assert _writes(emu) == [] and lin.meta.deployments == {}

    # Failure recorded (and a hint naming the RAM action), then retried.
    if case.deny is not None:
        emu.faults.deny(case.deny)
    else:
        (tmp_path / "FAIL").write_text("")
    ok, msg = run()
    assert not ok
    dep = lin.meta.deployments[spec]
    assert not dep.ok and dep.error and spec in lin.meta.deploy_pending([spec])
    if case.deny is not None:  # the hint names the RAM action: "<ram code>:<Action>"
        assert any(svc.ram_action(case.deny) in dep.error for svc in target.services), dep.error
    emu.faults.reset()
    (tmp_path / "FAIL").unlink(missing_ok=True)

    ok, msg = run()
    assert ok, msg
    dep = lin.meta.deployments[spec]
    assert dep.ok and dep.fingerprint == lin.fingerprint and not lin.meta.deploy_pending([spec])

    # Read back.
    ctx = DeployContext(lin.meta, lin.bundle, settings=settings, ui=make_ui(), live_paths=paths)
    assert target.check(ctx) in ((None,) if kind == "hook" else (True,))

    # Idempotent: a redeploy of the same certificate writes nothing (the hook reruns).
    before = len(_writes(emu))
    ok, msg = run()
    assert ok, msg
    assert _writes(emu)[before:] == [], msg
    if CAS in target.services:  # what CAS clean-up keeps for this target
        cas_ids = lin.meta.deployments[spec].cas_ids
        assert cas_ids and set(cas_ids) <= set(emu.state.cas_certs)

    # Every call it made is declared: the docs' RAM column and policies are not a guess.
    assert_calls_declared(target, [a for a, _ in emu.calls[first_call:]])


def assert_calls_declared(target: Target, called: list[str]) -> None:
    """Each API action maps (``Service.ram_action``, as the hints do) to a RAM action the
    target declares, through one of its services."""
    declared = set(type(target).ram_policy())
    undeclared = sorted({a for a in called
                         if not any(svc.ram_action(a) in declared for svc in target.services)})
    assert not undeclared, (f"{target.kind} called {undeclared}, which its ram_actions (or "
                            "the CAS copy's) do not declare")


def _ga_forms(emu: AliyunEmulator) -> str:
    ga.add_listener(emu.state, "ga-forms", "lsr-forms")
    return "ga:ga-forms:lsr-forms"


# More grammar forms than the contract cases, each deployed then renewed twice (so CAS
# clean-up asks ListCertificates and deletes with keep_previous = 0): every call declared.
FORMS: dict[str, Callable[[AliyunEmulator], str]] = {
    "cdn:auto": lambda e: (e.add_cdn_domain("f1.example.test", https=True), "cdn:auto")[1],
    "alb:extra": lambda e: (e.add_alb_listener("lsn-forms-alb"), "alb:lsn-forms-alb:extra")[1],
    "nlb": lambda e: (e.add_nlb_listener("lsn-forms-nlb"), "nlb:lsn-forms-nlb")[1],
    "waf:auto": lambda e: (waf.add_domain(e, "f2.example.test"), "waf:auto")[1],
    "waf:cloud:extra": lambda e: (waf.add_cloud_port(e, "alb-forms", 443),
                                  "waf:cloud:alb-forms:443:extra")[1],
    "waf:cloud": lambda e: (waf.add_cloud_port(e, "alb-forms2", 443),
                            "waf:cloud:alb-forms2:443")[1],
    "esa:hostnames": lambda e: (esa.add_hostname(e, "forms.test", "f3.example.test"),
                                "esa:hostnames:forms.test")[1],
    "fc:auto": lambda e: (fc.add_domain(e, "f4.example.test"), "fc:auto")[1],
    "apig:id": lambda e: "apig:" + apig.add_domain(e, "f5.example.test"),
    "oss:auto": lambda e: (oss.add_cname(e, "bucket-forms", "f6.example.test",
                                         certificate="1-cn-hangzhou"),
                           "oss:bucket-forms:auto")[1],
    "live:auto": lambda e: (live.add_domain(e.state, "f7.example.test", https=True),
                            "live:auto")[1],
    "vod:domain": lambda e: (vod.add_domain(e.state, "f8.example.test"),
                             "vod:f8.example.test")[1],
    "ddos:auto": lambda e: (ddos.add_rule(e.state, "f9.example.test"), "ddos:auto")[1],
    "ga:default": _ga_forms,
    "clb:default": lambda e: (e.add_clb_listener("lb-forms", 443), "clb:lb-forms:443")[1],
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_other_forms_and_renewals_call_only_declared_actions(
        form: str, emu: AliyunEmulator, tmp_path: Path) -> None:
    first_call = len(emu.calls)
    spec = FORMS[form](emu)
    target = parse_target(spec)
    ca = TinyCA()
    lin: Lineage = make_lineage(ca, ["example.test", "*.example.test"])
    settings = settings_for(emu, cas_keep_previous=0)
    for version in (1, 2, 3):
        if version > 1:
            lin = make_lineage(ca, ["example.test", "*.example.test"], meta=lin.meta,
                               version=version)
        out = deploy(lin.meta, lin.bundle, [spec], settings=settings, ui=make_ui(),
                     live_paths=live_paths(tmp_path / f"v{version}", lin))
        assert out[0].ok, out[0].message
    called = [a for a, _ in emu.calls[first_call:]]
    if CAS in target.services:  # the CAS copy's whole life: upload, reuse, clean-up
        assert {"UploadUserCertificate", "ListCertificates", "DeleteUserCertificate"} <= set(
            called), called
    assert_calls_declared(target, called)
