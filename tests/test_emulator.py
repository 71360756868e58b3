"""The Alibaba Cloud emulator, driven through the real official SDK clients.

If the emulator is wrong here, every acmeali test that relies on it proves nothing: so
each action runs through the SDK's own request building, signing and response parsing.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Any

import pytest
import requests
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.models import Config as CredentialConfig
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)
from alibabacloud_tea_openapi.models import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.emulator import AliyunEmulator
from tests.emulator.server import service_names

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PEM = serialization.Encoding.PEM


# ----------------------------------------------------------------------- helpers
def sdk(client_cls: Any, emu: AliyunEmulator, *, key_id: str | None = None,
        secret: str | None = None, **extra: Any) -> Any:
    """An official SDK client pointed at the emulator, credentials passed explicitly."""
    cred = CredentialClient(CredentialConfig(
        type="access_key", access_key_id=key_id or emu.access_key_id,
        access_key_secret=secret or emu.access_key_secret))
    return client_cls(Config(credential=cred, endpoint=emu.endpoint, protocol="http",
                             region_id="cn-hangzhou", **extra))


def cas_client(emu: AliyunEmulator, **kw: Any) -> Any:
    from alibabacloud_cas20200407.client import Client
    return sdk(Client, emu, **kw)


def cdn_client(emu: AliyunEmulator) -> Any:
    from alibabacloud_cdn20180510.client import Client
    return sdk(Client, emu)


def dcdn_client(emu: AliyunEmulator) -> Any:
    from alibabacloud_dcdn20180115.client import Client
    return sdk(Client, emu)


def apigw_client(emu: AliyunEmulator) -> Any:
    from alibabacloud_cloudapi20160714.client import Client
    return sdk(Client, emu)


def dns_client(emu: AliyunEmulator, **kw: Any) -> Any:
    from alibabacloud_alidns20150109.client import Client
    return sdk(Client, emu, **kw)


def mqtt_client(emu: AliyunEmulator) -> Any:
    from alibabacloud_onsmqtt20200420.client import Client
    return sdk(Client, emu)


def pem(obj: Any) -> str:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(PEM).decode()
    return obj.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def make_ca(cn: str = "Test CA", *, ca: bool = True) -> tuple[x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def make_leaf(issuer: tuple[x509.Certificate, Any], cn: str, sans: tuple[str, ...] = (),
              days: int = 90) -> tuple[x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
               .issuer_name(issuer[0].subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=days)))
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    return builder.sign(issuer[1], hashes.SHA256()), key


@pytest.fixture(scope="module")
def ca() -> tuple[x509.Certificate, Any]:
    return make_ca("acmeali emulator test CA")


def upload(emu: AliyunEmulator, ca: Any, name: str, cn: str = "example.test"
           ) -> tuple[int, x509.Certificate]:
    from alibabacloud_cas20200407 import models as m
    cert, key = make_leaf(ca, cn, (cn, f"*.{cn}"))
    r = cas_client(emu).upload_user_certificate(m.UploadUserCertificateRequest(
        name=name, cert=pem(cert) + pem(ca[0]), key=pem(key)))
    return int(r.body.cert_id), cert


# ----------------------------------------------------------------- signatures
def test_v3_signature_verifies_and_wrong_secret_is_refused(aliyun: AliyunEmulator) -> None:
    from alibabacloud_alidns20150109 import models as m
    aliyun.add_dns_zone("example.test")
    good = dns_client(aliyun).get_main_domain_name(
        m.GetMainDomainNameRequest(input_string="www.example.test"))
    assert (good.body.domain_name, good.body.rr) == ("example.test", "www")
    assert aliyun.log[-1]["auth"] == "ACS3-HMAC-SHA256"

    with pytest.raises(ClientException) as exc:
        dns_client(aliyun, secret="wrong-secret").get_main_domain_name(
            m.GetMainDomainNameRequest(input_string="www.example.test"))
    assert (exc.value.code, exc.value.status_code) == ("SignatureDoesNotMatch", 400)
    assert set(exc.value.data) >= {"RequestId", "HostId", "Code", "Message", "Recommend"}

    with pytest.raises(ClientException) as exc:
        dns_client(aliyun, key_id="LTAIunknown").get_main_domain_name(
            m.GetMainDomainNameRequest(input_string="www.example.test"))
    assert (exc.value.code, exc.value.status_code) == ("InvalidAccessKeyId.NotFound", 404)
    assert aliyun.calls_of("GetMainDomainName") == [{"InputString": "www.example.test"}]


def test_legacy_hmac_sha1_signature(aliyun: AliyunEmulator) -> None:
    """``signature_algorithm='v2'`` makes the SDK sign RPC calls the old HMAC-SHA1 way."""
    from alibabacloud_alidns20150109 import models as m
    aliyun.add_dns_zone("example.test")
    r = dns_client(aliyun, signature_algorithm="v2").get_main_domain_name(
        m.GetMainDomainNameRequest(input_string="a.b.example.test"))
    assert (r.body.domain_name, r.body.rr) == ("example.test", "a.b")
    assert aliyun.log[-1]["auth"] == "HMAC-SHA1"
    assert aliyun.calls[-1] == ("GetMainDomainName", {"InputString": "a.b.example.test"})
    with pytest.raises(ClientException) as exc:
        dns_client(aliyun, signature_algorithm="v2", secret="bad").get_main_domain_name(
            m.GetMainDomainNameRequest(input_string="a.b.example.test"))
    assert exc.value.code == "SignatureDoesNotMatch"


def _signed_v3(emu: AliyunEmulator, query: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A V3 request signed by the SDK's own signer, to be sent (and replayed) by hand."""
    import hashlib
    from types import SimpleNamespace

    from alibabacloud_tea_openapi.utils import Utils
    headers = {"host": emu.endpoint, "x-acs-action": "GetMainDomainName",
               "x-acs-version": "2015-01-09", "x-acs-date": Utils.get_timestamp(),
               "x-acs-signature-nonce": Utils.get_nonce(), "accept": "application/json",
               "x-acs-content-sha256": hashlib.sha256(b"").hexdigest()}
    req = SimpleNamespace(pathname="/", method="POST", query=query, headers=headers)
    headers["Authorization"] = Utils.get_authorization(
        req, "ACS3-HMAC-SHA256", headers["x-acs-content-sha256"], emu.access_key_id,
        emu.access_key_secret)
    return f"http://{emu.endpoint}/", headers


