"""live:, vod:, ddos:, ga: — what the contract suite and the end-to-end test do not cover:
grammar, auto's choice of domains, partial failures, idempotence by fingerprint,
refusals that change nothing, in-place replacement on GA."""

from __future__ import annotations

import pytest

from acmeali.deployers import deploy
from acmeali.deployers.base import READ_PREFIXES
from acmeali.deployers.registry import parse_target
from tests.emulator import AliyunEmulator, ddos, ga, live, vod
from tests.test_deploy_helpers import Lineage, TinyCA, captured, make_lineage, make_ui, settings_for

NAMES = ["example.test", "*.example.test"]


def _run(emu: AliyunEmulator, lin: Lineage, targets: list[str], *, dry_run: bool = False
         ) -> dict[str, tuple[bool, str]]:
    ui = make_ui()
    out = deploy(lin.meta, lin.bundle, targets, settings=settings_for(emu, cas_keep_previous=0),
                 ui=ui, dry_run=dry_run)
    return {o.target: (o.ok, o.message + " | " + "".join(captured(ui))) for o in out}


def _renew(ca: TinyCA, lin: Lineage) -> Lineage:
    assert lin.meta.current is not None
    return make_lineage(ca, lin.meta.domains, meta=lin.meta,
                        version=lin.meta.current.version + 1)


def _writes(emu: AliyunEmulator) -> list[str]:
    return [a for a, _ in emu.calls if not a.startswith(READ_PREFIXES)]


@pytest.mark.parametrize(("spec", "fields"), [
    ("live:WWW.Example.com.", {"domain": "www.example.com"}),
    ("live:*.example.com", {"domain": ".example.com"}),  # the CDN family's wildcard form
    ("vod:.example.com", {"domain": ".example.com"}),
    ("vod:auto", {"domain": "auto"}),
    ("ddos:www.example.com", {"domain": "www.example.com", "region": None}),
    ("ddos:ap-southeast-1:www.example.com", {"region": "ap-southeast-1"}),
    ("ddos:ap-southeast-1:auto", {"region": "ap-southeast-1", "domain": "auto"}),
    ("ga:ga-bp1x:lsr-bp1y", {"accelerator_id": "ga-bp1x", "listener_id": "lsr-bp1y",
                             "domain": None}),
    ("ga:ga-bp1x:lsr-bp1y:WWW.example.com", {"domain": "www.example.com"}),
    ("ga:ga-bp1x:lsr-bp1y:auto", {"domain": "auto"}),
])
def test_grammar(spec: str, fields: dict[str, object]) -> None:
    target = parse_target(spec)
    assert target.spec == spec
    for name, value in fields.items():
        assert getattr(target, name) == value, name


