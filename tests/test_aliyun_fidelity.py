"""Alibaba Cloud as documented (issue 11): deployers against the emulator's documented
behaviour. Each test failed on the code before the fix it guards."""

from __future__ import annotations

import pytest

from acmeali.deployers import deploy
from tests.emulator import AliyunEmulator
from tests.test_deploy_helpers import (
    Lineage,
    TinyCA,
    captured,
    make_lineage,
    make_ui,
    settings_for,
)


@pytest.fixture
def ca() -> TinyCA:
    return TinyCA()


def _run(emu: AliyunEmulator, lin: Lineage, targets: list[str], **kw: object
         ) -> dict[str, tuple[bool, str]]:
    settings = kw.pop("settings", None) or settings_for(emu)
    ui = kw.pop("ui", None) or make_ui()
    outcomes = deploy(lin.meta, lin.bundle, targets, settings=settings, ui=ui)  # type: ignore[arg-type]
    return {o.target: (o.ok, o.message) for o in outcomes}


def _renew(ca: TinyCA, lin: Lineage) -> Lineage:
    assert lin.meta.current is not None
    return make_lineage(ca, lin.meta.domains, meta=lin.meta,
                        version=lin.meta.current.version + 1)


# --------------------------------------------------------------------- wildcard (D)CDN
def test_cdn_auto_binds_the_leading_dot_wildcard_domain(emu: AliyunEmulator,
                                                         ca: TinyCA) -> None:
    assert emu.add_cdn_domain("*.example.test", https=True) == ".example.test"
    emu.add_cdn_domain("www.example.test", https=True)
    lin = make_lineage(ca, ["example.test", "*.example.test"])
    res = _run(emu, lin, ["cdn:auto"])
    assert res["cdn:auto"][0], res
    cert_id = lin.meta.cas_uploads[0]["cert_id"]
    assert {d: v["CertId"] for d, v in emu.state.cdn_domains.items()} == {
        ".example.test": cert_id, "www.example.test": cert_id}
    assert set(lin.meta.deployments["cdn:auto"].details["domains"]) == {
        ".example.test", "www.example.test"}
    # the read-back compared in the stored form: a second run sets nothing
    assert _run(emu, lin, ["cdn:auto"])["cdn:auto"][0]
    assert len(emu.calls_of("SetCdnDomainSSLCertificate")) == 2


@pytest.mark.parametrize("spec", ["cdn:*.example.test", "cdn:.example.test",
                                  "dcdn:*.example.test", "dcdn:.example.test"])
def test_wildcard_targets_in_both_forms_reach_the_api_with_a_leading_dot(
        emu: AliyunEmulator, ca: TinyCA, spec: str) -> None:
    emu.add_cdn_domain("*.example.test")
    emu.add_dcdn_domain("*.example.test")
    lin = make_lineage(ca, ["*.example.test"])
    ok, msg = _run(emu, lin, [spec])[spec]
    assert ok, (msg, emu.errors)
    action = ("SetCdnDomainSSLCertificate" if spec.startswith("cdn")
              else "SetDcdnDomainSSLCertificate")
    assert [c["DomainName"] for c in emu.calls_of(action)] == [".example.test"]
    domains = emu.state.cdn_domains if spec.startswith("cdn") else emu.state.dcdn_domains
    assert domains[".example.test"]["CertId"] == lin.meta.cas_uploads[0]["cert_id"]


def test_cdn_auto_only_touches_online_domains_already_serving_https(
        emu: AliyunEmulator, ca: TinyCA) -> None:
    emu.add_cdn_domain("on.example.test", https=True)
    emu.add_cdn_domain("plain.example.test", https=False)
    emu.add_cdn_domain("busy.example.test", https=True, status="configuring")
    emu.add_cdn_domain("stopped.example.test", https=True, status="offline")
    lin = make_lineage(ca, ["*.example.test"])
    ui = make_ui()
    res = _run(emu, lin, ["cdn:auto"], ui=ui)
    assert res["cdn:auto"][0], res
    assert [c["DomainName"] for c in emu.calls_of("SetCdnDomainSSLCertificate")] == [
        "on.example.test"]
    assert emu.state.cdn_domains["plain.example.test"]["SslProtocol"] == "off"
    assert "plain.example.test" in "".join(captured(ui))
    # an explicit target may switch HTTPS on
    assert _run(emu, lin, ["cdn:plain.example.test"])["cdn:plain.example.test"][0]
    assert emu.state.cdn_domains["plain.example.test"]["SslProtocol"] == "on"