def test_replayed_nonce_tampering_and_missing_signature(aliyun: AliyunEmulator) -> None:
    aliyun.add_dns_zone("example.test")
    url, headers = _signed_v3(aliyun, {"InputString": "x.example.test"})
    first = requests.post(url, params={"InputString": "x.example.test"}, headers=headers,
                          timeout=5)
    assert first.status_code == 200, first.text
    replay = requests.post(url, params={"InputString": "x.example.test"}, headers=headers,
                           timeout=5)
    assert (replay.status_code, replay.json()["Code"]) == (400, "SignatureNonceUsed")

    url, headers = _signed_v3(aliyun, {"InputString": "x.example.test"})
    tampered = requests.post(url, params={"InputString": "y.example.test"}, headers=headers,
                             timeout=5)
    assert (tampered.status_code, tampered.json()["Code"]) == (400, "SignatureDoesNotMatch")

    bare = requests.post(url, params={"InputString": "x.example.test"},
                         headers={"x-acs-action": "GetMainDomainName",
                                  "x-acs-version": "2015-01-09"}, timeout=5)
    body = bare.json()
    assert (bare.status_code, body["Code"]) == (400, "IncompleteSignature")
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}


def test_unknown_action_and_missing_parameter(aliyun: AliyunEmulator) -> None:
    from alibabacloud_cas20200407 import models as m
    from alibabacloud_tea_openapi.client import Client as OpenApi
    from alibabacloud_tea_openapi.utils_models import OpenApiRequest, Params
    from darabonba.runtime import RuntimeOptions
    raw = sdk(OpenApi, aliyun)
    params = Params(action="NoSuchAction", version="2020-04-07", protocol="HTTPS",
                    pathname="/", method="POST", auth_type="AK", style="RPC",
                    req_body_type="formData", body_type="json")
    with pytest.raises(ClientException) as exc:
        raw.call_api(params, OpenApiRequest(query={}), RuntimeOptions())
    assert (exc.value.code, exc.value.status_code) == ("InvalidAction.NotFound", 404)

    with pytest.raises(ClientException) as exc:
        cas_client(aliyun).upload_user_certificate(
            m.UploadUserCertificateRequest(cert="x", key="y"))
    assert (exc.value.code, exc.value.status_code) == ("MissingName", 400)