@pytest.mark.parametrize(("spec", "why"), [
    ("live:", "live:<domain> or live:auto"),
    ("vod:a:b", "vod:<domain>"),
    ("ddos:", "ddos:[<region>:]<domain>"),
    ("ddos:cn-hangzhou:a:b", "malformed"),
    ("ga:lsr-1", "ga:<accelerator-id>:<listener-id>"),
    ("ga:lsr-1:ga-2", "not an accelerator id"),
])
def test_bad_grammar_is_one_clear_line(spec: str, why: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_target(spec)
    assert why in str(err.value) and spec in str(err.value) and "\n" not in str(err.value)


def test_live_auto_partial_failure_is_recorded_and_retried(emu: AliyunEmulator) -> None:
    for name in ("a.example.test", "b.example.test"):
        live.add_domain(emu.state, name, https=True)
    lin = make_lineage(TinyCA(), NAMES)
    emu.faults.deny("SetLiveDomainCertificate", count=1)  # the first domain fails
    ok, msg = _run(emu, lin, ["live:auto"])["live:auto"]
    assert not ok and "1 of 2 Live domains failed" in msg and "a.example.test" in msg
    assert "live:SetLiveDomainCertificate" in msg  # the hint names the RAM action
    dep = lin.meta.deployments["live:auto"]
    (cert_id,) = emu.state.cas_certs
    assert dep.details["domains"] == {"b.example.test": cert_id} and dep.cas_ids == [cert_id]
    assert "live:auto" in lin.meta.deploy_pending(["live:auto"])
    ok, msg = _run(emu, lin, ["live:auto"])["live:auto"]
    assert ok, msg
    sets = emu.calls_of("SetLiveDomainCertificate")
    assert [c["DomainName"] for c in sets] == ["b.example.test", "a.example.test"]
    assert lin.meta.deployments["live:auto"].details["domains"] == {
        "a.example.test": cert_id, "b.example.test": cert_id}


def test_auto_binds_only_online_https_covered_domains(emu: AliyunEmulator) -> None:
    vod.add_domain(emu.state, "a.example.test", https=True)
    vod.add_domain(emu.state, "http.example.test")
    vod.add_domain(emu.state, "off.example.test", https=True, status="offline")
    vod.add_domain(emu.state, "a.b.example.test", https=True)  # two labels below *.
    for n in range(60):  # more than one page of 50
        vod.add_domain(emu.state, f"z{n:02d}.other.test", https=True)
    vod.add_domain(emu.state, "zz.example.test", https=True)  # on the second page
    lin = make_lineage(TinyCA(), NAMES)
    ok, msg = _run(emu, lin, ["vod:auto"])["vod:auto"]
    assert ok, msg
    assert sorted(c["DomainName"] for c in emu.calls_of("SetVodDomainSSLCertificate")) == \
        ["a.example.test", "zz.example.test"]
    assert {c["PageSize"] for c in emu.calls_of("DescribeVodUserDomains")} == {"50"}
    assert vod.domains(emu.state)["http.example.test"]["SslProtocol"] == "off"


def test_live_idempotent_by_fingerprint_and_renewal_moves_it(emu: AliyunEmulator) -> None:
    ca = TinyCA()
    live.add_domain(emu.state, ".example.test")
    lin = make_lineage(ca, NAMES, rsa_key=True)
    assert _run(emu, lin, ["live:*.example.test"])["live:*.example.test"][0]
    dom = live.domains(emu.state)[".example.test"]
    (first,) = emu.state.cas_certs
    assert dom["CasId"] == first and dom["CertType"] == "cas"
    assert "BEGIN RSA PRIVATE KEY" in dom["SSLPri"]  # RSA as PKCS#1, as Live asks
    # Someone re-uploads the very same certificate by hand under another name: still ours.
    dom.update(CertType="upload", CertName="by-hand", CasId=None)
    before = len(_writes(emu))
    assert _run(emu, lin, ["live:*.example.test"])["live:*.example.test"][0]
    assert _writes(emu)[before:] == []
    lin = make_lineage(ca, NAMES, meta=lin.meta, version=2, rsa_key=True)
    ok, msg = _run(emu, lin, ["live:*.example.test"])["live:*.example.test"]
    assert ok, msg
    (second,) = emu.state.cas_certs  # the first upload is gone, nothing still named it
    assert second != first and dom["CasId"] == second
    assert dom["CertName"] == emu.state.cas_certs[second]["Name"]


def test_uncovered_domain_and_http_only_website_change_nothing(emu: AliyunEmulator) -> None:
    live.add_domain(emu.state, "www.other.test", https=True)
    ddos.add_rule(emu.state, "www.example.test", https=False)
    lin = make_lineage(TinyCA(), NAMES)
    out = _run(emu, lin, ["live:www.other.test", "ddos:www.example.test",
                          "ddos:nothere.example.test"])
    assert not out["live:www.other.test"][0] and "does not cover" in out["live:www.other.test"][1]
    ok, msg = out["ddos:www.example.test"]
    assert not ok and "forwards no HTTPS" in msg and "console" in msg
    ok, msg = out["ddos:nothere.example.test"]
    assert not ok and "no website rule" in msg
    assert _writes(emu) == []  # not even the CAS upload


def test_ga_additional_replaced_in_place_after_an_update_in_flight(emu: AliyunEmulator) -> None:
    ca = TinyCA()
    lin = make_lineage(ca, NAMES)
    assert _run(emu, lin, ["cas"])["cas"][0]
    (cert_id,) = emu.state.cas_certs
    lsn = ga.add_listener(emu.state, "ga-u1", "lsr-u1")
    # The domain already has someone's certificate, still updating; another domain too.
    lsn["Additional"].update({"www.example.test": f"{cert_id}-cn-hangzhou",
                              "api.other.test": "555-cn-hangzhou"})
    lsn["Updating"]["www.example.test"] = 2
    lin = _renew(ca, lin)
    spec = "ga:ga-u1:lsr-u1:www.example.test"
    ok, msg = _run(emu, lin, [spec])[spec]
    assert ok, msg
    new = next(c for c in emu.state.cas_certs if c != cert_id)
    assert lsn["Additional"] == {"www.example.test": f"{new}-cn-hangzhou",
                                 "api.other.test": "555-cn-hangzhou"}
    assert [a for a in _writes(emu) if a.endswith("Listener")] == [
        "UpdateAdditionalCertificateWithListener"]
    assert "StateError.Listener" not in [code for _, code in emu.errors]
    assert lsn["Default"] is None  # the default certificate was not this target's


def test_dry_run_plans_every_target_and_changes_nothing(emu: AliyunEmulator) -> None:
    live.add_domain(emu.state, "www.example.test", https=True)
    vod.add_domain(emu.state, "www.example.test")
    ddos.add_rule(emu.state, "www.example.test")
    ga.add_listener(emu.state, "ga-d1", "lsr-d1")
    lin = make_lineage(TinyCA(), NAMES)
    specs = ["live:auto", "vod:www.example.test", "ddos:www.example.test", "ga:ga-d1:lsr-d1"]
    out = _run(emu, lin, specs, dry_run=True)
    assert all(ok for ok, _ in out.values()), out
    text = " ".join(m for _, m in out.values())
    for call in ("live SetLiveDomainCertificate", "vod SetVodDomainSSLCertificate",
                 "ddoscoo AssociateWebCert", "ga UpdateListener"):
        assert f"would call {call}" in text, call
    assert "SSLPri=<redacted>" in text and "PRIVATE KEY" not in text
    assert _writes(emu) == [] and lin.meta.deployments == {}


def test_ddos_auto_pages_and_binds_only_covered_https_websites(emu: AliyunEmulator) -> None:
    for n in range(12):  # more than one page of 10
        ddos.add_rule(emu.state, f"s{n:02d}.other.test")
    ddos.add_rule(emu.state, "www.example.test")
    ddos.add_rule(emu.state, "plain.example.test", https=False)
    ca = TinyCA()
    lin = make_lineage(ca, NAMES)
    ok, msg = _run(emu, lin, ["ddos:auto"])["ddos:auto"]
    assert ok, msg
    assert [c["Domain"] for c in emu.calls_of("AssociateWebCert")] == ["www.example.test"]
    assert {c["PageSize"] for c in emu.calls_of("DescribeWebRules")} == {"10"}
    (cert_id,) = emu.state.cas_certs
    assert lin.meta.deployments["ddos:auto"].details["domains"] == {"www.example.test": cert_id}
    assert ddos.rules(emu.state)["plain.example.test"]["CasId"] is None
    lin = _renew(ca, lin)
    assert _run(emu, lin, ["ddos:auto"])["ddos:auto"][0]
    (new_id,) = emu.state.cas_certs
    assert ddos.rules(emu.state)["www.example.test"]["CasId"] == new_id != cert_id


def test_live_auto_reads_each_domain_once_before_binding(emu: AliyunEmulator) -> None:
    for name in ("a.example.test", "b.example.test"):
        live.add_domain(emu.state, name, https=True)
    live.add_domain(emu.state, "c.other.test", https=True)  # not covered: never read
    lin = make_lineage(TinyCA(), NAMES)
    assert _run(emu, lin, ["live:auto"])["live:auto"][0]
    reads = [c["DomainName"] for c in emu.calls_of("DescribeLiveDomainCertificateInfo")]
    assert sorted(reads) == ["a.example.test"] * 2 + ["b.example.test"] * 2  # list + confirm


def _call(emu: AliyunEmulator, service: object, action: str, params: dict[str, object]) -> str:
    """The error code the emulator answers (through the real SDK), or "" on success."""
    from acmeali.aliyun.clients import make_client
    from acmeali.aliyun.errors import AliyunError
    from acmeali.aliyun.retry import call

    try:
        call(make_client(service, settings_for(emu)), action, params)  # type: ignore[arg-type]
    except AliyunError as exc:
        return str(exc.code)
    return ""


def test_emulator_models_the_documented_refusals(emu: AliyunEmulator) -> None:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        load_pem_private_key,
    )

    from acmeali.deployers.ga import GA
    from acmeali.deployers.live import LIVE
    from acmeali.deployers.vod import VOD

    live.add_domain(emu.state, "www.example.test")
    lin = make_lineage(TinyCA(), NAMES, rsa_key=True)
    base = {"DomainName": "www.example.test", "SSLProtocol": "on", "CertType": "upload",
            "CertName": "x"}
    # Live: HTTPS on needs SSLPub and SSLPri; an RSA key must be PKCS#1.
    assert _call(emu, LIVE, "SetLiveDomainCertificate", base) == "SSLPub.MissingParameter"
    pkcs8 = load_pem_private_key(lin.key_pem, None).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    full = lin.bundle.fullchain if isinstance(lin.bundle.fullchain, str) \
        else lin.bundle.fullchain.decode()
    assert _call(emu, LIVE, "SetLiveDomainCertificate",
                 {**base, "SSLPub": full, "SSLPri": pkcs8}) == "InvalidSSLPri.Malformed"
    assert _call(emu, LIVE, "SetLiveDomainCertificate",
                 {**base, "SSLPub": full, "SSLPri": lin.key_pem.decode()}) == ""
    # VOD: at most 50 domains a page.
    assert _call(emu, VOD, "DescribeVodUserDomains", {"PageSize": 51}) == "InvalidPageSize"
    # GA: one additional certificate per domain; no change while one is updating.
    assert _run(emu, lin, ["cas"])["cas"][0]
    (cert_id,) = emu.state.cas_certs
    ga.add_listener(emu.state, "ga-r1", "lsr-r1")
    assoc = {"RegionId": "cn-hangzhou", "AcceleratorId": "ga-r1", "ListenerId": "lsr-r1",
             "Certificates": [{"Domain": "www.example.test", "Id": f"{cert_id}-cn-hangzhou"}]}
    assert _call(emu, GA, "AssociateAdditionalCertificatesWithListener", assoc) == ""
    assert _call(emu, GA, "UpdateListener", {"RegionId": "cn-hangzhou", "ListenerId": "lsr-r1",
                                             "Certificates": [{"Id": f"{cert_id}-cn-hangzhou"}]}
                 ) == "StateError.Listener"
    ga.listeners(emu.state)["lsr-r1"]["Updating"].clear()
    assert _call(emu, GA, "AssociateAdditionalCertificatesWithListener", assoc) == "Exist.Domain"


