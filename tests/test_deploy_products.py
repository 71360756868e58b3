"""waf:, esa:, oss:, fc:, apig: in-process against the emulator: grammar, the cases the
contract suite does not cover (auto partial failures, quota, refusing to change what
acmeali does not own, redaction in plans) and OSS's own signature."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from acmeali.aliyun.errors import AliyunError
from acmeali.deployers import deploy
from acmeali.deployers.base import DeployContext, TargetSyntaxError
from acmeali.deployers.registry import parse_target
from tests.emulator import AliyunEmulator, esa, fc, oss, waf
from tests.test_deploy_helpers import (
    Lineage,
    TinyCA,
    captured,
    live_paths,
    make_lineage,
    make_ui,
    settings_for,
)


@pytest.mark.parametrize(("spec", "fields"), [
    ("waf:www.example.com", {"domain": "www.example.com", "region": None}),
    ("waf:ap-southeast-1:auto", {"domain": "auto", "region": "ap-southeast-1"}),
    ("waf:cloud:alb-1x:443", {"resource": "alb-1x", "port": 443, "domain": "", "extra": False}),
    ("waf:cloud:alb-1x:443:extra", {"resource": "alb-1x", "port": 443, "extra": True}),
    ("esa:example.com", {"site": "example.com", "hostname_id": ""}),
    ("esa:hostname:42", {"hostname_id": "42", "site": ""}),
    ("esa:hostnames:example.com", {"site": "example.com", "all_hostnames": True}),
    ("oss:bkt:img.example.com", {"bucket": "bkt", "domain": "img.example.com"}),
    ("oss:cn-shanghai:bkt:auto", {"bucket": "bkt", "domain": "auto", "region": "cn-shanghai"}),
    ("fc:cn-shanghai:fn.example.com", {"domain": "fn.example.com", "region": "cn-shanghai"}),
    ("apig:d-cq7abc", {"domain_id": "d-cq7abc", "region": None}),
])
def test_grammar(spec: str, fields: dict[str, object]) -> None:
    target = parse_target(spec)
    for name, value in fields.items():
        assert getattr(target, name) == value, name


@pytest.mark.parametrize("spec", ["waf:", "waf:cloud:alb-1x", "waf:cloud:alb-1x:https",
                                  "esa:", "esa:hostname:abc", "oss:bkt", "oss:a:b:c:d",
                                  "fc:", "apig:"])
def test_bad_grammar_is_one_clear_line(spec: str) -> None:
    with pytest.raises(TargetSyntaxError) as err:
        parse_target(spec)
    assert spec in str(err.value) and "expected" in str(err.value)
    assert "\n" not in str(err.value)


def _run(emu: AliyunEmulator, lin: Lineage, tmp: Path, spec: str, *,
         dry_run: bool = False) -> tuple[bool, str, str]:
    ui = make_ui()
    out = deploy(lin.meta, lin.bundle, [spec], settings=settings_for(emu), ui=ui,
                 live_paths=live_paths(tmp / "live", lin), dry_run=dry_run)
    return out[0].ok, out[0].message, "".join(captured(ui))


def test_waf_auto_partial_failure_is_recorded_and_retried(emu: AliyunEmulator,
                                                          tmp_path: Path) -> None:
    for name in ("a.example.test", "b.example.test"):
        waf.add_domain(emu, name)
    lin = make_lineage(TinyCA(), ["*.example.test"])
    emu.faults.deny("ModifyDomain", count=1)  # the first domain's write is refused
    ok, msg, _ = _run(emu, lin, tmp_path, "waf:auto")
    assert not ok and "1 of 2" in msg and "yundun-waf:ModifyDomain" in msg, msg
    dep = lin.meta.deployments["waf:auto"]
    (cert_id,) = emu.state.cas_certs
    assert dep.details["bound"] == {"b.example.test": cert_id}
    assert set(dep.cas_ids) == {cert_id}
    domains = emu.state.extra["waf"]["domains"]
    assert domains["a.example.test"]["Listen"]["CertId"] is None
    ok, msg, _ = _run(emu, lin, tmp_path, "waf:auto")  # the next run retries
    assert ok, msg
    assert {d: r["Listen"]["CertId"] for d, r in domains.items()} == {
        "a.example.test": f"{cert_id}-cn-hangzhou", "b.example.test": f"{cert_id}-cn-hangzhou"}


def test_waf_refuses_a_domain_without_https_and_changes_nothing(emu: AliyunEmulator,
                                                                tmp_path: Path) -> None:
    row = waf.add_domain(emu, "www.example.test", https_ports=())
    before = json.dumps(row, sort_keys=True)
    ok, msg, _ = _run(emu, make_lineage(TinyCA(), ["www.example.test"]), tmp_path,
                      "waf:www.example.test")
    assert not ok and "no HTTPS listen port" in msg
    assert json.dumps(row, sort_keys=True) == before
    assert emu.calls_of("ModifyDomain") == []


def test_esa_renewals_replace_instead_of_filling_the_quota(emu: AliyunEmulator,
                                                           tmp_path: Path) -> None:
    """Three certificates in a row: the site keeps its console upload and exactly one
    acmeali certificate, always the same ESA Id (quota 2 would refuse a third add)."""
    site = esa.add_site(emu, "example.test")
    ca = TinyCA()
    lin = make_lineage(ca, ["example.test", "*.example.test"])
    ids = []
    for version in (1, 2, 3):
        if version > 1:
            lin = make_lineage(ca, ["example.test", "*.example.test"], meta=lin.meta,
                               version=version)
        ok, msg, _ = _run(emu, lin, tmp_path, "esa:example.test")
        assert ok, msg
        certs = emu.state.extra["esa"]["certs"][site]
        assert [c["Type"] for c in certs] == ["upload", "cas"]
        ids.append(certs[1]["Id"])
        assert certs[1]["CasId"] == str(max(emu.state.cas_certs))
    assert len(set(ids)) == 1


def test_fc_dry_run_plans_without_key_material(emu: AliyunEmulator, tmp_path: Path) -> None:
    row = fc.add_domain(emu, "fn.example.test")
    before = json.dumps(row, sort_keys=True)
    ok, msg, out = _run(emu, make_lineage(TinyCA(), ["fn.example.test"]), tmp_path,
                        "fc:fn.example.test", dry_run=True)
    assert ok, msg
    assert "would call fc UpdateCustomDomain" in out and "<redacted>" in out
    assert "PRIVATE KEY" not in out and "BEGIN CERTIFICATE" not in out
    assert json.dumps(row, sort_keys=True) == before


def test_fc_domain_on_http_only_gets_https_and_keeps_the_rest(emu: AliyunEmulator,
                                                              tmp_path: Path) -> None:
    row = fc.add_domain(emu, "fn.example.test", protocol="HTTP")
    kept = {k: json.dumps(row[k], sort_keys=True) for k in fc_kept()}
    ok, msg, _ = _run(emu, make_lineage(TinyCA(), ["fn.example.test"]), tmp_path,
                      "fc:fn.example.test")
    assert ok, msg
    assert row["protocol"] == "HTTP,HTTPS"
    assert {k: json.dumps(row[k], sort_keys=True) for k in fc_kept()} == kept


def fc_kept() -> tuple[str, ...]:
    from acmeali.deployers.fc import KEPT

    return KEPT


def _ctx(emu: AliyunEmulator, tmp: Path) -> DeployContext:
    lin = make_lineage(TinyCA(), ["img.example.test"])
    return DeployContext(lin.meta, lin.bundle, settings=settings_for(emu), ui=make_ui(),
                         live_paths=live_paths(tmp / "live", lin))


def test_oss_signature_is_verified(emu: AliyunEmulator, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from acmeali.deployers.oss import Oss

    oss.add_cname(emu, "bkt", "img.example.test")
    target: Any = parse_target("oss:bkt:img.example.test")
    assert isinstance(target, Oss)
    assert target._cnames(_ctx(emu, tmp_path)) == {"img.example.test": ""}
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "not-the-secret")
    with pytest.raises(AliyunError) as err:
        target._cnames(_ctx(emu, tmp_path))
    assert err.value.code == "SignatureDoesNotMatch"
    assert os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] == "not-the-secret"


def test_oss_signed_for_the_wrong_region_is_refused(emu: AliyunEmulator,
                                                    tmp_path: Path) -> None:
    oss.add_cname(emu, "bkt", "img.example.test", region="cn-shanghai")
    ok, msg, _ = _run(emu, make_lineage(TinyCA(), ["img.example.test"]), tmp_path,
                      "oss:bkt:img.example.test")  # region defaults to cn-hangzhou
    assert not ok and "SignatureDoesNotMatch" in msg
    ok, msg, _ = _run(emu, make_lineage(TinyCA(), ["img.example.test"]), tmp_path,
                      "oss:cn-shanghai:bkt:img.example.test")
    assert ok, msg


def test_oss_does_not_overwrite_a_certificate_changed_meanwhile(emu: AliyunEmulator,
                                                                tmp_path: Path) -> None:
    """PreviousCertId is what acmeali read; the emulator refuses a stale one (as OSS
    documents), so a concurrent change is never overwritten blindly."""
    row = oss.add_cname(emu, "bkt", "img.example.test", certificate="111-cn-hangzhou")
    lin = make_lineage(TinyCA(), ["img.example.test"])
    ok, msg, _ = _run(emu, lin, tmp_path, "oss:bkt:img.example.test")
    assert ok, msg
    assert emu.calls_of("PutCname")[0]["PreviousCertId"] == "111-cn-hangzhou"
    row["Certificate"]["CertId"] = "222-cn-hangzhou"  # someone changes it in the console
    with emu.state.lock:
        from tests.emulator.oss import _put
        from tests.emulator.state import ApiError

        with pytest.raises(ApiError) as err:
            _put(emu._backend, emu.state.extra["oss"]["buckets"]["bkt"],
                 {"Domain": "img.example.test", "CertId": "1-cn-hangzhou",
                  "PreviousCertId": "111-cn-hangzhou"})
    assert err.value.status == 409


def test_waf_extension_previous_kept_when_delete_fails_then_removed(emu: AliyunEmulator,
                                                                    tmp_path: Path) -> None:
    waf.add_cloud_port(emu, "alb-x1", 443, extensions=("777-cn-hangzhou",))
    ca = TinyCA()
    lin = make_lineage(ca, ["example.test"])
    spec = "waf:cloud:alb-x1:443:extra"
    ok, msg, _ = _run(emu, lin, tmp_path, spec)
    assert ok, msg
    first = f"{max(emu.state.cas_certs)}-cn-hangzhou"
    lin = make_lineage(ca, ["example.test"], meta=lin.meta, version=2)
    emu.faults.deny("DeleteCloudResourceExtensionCert", count=1)
    ok, msg, _ = _run(emu, lin, tmp_path, spec)
    second = f"{max(emu.state.cas_certs)}-cn-hangzhou"
    assert not ok and "still there" in msg, msg
    port = emu.state.extra["waf"]["ports"][("alb-x1", 443)]
    assert [c["CertificateId"] for c in port["Certificates"]] == ["777-cn-hangzhou", first, second]
    dep = lin.meta.deployments[spec]  # both CAS certificates stay in use until it is gone
    assert {int(first.split("-")[0]), int(second.split("-")[0])} <= set(dep.cas_ids)
    ok, msg, _ = _run(emu, lin, tmp_path, spec)  # retried: the previous one goes
    assert ok, msg
    assert [c["CertificateId"] for c in port["Certificates"]] == ["777-cn-hangzhou", second]