# ----------------------------------------------------------------- faults
def test_throttling_5xx_and_latency(aliyun: AliyunEmulator) -> None:
    from alibabacloud_alidns20150109 import models as m
    aliyun.add_dns_zone("example.test")
    client = dns_client(aliyun)
    req = m.GetMainDomainNameRequest(input_string="www.example.test")

    aliyun.faults.throttle("GetMainDomainName", count=2, retry_after_ms=300)
    aliyun.faults.throttle("SomethingElse")
    for _ in range(2):
        with pytest.raises(ThrottlingException) as exc:
            client.get_main_domain_name(req)
        assert (exc.value.code, exc.value.status_code) == ("Throttling.User", 400)
        assert exc.value.retry_after == 300
    assert client.get_main_domain_name(req).body.rr == "www"

    aliyun.faults.fail_5xx(1)
    with pytest.raises(ServerException) as sexc:
        client.get_main_domain_name(req)
    assert (sexc.value.code, sexc.value.status_code) == ("ServiceUnavailable", 503)
    assert client.get_main_domain_name(req).body.rr == "www"

    aliyun.faults.latency(0.3)
    t0 = time.monotonic()
    client.get_main_domain_name(req)
    assert time.monotonic() - t0 >= 0.3
    aliyun.faults.reset()
    aliyun.faults.throttle("SomethingElse")  # reset cleared rules; this one never matches
    assert client.get_main_domain_name(req).body.rr == "www"
    assert [c for _, c in aliyun.errors] == ["Throttling.User"] * 2 + ["ServiceUnavailable"]