def test_ga_auto_replaces_covered_additional_certificates_one_at_a_time(
        emu: AliyunEmulator) -> None:
    ca = TinyCA()
    lin = make_lineage(ca, NAMES)
    assert _run(emu, lin, ["cas"])["cas"][0]
    (old,) = emu.state.cas_certs
    lsn = ga.add_listener(emu.state, "ga-a1", "lsr-a1")
    lsn["Additional"].update({d: f"{old}-cn-hangzhou" for d in ("a.example.test",
                                                              "b.example.test")})
    lsn["Additional"]["shop.other.test"] = "555-cn-hangzhou"  # not covered: never touched
    lin = _renew(ca, lin)
    spec = "ga:ga-a1:lsr-a1:auto"
    ok, msg = _run(emu, lin, ["cas", spec])[spec]
    assert ok, msg
    (new,) = emu.state.cas_certs  # the old upload went once nothing used it
    assert lsn["Additional"] == {"a.example.test": f"{new}-cn-hangzhou",
                                 "b.example.test": f"{new}-cn-hangzhou",
                                 "shop.other.test": "555-cn-hangzhou"}
    assert [c["Domain"] for c in emu.calls_of("UpdateAdditionalCertificateWithListener")] == \
        ["a.example.test", "b.example.test"]
    assert "StateError.Listener" not in [code for _, code in emu.errors]
    assert lin.meta.deployments[spec].details["domains"] == {"a.example.test": new,
                                                             "b.example.test": new}