# --------------------------------------------------------------------- CAS
def test_cleanup_keeps_an_upload_bound_by_hand_and_deletes_the_unused(
        emu: AliyunEmulator, ca: TinyCA) -> None:
    settings = settings_for(emu, cas_keep_previous=0)
    lin = make_lineage(ca, ["keep.example.test"])
    assert _run(emu, lin, ["cas"], settings=settings)["cas"][0]
    first = lin.meta.cas_uploads[0]["cert_id"]
    emu.bind_by_hand(first, "SLB", "lb-1")  # someone uses it on a load balancer
    lin = _renew(ca, lin)
    assert _run(emu, lin, ["cas"], settings=settings)["cas"][0]
    second = lin.meta.deployments["cas"].details["cert_id"]
    assert first in emu.state.cas_certs  # in use per ListCertificates: kept
    lin = _renew(ca, lin)
    assert _run(emu, lin, ["cas"], settings=settings)["cas"][0]
    assert second not in emu.state.cas_certs  # nobody used it: deleted
    assert first in emu.state.cas_certs
    assert [c["CertId"] for c in emu.calls_of("DeleteUserCertificate")] == [str(second)]
    assert all(int(c["ShowSize"]) <= 100 for c in emu.calls_of("ListCertificates"))


def test_cleanup_asks_list_cloud_resources_when_the_listing_misses(
        emu: AliyunEmulator, ca: TinyCA) -> None:
    settings = settings_for(emu, cas_keep_previous=0)
    lin = make_lineage(ca, ["res.example.test"])
    assert _run(emu, lin, ["cas"], settings=settings)["cas"][0]
    first = lin.meta.cas_uploads[0]
    first["name"] = "renamed-in-console"  # the Keyword no longer finds it
    emu.bind_by_hand(first["cert_id"], "WAF", "waf.example.test")
    lin = _renew(ca, lin)
    assert _run(emu, lin, ["cas"], settings=settings)["cas"][0]
    assert first["cert_id"] in emu.state.cas_certs
    assert emu.calls_of("ListCloudResources")


def test_upload_retried_after_a_lost_answer_is_one_copy(emu: AliyunEmulator,
                                                        ca: TinyCA) -> None:
    emu.faults.lose_response("UploadUserCertificate")
    lin = make_lineage(ca, ["lost.example.test"])
    res = _run(emu, lin, ["cas"])
    assert res["cas"][0], res
    uploads = emu.calls_of("UploadUserCertificate")
    assert len(uploads) == 2 and len(emu.state.cas_certs) == 1
    tokens = {u.get("ClientToken") for u in uploads}
    assert len(tokens) == 1 and None not in tokens
    assert not [code for _, code in emu.errors if code == "NameRepeat"]


def test_rsa_key_goes_to_cas_in_pkcs1_so_cdn_takes_it(emu: AliyunEmulator,
                                                      ca: TinyCA) -> None:
    emu.add_cdn_domain("rsa.example.test")
    lin = make_lineage(ca, ["rsa.example.test"], rsa_key=True)
    ok, msg = _run(emu, lin, ["cdn:rsa.example.test"])["cdn:rsa.example.test"]
    assert ok, msg
    (stored,) = emu.state.cas_certs.values()
    assert "BEGIN RSA PRIVATE KEY" in str(stored["Key"])


