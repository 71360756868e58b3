"""Retries and error rendering of aliyun.call, against the emulator through the real SDK."""

from __future__ import annotations

import logging
import time

import pytest

from acmeali.aliyun import AliyunError, call, make_client
from acmeali.config import AliyunSettings
from tests.emulator import AliyunEmulator
from tests.test_deploy_helpers import TinyCA, make_lineage, make_ui, settings_for


def _settings(emu: AliyunEmulator) -> AliyunSettings:
    return settings_for(emu)


def test_throttling_waits_what_the_header_says(emu: AliyunEmulator) -> None:
    emu.add_cdn_domain("t.example.test")
    emu.faults.throttle("DescribeUserDomains", count=3, retry_after_ms=300)
    client = make_client("cdn", _settings(emu))
    start = time.monotonic()
    body = call(client, "DescribeUserDomains", {"PageSize": 50})
    elapsed = time.monotonic() - start
    assert body["TotalCount"] == 1
    assert [c for a, c in emu.errors] == ["Throttling.User"] * 3
    assert elapsed >= 0.9  # 3 x 300 ms, as x-acs-retry-after asked


def test_5xx_burst_is_ridden_out_in_a_deploy(emu: AliyunEmulator) -> None:
    from acmeali.deployers import deploy

    emu.add_cdn_domain("static.example.test")
    emu.faults.fail_5xx(3)
    emu.faults.throttle("SetCdnDomainSSLCertificate", count=2, retry_after_ms=100)
    lin = make_lineage(TinyCA(), ["static.example.test"])
    outcomes = deploy(lin.meta, lin.bundle, ["cdn:static.example.test"],
                      settings=_settings(emu), ui=make_ui())
    assert outcomes[0].ok, outcomes
    assert sum(1 for _, c in emu.errors if c == "ServiceUnavailable") == 3
    assert emu.state.cdn_domains["static.example.test"]["CertId"] is not None


def test_retries_are_bounded_by_attempts_and_time(emu: AliyunEmulator) -> None:
    client = make_client("cdn", _settings(emu))
    emu.faults.fail_5xx(100)
    with pytest.raises(AliyunError) as info:
        call(client, "DescribeUserDomains", {}, attempts=3, budget=30)
    text = info.value.render()
    assert "ServiceUnavailable" in text and "gave up after 3 attempts" in text
    assert "RequestId" in text
    emu.faults.reset()
    emu.faults.throttle(count=100, retry_after_ms=5000)
    start = time.monotonic()
    with pytest.raises(AliyunError) as info:
        call(client, "DescribeUserDomains", {}, budget=2)
    assert time.monotonic() - start < 2.5
    assert "Throttling.User" in info.value.render()


def test_permanent_error_is_one_paragraph_with_code_requestid_hint(
        emu: AliyunEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "wrong-secret")
    client = make_client("cas", _settings(emu))
    with pytest.raises(AliyunError) as info:
        call(client, "ListUserCertificateOrder", {"OrderType": "UPLOAD"})
    err = info.value
    text = err.render()
    assert err.code == "SignatureDoesNotMatch"
    assert "ListUserCertificateOrder failed: SignatureDoesNotMatch" in text
    assert f"RequestId {err.request_id}" in text and err.request_id
    assert "hint:" in text and "secret" in text
    assert "wrong-secret" not in text
    assert len(emu.log) == 1  # not retried

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIunknown")
    client = make_client("cas", _settings(emu))
    with pytest.raises(AliyunError) as info:
        call(client, "ListUserCertificateOrder", {"OrderType": "UPLOAD"})
    assert info.value.code == "InvalidAccessKeyId.NotFound"
    assert "credentials source" in info.value.render()


def test_business_error_not_retried_and_named(emu: AliyunEmulator) -> None:
    client = make_client("cdn", _settings(emu))
    with pytest.raises(AliyunError) as info:
        call(client, "DescribeDomainCertificateInfo", {"DomainName": "nope.example.test"})
    assert info.value.code == "InvalidDomain.NotFound"
    assert "check the domain name" in info.value.render()
    assert len(emu.log) == 1


def test_debug_log_redacts_keys(emu: AliyunEmulator, caplog: pytest.LogCaptureFixture) -> None:
    lin = make_lineage(TinyCA(), ["log.example.test"])
    client = make_client("cas", _settings(emu))
    caplog.set_level(logging.DEBUG, logger="acmeali")
    call(client, "UploadUserCertificate", {
        "Name": "log-test", "Cert": lin.bundle.fullchain.decode(),
        "Key": lin.bundle.privkey.decode()})
    text = caplog.text
    assert "UploadUserCertificate" in text and "'Key': '<redacted>'" in text
    assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text
    assert emu.access_key_secret not in text
