"""Client factory: endpoints per site/region, lazy SDK imports, credentials read per client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from acmeali.aliyun import clients
from acmeali.aliyun.errors import AliyunError, from_sdk_exception, hint_for, scrub
from acmeali.config import AliyunSettings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clients.clear_clients()


def test_default_endpoints_follow_site_and_region() -> None:
    china = AliyunSettings()
    intl = AliyunSettings(site="international", region="ap-southeast-1")
    assert clients.endpoint_for("cas", china) == "cas.aliyuncs.com"
    assert clients.endpoint_for("cas", intl) == "cas.ap-southeast-1.aliyuncs.com"
    assert clients.cas_region(china) == "cn-hangzhou"
    assert clients.cas_region(intl) == "ap-southeast-1"
    assert clients.endpoint_for("cdn", china) == "cdn.aliyuncs.com"
    assert clients.endpoint_for("dcdn", china) == "dcdn.aliyuncs.com"
    assert clients.endpoint_for("alidns", china) == "alidns.aliyuncs.com"
    assert clients.endpoint_for("apigateway", china) == "apigateway.cn-hangzhou.aliyuncs.com"
    assert (clients.endpoint_for("apigateway", china, "cn-shanghai")
            == "apigateway.cn-shanghai.aliyuncs.com")
    assert clients.endpoint_for("mqtt", intl) == "onsmqtt.ap-southeast-1.aliyuncs.com"
    over = AliyunSettings(endpoints={"cdn": "127.0.0.1:9"}, protocol="http")
    assert clients.endpoint_for("cdn", over) == "127.0.0.1:9"
    with pytest.raises(ValueError):
        clients.endpoint_for("ecs", china)


def test_importing_aliyun_and_deployers_loads_no_sdk() -> None:
    code = ("import sys, acmeali.aliyun, acmeali.deployers, acmeali.commands.deploy; "
            "bad = [m for m in sys.modules if m.startswith(('alibabacloud', 'Tea', "
            "'darabonba', 'dns'))]; print(bad); sys.exit(1 if bad else 0)")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _creds(client: object) -> tuple[str, str]:
    model = client._credential.get_credential()  # type: ignore[attr-defined]
    return model.access_key_id, model.access_key_secret


def test_environment_is_read_when_the_client_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """alibabacloud_credentials reads env vars once at import; our chain reads them per
    client, so keys set (or rotated) after the SDK was imported are used."""
    import alibabacloud_credentials.client  # noqa: F401 - imported before the env is set

    settings = AliyunSettings(endpoints={"cas": "127.0.0.1:9"}, protocol="http")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "AKID-one")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "secret-one")
    first = clients.make_client("cas", settings)
    assert clients.make_client("cas", settings) is first  # cached
    assert _creds(first) == ("AKID-one", "secret-one")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "AKID-two")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "secret-two")
    second = clients.make_client("cas", settings)
    assert second is not first
    assert _creds(second) == ("AKID-two", "secret-two")


def test_profile_from_settings_picks_the_cli_profile(tmp_path: Path) -> None:
    home = Path(os.environ["HOME"])
    (home / ".aliyun").mkdir(parents=True, exist_ok=True)
    (home / ".aliyun" / "config.json").write_text(json.dumps({
        "current": "default",
        "profiles": [
            {"name": "default", "mode": "AK", "access_key_id": "AK-default",
             "access_key_secret": "SK-default"},
            {"name": "deploy", "mode": "AK", "access_key_id": "AK-deploy",
             "access_key_secret": "SK-deploy"},
        ]}))
    base = {"endpoints": {"cdn": "127.0.0.1:9"}, "protocol": "http"}
    assert _creds(clients.make_client("cdn", AliyunSettings(**base))) == (  # type: ignore[arg-type]
        "AK-default", "SK-default")
    assert _creds(clients.make_client(
        "cdn", AliyunSettings(profile="deploy", **base))) == (  # type: ignore[arg-type]
        "AK-deploy", "SK-deploy")


def test_no_credentials_is_one_clear_error() -> None:
    from acmeali.aliyun import call

    settings = AliyunSettings(endpoints={"cas": "127.0.0.1:9"}, protocol="http")
    client = clients.make_client("cas", settings)
    with pytest.raises(clients.NoCredentials) as info:
        call(client, "GetUserCertificateDetail", {"CertId": 1})
    text = info.value.render()
    assert "no Alibaba Cloud credentials found" in text
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in text


def test_connection_refused_is_retried_then_reported_without_the_query(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every parameter (keys included) travels in the URL; the error must not show it."""
    from acmeali.aliyun import call

    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "the-secret")
    settings = AliyunSettings(endpoints={"cas": "127.0.0.1:9"}, protocol="http")
    client = clients.make_client("cas", settings)
    key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAsecretsecret\n-----END PRIVATE KEY-----\n"
    with pytest.raises(AliyunError) as info:
        call(client, "UploadUserCertificate", {"Name": "n", "Cert": "c", "Key": key},
             attempts=2, budget=5)
    text = info.value.render()
    assert "UploadUserCertificate failed" in text
    assert "gave up after 2 attempts" in text
    assert "secretsecret" not in text and "PRIVATE" not in text and "the-secret" not in text


# --------------------------------------------------------------------------- errors
class _FakeSdkError(Exception):
    """Stands in for the SDK's ClientException: attributes only (no acmeali code mocked)."""

    def __init__(self, **kw: object) -> None:
        super().__init__("code: 403, denied request id: X")
        self.__dict__.update(kw)


def test_permission_error_names_the_ram_action() -> None:
    exc = _FakeSdkError(code="Forbidden.RAM", status_code=403, data={
        "Code": "Forbidden.RAM", "Message": "User not authorized to operate on the specified "
        "resource.", "RequestId": "REQ-1"})
    err = from_sdk_exception(exc, service="cas", action="UploadUserCertificate")
    text = err.render()
    assert "Forbidden.RAM" in text and "RequestId REQ-1" in text
    assert "yundun-cert:UploadUserCertificate" in text
    denied = _FakeSdkError(code="NoPermission", status_code=403, data={
        "Code": "NoPermission", "Message": "no", "RequestId": "R",
        "AccessDeniedDetail": {"AuthAction": "cdn:SetCdnDomainSSLCertificate"}})
    assert "cdn:SetCdnDomainSSLCertificate" in from_sdk_exception(
        denied, service="cdn", action="SetCdnDomainSSLCertificate").render()


def test_hints_for_the_usual_codes() -> None:
    assert "credentials source" in (hint_for("InvalidAccessKeyId.NotFound", "cas", "X") or "")
    assert "secret" in (hint_for("SignatureDoesNotMatch", "cas", "X") or "")
    assert "alidns:AddDomainRecord" in (hint_for("Forbidden", "alidns", "AddDomainRecord") or "")
    assert hint_for("SomethingElse", "cas", "X") is None


def test_scrub_drops_query_strings() -> None:
    text = ("HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
            "/?Action=UploadUserCertificate&Key=-----BEGIN%20PRIVATE%20KEY (Caused by ...)")
    out = scrub(text)
    assert "PRIVATE" not in out and "Action=" not in out
    assert "127.0.0.1" in out