def test_certificate_without_a_common_name(emu: AliyunEmulator, ca: TinyCA) -> None:
    emu.add_cdn_domain("*.nocn.example.test", https=True)
    lin = make_lineage(ca, ["nocn.example.test", "*.nocn.example.test"], with_cn=False)
    res = _run(emu, lin, ["cas", "cdn:auto"])
    assert all(ok for ok, _ in res.values()), res
    (cert_id, stored), = emu.state.cas_certs.items()
    assert stored["Common"] == "" and str(stored["Name"]).startswith("acmeali-nocn")
    assert emu.state.cdn_domains[".nocn.example.test"]["CertId"] == cert_id
    # metadata lost: the listing (by SAN, not CN) finds the upload again
    lin.meta.cas_uploads.clear()
    lin.meta.deployments.clear()
    assert _run(emu, lin, ["cas"])["cas"][0]
    assert len(emu.calls_of("UploadUserCertificate")) == 1


# --------------------------------------------------------------------- retries
@pytest.mark.parametrize("code", ["Throttling", "Throttling.Api", "Rejected.Throttling",
                                  "SystemOverFlow", "ServiceUnavailable"])
def test_documented_throttling_codes_are_retried(emu: AliyunEmulator, code: str) -> None:
    from acmeali.aliyun import call, make_client

    emu.add_mqtt_instance("mqtt-cn-throttle")
    emu.faults.throttle("GetRegisterCode", count=2, retry_after_ms=None, code=code)
    body = call(make_client("mqtt", settings_for(emu)), "GetRegisterCode",
                {"MqttInstanceId": "mqtt-cn-throttle"})
    assert body["RegisterCode"]
    assert [c for _, c in emu.errors] == [code, code]


def test_retry_after_header_is_honoured_for_rejected_throttling(emu: AliyunEmulator) -> None:
    import time

    from acmeali.aliyun import call, make_client

    emu.faults.throttle("DescribeUserDomains", count=2, retry_after_ms=400,
                        code="Rejected.Throttling")
    start = time.monotonic()
    call(make_client("cdn", settings_for(emu)), "DescribeUserDomains", {})
    assert time.monotonic() - start >= 0.8


def test_throttling_error_has_a_hint_when_retries_run_out(emu: AliyunEmulator) -> None:
    from acmeali.aliyun import AliyunError, call, make_client

    emu.add_mqtt_instance("mqtt-cn-busy")
    emu.faults.throttle(count=50, retry_after_ms=None, code="SystemOverFlow")
    with pytest.raises(AliyunError) as info:
        call(make_client("mqtt", settings_for(emu)), "GetRegisterCode",
             {"MqttInstanceId": "mqtt-cn-busy"}, attempts=2)
    assert "throttling" in info.value.render()


# --------------------------------------------------------------------- packaging
def test_dependency_floors_are_the_tested_versions() -> None:
    """The code imports tea-openapi 0.4.x modules (utils_models, exceptions); every Alibaba
    SDK's floor is the version this suite runs with, so no resolver picks an older one."""
    import re
    from importlib.metadata import version
    from pathlib import Path

    import tomllib

    deps = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml")
                         .read_text())["project"]["dependencies"]
    floors = {m.group(1): m.group(2) for d in deps
              if (m := re.match(r"(alibabacloud-[a-z0-9-]+)>=([0-9.]+)", d))}

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split(".")[:3])

    # the versions the suite was written and run against (ALIYUN.md)
    tested = {"alibabacloud-tea-openapi": (0, 4, 5), "alibabacloud-credentials": (1, 0, 12),
              "alibabacloud-cas20200407": (3, 9, 4), "alibabacloud-cdn20180510": (9, 2, 0),
              "alibabacloud-dcdn20180115": (3, 1, 0),
              "alibabacloud-cloudapi20160714": (4, 9, 0),
              "alibabacloud-alidns20150109": (4, 6, 1),
              "alibabacloud-onsmqtt20200420": (1, 7, 1)}
    for package, floor in tested.items():
        assert key(floors[package]) >= floor, (package, floors[package])
    for package, floor_text in floors.items():  # no floor above what is installed
        assert key(floor_text) <= key(version(package)), (package, floor_text)