def test_env_and_config_toml(aliyun: AliyunEmulator) -> None:
    cfg = tomllib.loads(aliyun.config_toml())
    assert cfg["aliyun"]["protocol"] == "http"
    assert cfg["aliyun"]["region"] == "cn-hangzhou"
    endpoints = cfg["aliyun"]["endpoints"]  # every registered service, new ones included
    assert endpoints == {n: aliyun.endpoint for n in service_names()}
    assert set(endpoints) >= {"cas", "cdn", "dcdn", "apigateway", "alidns", "mqtt", "slb",
                              "alb", "nlb"}
    env = aliyun.env()
    assert env["ALIBABA_CLOUD_ACCESS_KEY_ID"] == aliyun.access_key_id
    assert env["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] == "true"


# ----------------------------------------------------------------- CAS
def test_cas_upload_list_detail_delete(aliyun: AliyunEmulator, ca: Any) -> None:
    from alibabacloud_cas20200407 import models as m
    client = cas_client(aliyun)
    cid, leaf = upload(aliyun, ca, "example.test-1", "example.test")
    stored = aliyun.state.cas_certs[cid]
    assert stored["SerialNo"] == format(leaf.serial_number, "x")
    assert stored["Fingerprint"] == leaf.fingerprint(hashes.SHA1()).hex().upper()
    assert stored["Sha2"] == leaf.fingerprint(hashes.SHA256()).hex().upper()

    with pytest.raises(ClientException) as exc:
        upload(aliyun, ca, "example.test-1", "other.test")
    assert exc.value.code == "NameRepeat"
    assert "already exists" in exc.value.message
    with pytest.raises(ClientException):
        upload(aliyun, ca, "n" * 64)
    other_cert, _ = make_leaf(ca, "mismatch.test")
    with pytest.raises(ClientException) as exc:
        client.upload_user_certificate(m.UploadUserCertificateRequest(
            name="mismatch", cert=pem(other_cert), key=pem(ec.generate_private_key(
                ec.SECP256R1()))))
    assert exc.value.code == "CertificateKeyMismatch"

    for i in range(2, 6):
        upload(aliyun, ca, f"other-{i}", f"site{i}.test")
    default = client.list_user_certificate_order(m.ListUserCertificateOrderRequest())
    assert default.body.total_count == 0  # CPACK lists orders, not uploads
    seen: list[int] = []
    for page_no in (1, 2, 3):
        r = client.list_user_certificate_order(m.ListUserCertificateOrderRequest(
            order_type="UPLOAD", current_page=page_no, show_size=2))
        assert r.body.total_count == 5
        seen += [o.certificate_id for o in r.body.certificate_order_list]
    assert len(seen) == 5 and cid in seen
    found = client.list_user_certificate_order(m.ListUserCertificateOrderRequest(
        order_type="CERT", keyword="example.test")).body.certificate_order_list
    assert [(o.certificate_id, o.serial_no, o.fingerprint, o.common_name) for o in found] == [
        (cid, stored["SerialNo"], stored["Fingerprint"], "example.test")]

    d = client.get_user_certificate_detail(m.GetUserCertificateDetailRequest(cert_id=cid)).body
    assert d.cert_identifier == f"{cid}-cn-hangzhou"
    assert d.cert.startswith("-----BEGIN CERTIFICATE-----") and "PRIVATE KEY" in d.key
    assert d.sans == "example.test,*.example.test" and d.common == "example.test"
    assert d.not_after == int(leaf.not_valid_after_utc.timestamp() * 1000)
    assert [c.common_name for c in d.cert_chain] == ["example.test", "acmeali emulator test CA"]
    filtered = client.get_user_certificate_detail(
        m.GetUserCertificateDetailRequest(cert_id=cid, cert_filter=True)).body
    assert filtered.cert is None and filtered.key is None and filtered.serial_no

    aliyun.add_cdn_domain("static.example.test")
    from alibabacloud_cdn20180510 import models as cm
    cdn_client(aliyun).set_cdn_domain_sslcertificate(cm.SetCdnDomainSSLCertificateRequest(
        domain_name="static.example.test", sslprotocol="on", cert_type="cas", cert_id=cid,
        cert_region="cn-hangzhou"))
    # ListCertificates reports who uses it; DeleteUserCertificate documents no refusal.
    aliyun.bind_by_hand(cid, "SLB", "lb.example.test")
    listed = client.list_certificates(m.ListCertificatesRequest(
        keyword=stored["Name"], show_size=100)).body.certificate_list
    assert [(c.certificate_id, c.using_product_list) for c in listed] == [
        (str(cid), ["CDN", "SLB"])]
    with pytest.raises(ClientException) as exc:
        client.list_certificates(m.ListCertificatesRequest(show_size=101))
    client.delete_user_certificate(m.DeleteUserCertificateRequest(cert_id=cid))
    assert cid not in aliyun.state.cas_certs
    with pytest.raises(ClientException):
        client.get_user_certificate_detail(m.GetUserCertificateDetailRequest(cert_id=cid))


# ----------------------------------------------------------------- CDN / DCDN
def test_cdn_bind_describe_and_discover(aliyun: AliyunEmulator, ca: Any) -> None:
    from alibabacloud_cdn20180510 import models as m
    client = cdn_client(aliyun)
    cid, leaf = upload(aliyun, ca, "example.test-cdn")
    for name in ("static.example.test", "img.example.test", "www.other.test"):
        aliyun.add_cdn_domain(name)

    with pytest.raises(ClientException) as exc:
        client.set_cdn_domain_sslcertificate(m.SetCdnDomainSSLCertificateRequest(
            domain_name="nope.example.test", sslprotocol="on", cert_type="cas", cert_id=cid))
    assert exc.value.code == "InvalidDomain.NotFound"
    with pytest.raises(ClientException):
        client.set_cdn_domain_sslcertificate(m.SetCdnDomainSSLCertificateRequest(
            domain_name="static.example.test", sslprotocol="on", cert_type="cas",
            cert_id=999))
    with pytest.raises(ClientException):  # the certificate lives in the China-site CAS
        client.set_cdn_domain_sslcertificate(m.SetCdnDomainSSLCertificateRequest(
            domain_name="static.example.test", sslprotocol="on", cert_type="cas",
            cert_id=cid, cert_region="ap-southeast-1"))

    client.set_cdn_domain_sslcertificate(m.SetCdnDomainSSLCertificateRequest(
        domain_name="static.example.test", sslprotocol="on", cert_type="cas", cert_id=cid,
        cert_region="cn-hangzhou"))
    assert aliyun.state.cdn_domains["static.example.test"]["CertId"] == cid
    info = client.describe_domain_certificate_info(m.DescribeDomainCertificateInfoRequest(
        domain_name="static.example.test")).body.cert_infos.cert_info[0]
    assert (info.cert_id, info.cert_type, info.cert_region, info.server_certificate_status,
            info.status) == (str(cid), "cas", "cn-hangzhou", "on", "success")
    assert info.cert_name == "example.test-cdn" and info.cert_domain_name == "example.test"
    assert info.cert_expire_time == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")

    all_ = client.describe_user_domains(m.DescribeUserDomainsRequest(page_size=2))
    assert all_.body.total_count == 3 and len(all_.body.domains.page_data) == 2
    p2 = client.describe_user_domains(m.DescribeUserDomainsRequest(page_size=2, page_number=2))
    assert [d.domain_name for d in p2.body.domains.page_data] == ["www.other.test"]
    fuzzy = client.describe_user_domains(m.DescribeUserDomainsRequest(
        domain_name="example.test", domain_search_type="fuzzy_match")).body.domains.page_data
    assert sorted(d.domain_name for d in fuzzy) == ["img.example.test", "static.example.test"]
    assert {d.domain_name: d.ssl_protocol for d in fuzzy}["static.example.test"] == "on"
    full = client.describe_user_domains(m.DescribeUserDomainsRequest(
        domain_name="img.example.test", domain_search_type="full_match")).body
    assert [d.domain_status for d in full.domains.page_data] == ["online"]
    with pytest.raises(ClientException):
        client.describe_user_domains(m.DescribeUserDomainsRequest(page_size=501))

    https = client.describe_cdn_https_domain_list(m.DescribeCdnHttpsDomainListRequest()).body
    assert https.total_count == 1
    assert https.cert_infos.cert_info[0].domain_name == "static.example.test"
    assert https.cert_infos.cert_info[0].cert_status == "ok"


def test_dcdn_bind_and_describe(aliyun: AliyunEmulator, ca: Any) -> None:
    from alibabacloud_dcdn20180115 import models as m
    client = dcdn_client(aliyun)
    cid, _ = upload(aliyun, ca, "example.test-dcdn")
    aliyun.add_dcdn_domain("edge.example.test")
    with pytest.raises(ClientException) as exc:
        client.set_dcdn_domain_sslcertificate(m.SetDcdnDomainSSLCertificateRequest(
            domain_name="other.example.test", sslprotocol="on", cert_type="cas",
            cert_id=cid))
    assert exc.value.code == "InvalidDomain.NotFound"
    client.set_dcdn_domain_sslcertificate(m.SetDcdnDomainSSLCertificateRequest(
        domain_name="edge.example.test", sslprotocol="on", cert_type="cas", cert_id=cid,
        cert_region="cn-hangzhou", cert_name="mine"))
    info = client.describe_dcdn_domain_certificate_info(
        m.DescribeDcdnDomainCertificateInfoRequest(domain_name="edge.example.test")
    ).body.cert_infos.cert_info[0]
    assert (info.cert_id, info.cert_name, info.sslprotocol, info.status) == (
        str(cid), "mine", "on", "success")
    doms = client.describe_dcdn_user_domains(m.DescribeDcdnUserDomainsRequest(
        domain_name="edge", domain_search_type="pre_match")).body
    assert doms.total_count == 1
    assert doms.domains.page_data[0].sslprotocol == "on"


# ----------------------------------------------------------------- API Gateway
def test_apigateway_domain_certificate(aliyun: AliyunEmulator, ca: Any) -> None:
    from alibabacloud_cloudapi20160714 import models as m
    client = apigw_client(aliyun)
    group = "a1b2c3d4e5f6"
    aliyun.add_apigateway_domain(group, "api.example.test")
    cert, key = make_leaf(ca, "api.example.test", ("api.example.test",))
    with pytest.raises(ClientException):
        client.set_domain_certificate(m.SetDomainCertificateRequest(
            group_id="nosuchgroup", domain_name="api.example.test", certificate_name="c",
            certificate_body=pem(cert), certificate_private_key=pem(key)))
    with pytest.raises(ClientException) as exc:
        client.set_domain_certificate(m.SetDomainCertificateRequest(
            group_id=group, domain_name="api.example.test", certificate_name="c",
            certificate_body=pem(cert),
            certificate_private_key=pem(ec.generate_private_key(ec.SECP256R1()))))
    assert exc.value.code == "CertificateKeyMismatch"

    client.set_domain_certificate(m.SetDomainCertificateRequest(
        group_id=group, domain_name="api.example.test", certificate_name="api-1",
        certificate_body=pem(cert) + pem(ca[0]), certificate_private_key=pem(key)))
    d = client.describe_domain(m.DescribeDomainRequest(
        group_id=group, domain_name="api.example.test")).body
    assert d.certificate_name == "api-1" and d.certificate_id
    assert d.certificate_body.startswith("-----BEGIN CERTIFICATE-----")
    assert d.certificate_valid_end == int(cert.not_valid_after_utc.timestamp() * 1000)
    assert d.domain_binding_status == "BINDING"
    g = client.describe_api_group(m.DescribeApiGroupRequest(group_id=group)).body
    items = g.custom_domains.domain_item
    assert [(i.domain_name, i.certificate_id) for i in items] == [
        ("api.example.test", d.certificate_id)]

    with pytest.raises(ClientException):
        client.delete_domain_certificate(m.DeleteDomainCertificateRequest(
            group_id=group, domain_name="api.example.test", certificate_id="wrong"))
    client.delete_domain_certificate(m.DeleteDomainCertificateRequest(
        group_id=group, domain_name="api.example.test", certificate_id=d.certificate_id))
    assert aliyun.state.apigw_domains[(group, "api.example.test")]["CertificateId"] is None


# ----------------------------------------------------------------- Alidns
def _txt(pebble: Any, name: str) -> list[str]:
    import dns.resolver
    host, port = pebble.challtestsrv.dns_address.rsplit(":", 1)
    res = dns.resolver.Resolver(configure=False)
    res.nameservers, res.port = [host], int(port)
    try:
        answer = res.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    return sorted(b"".join(r.strings).decode() for r in answer)


def test_alidns_records_forward_txt_to_challtestsrv(aliyun: AliyunEmulator,
                                                    request: pytest.FixtureRequest) -> None:
    from alibabacloud_alidns20150109 import models as m
    pebble = request.getfixturevalue("pebble")
    client = dns_client(aliyun)
    zone = f"z{int(time.time() * 1000)}.test"  # unique: challtestsrv is session-wide
    aliyun.add_dns_zone(zone)
    aliyun.add_dns_zone(f"sub.{zone}")
    # By public suffix, not by the zones hosted: the delegated sub-zone is not the answer.
    main = client.get_main_domain_name(m.GetMainDomainNameRequest(
        input_string=f"_acme-challenge.www.sub.{zone}")).body
    assert (main.domain_name, main.rr) == (zone, "_acme-challenge.www.sub")
    main = client.get_main_domain_name(m.GetMainDomainNameRequest(
        input_string="x.unknown.test")).body
    assert main.domain_name == "unknown.test"
    listed = client.describe_domains(m.DescribeDomainsRequest(page_size=100)).body
    assert {(d.domain_name, d.puny_code) for d in listed.domains.domain} >= {
        (zone, zone), (f"sub.{zone}", f"sub.{zone}")}
    with pytest.raises(ClientException):
        client.describe_domains(m.DescribeDomainsRequest(page_size=101))

    name = f"_acme-challenge.{zone}"
    add = m.AddDomainRecordRequest(domain_name=zone, rr="_acme-challenge", type="TXT",
                                   value="apex-token")
    apex_id = client.add_domain_record(add).body.record_id
    wild_id = client.add_domain_record(m.AddDomainRecordRequest(
        domain_name=zone, rr="_acme-challenge", type="TXT", value="wild-token", ttl=120)
    ).body.record_id
    assert isinstance(apex_id, str) and apex_id != wild_id
    assert _txt(pebble, name) == ["apex-token", "wild-token"]
    with pytest.raises(ClientException) as exc:
        client.add_domain_record(add)
    assert exc.value.code == "DomainRecordDuplicate"
    with pytest.raises(ClientException) as exc:
        client.add_domain_record(m.AddDomainRecordRequest(
            domain_name="notmine.test", rr="x", type="TXT", value="v"))
    assert exc.value.code == "IncorrectDomainUser"

    sub = client.describe_sub_domain_records(m.DescribeSubDomainRecordsRequest(
        sub_domain=name, type="TXT")).body
    assert sub.total_count == 2
    assert {r.record_id: r.ttl for r in sub.domain_records.record} == {apex_id: 600,
                                                                        wild_id: 120}
    with pytest.raises(ClientException):  # DescribeSubDomainRecords: PageSize <= 100
        client.describe_sub_domain_records(m.DescribeSubDomainRecordsRequest(
            sub_domain=name, type="TXT", page_size=500))

    client.delete_domain_record(m.DeleteDomainRecordRequest(record_id=apex_id))
    assert _txt(pebble, name) == ["wild-token"]
    with pytest.raises(ClientException) as exc:
        client.delete_domain_record(m.DeleteDomainRecordRequest(record_id=apex_id))
    assert exc.value.code == "DomainRecordNotBelongToUser"

    for i in range(3):
        client.add_domain_record(m.AddDomainRecordRequest(
            domain_name=zone, rr=f"host{i}", type="A", value=f"192.0.2.{i + 1}"))
    client.add_domain_record(m.AddDomainRecordRequest(domain_name=zone, rr="@", type="TXT",
                                                      value="apex-txt"))
    assert _txt(pebble, zone) == ["apex-txt"]
    a_page = client.describe_domain_records(m.DescribeDomainRecordsRequest(
        domain_name=zone, type_key_word="A", page_size=2, page_number=2)).body
    assert a_page.total_count == 3
    assert [r.rr for r in a_page.domain_records.record] == ["host2"]
    kw = client.describe_domain_records(m.DescribeDomainRecordsRequest(
        domain_name=zone, rrkey_word="acme")).body
    assert [r.record_id for r in kw.domain_records.record] == [wild_id]

    client.delete_domain_record(m.DeleteDomainRecordRequest(record_id=wild_id))
    assert _txt(pebble, name) == []


# ----------------------------------------------------------------- MQTT
def test_mqtt_ca_registration_cycle_and_devices(aliyun: AliyunEmulator) -> None:
    from alibabacloud_onsmqtt20200420 import models as m
    client = mqtt_client(aliyun)
    inst = "post-cn-test001"
    code = aliyun.add_mqtt_instance(inst)
    got = client.get_register_code(m.GetRegisterCodeRequest(mqtt_instance_id=inst)).body
    assert got.register_code == code
    assert aliyun.log[-1]["method"] == "GET"

    ca = make_ca("device CA")
    verification, _ = make_leaf(ca, code)
    stranger = make_ca("someone else's CA")

    def register(ca_cert: x509.Certificate, ver: x509.Certificate) -> Any:
        return client.register_ca_certificate(m.RegisterCaCertificateRequest(
            mqtt_instance_id=inst, ca_name="my-ca", ca_content=pem(ca_cert),
            verification_content=pem(ver)))

    with pytest.raises(ClientException) as exc:  # CN is not the registration code
        register(ca[0], make_leaf(ca, "not-the-code")[0])
    assert "registration code" in exc.value.message
    with pytest.raises(ClientException) as exc:  # signed by another CA's key
        register(ca[0], make_leaf(stranger, code)[0])
    assert "not signed" in exc.value.message
    not_ca = make_ca("leafy", ca=False)
    with pytest.raises(ClientException):  # not a CA certificate
        register(not_ca[0], make_leaf(not_ca, code)[0])

    sn = register(ca[0], verification).body.sn
    assert sn == format(ca[0].serial_number, "x")
    with pytest.raises(ClientException):
        register(ca[0], verification)

    listed = client.list_ca_certificate(m.ListCaCertificateRequest(
        mqtt_instance_id=inst, page_no="1", page_size="10")).body.data
    assert listed.total == 1
    vo = listed.ca_certificate_vos[0]
    assert (vo.sn, vo.ca_name, vo.status) == (sn, "my-ca", "1")
    assert vo.valid_end == str(int(ca[0].not_valid_after_utc.timestamp() * 1000))
    one = client.get_ca_certificate(m.GetCaCertificateRequest(mqtt_instance_id=inst, sn=sn))
    assert one.body.data.registration_code == code

    device, _ = make_leaf(ca, "device-001")
    dsn = aliyun.register_device(inst, pem(device))
    with pytest.raises(PermissionError):
        aliyun.register_device(inst, pem(make_leaf(stranger, "intruder")[0]))
    devs = client.list_device_certificate_by_ca_sn(m.ListDeviceCertificateByCaSnRequest(
        mqtt_instance_id=inst, ca_sn=sn, page_no="1", page_size="10")).body.data
    assert [(d.device_sn, d.device_name, d.status) for d in devs.device_certificate_vos] == [
        (dsn, "device-001", "1")]
    assert client.list_device_certificate(m.ListDeviceCertificateRequest(
        mqtt_instance_id=inst, page_no="1", page_size="10")).body.data.total == 1
    dev_req = {"mqtt_instance_id": inst, "ca_sn": sn, "device_sn": dsn}
    client.inactivate_device_certificate(m.InactivateDeviceCertificateRequest(**dev_req))
    assert client.get_device_certificate(m.GetDeviceCertificateRequest(**dev_req)
                                         ).body.data.status == "0"
    with pytest.raises(PermissionError):
        aliyun.register_device(inst, pem(device))
    client.active_device_certificate(m.ActiveDeviceCertificateRequest(**dev_req))
    assert aliyun.register_device(inst, pem(device)) == dsn

    client.inactivate_ca_certificate(m.InactivateCaCertificateRequest(
        mqtt_instance_id=inst, sn=sn))
    assert client.get_ca_certificate(m.GetCaCertificateRequest(
        mqtt_instance_id=inst, sn=sn)).body.data.status == "0"
    with pytest.raises(PermissionError):
        aliyun.register_device(inst, pem(make_leaf(ca, "device-002")[0]))
    client.active_ca_certificate(m.ActiveCaCertificateRequest(mqtt_instance_id=inst, sn=sn))
    assert aliyun.state.mqtt[inst]["CaCertificates"][sn]["Status"] == "1"

    client.delete_device_certificate(m.DeleteDeviceCertificateRequest(**dev_req))
    with pytest.raises(ClientException):
        client.get_device_certificate(m.GetDeviceCertificateRequest(**dev_req))
    client.delete_ca_certificate(m.DeleteCaCertificateRequest(mqtt_instance_id=inst, sn=sn))
    assert client.list_ca_certificate(m.ListCaCertificateRequest(
        mqtt_instance_id=inst, page_no="1", page_size="10")).body.data.total == 0
    with pytest.raises(ClientException) as exc:
        client.get_register_code(m.GetRegisterCodeRequest(mqtt_instance_id="no-such"))
    assert (exc.value.code, exc.value.status_code) == ("MqttInstanceNotFound", 400)
