"""Deployers against the signature-verifying emulator, through the real Alibaba SDKs."""

from __future__ import annotations

from pathlib import Path

import pytest

from acmeali.deployers import deploy
from acmeali.lineage import LineageMeta
from tests.emulator import AliyunEmulator
from tests.test_deploy_helpers import (
    Lineage,
    TinyCA,
    captured,
    live_paths,
    make_lineage,
    make_ui,
    settings_for,
)


@pytest.fixture
def ca() -> TinyCA:
    return TinyCA()


def _renew(ca: TinyCA, lin: Lineage, names: list[str] | None = None) -> Lineage:
    """A new certificate for the same lineage (what renewal would store)."""
    assert lin.meta.current is not None
    return make_lineage(ca, names or lin.meta.domains, meta=lin.meta,
                        version=lin.meta.current.version + 1)


def _run(emu: AliyunEmulator, lin: Lineage, targets: list[str], **kw: object
         ) -> dict[str, tuple[bool, str]]:
    settings = kw.pop("settings", None) or settings_for(emu)
    ui = kw.pop("ui", None) or make_ui()
    outcomes = deploy(lin.meta, lin.bundle, targets, settings=settings, ui=ui,  # type: ignore[arg-type]
                      **kw)  # type: ignore[arg-type]
    return {o.target: (o.ok, o.message) for o in outcomes}


def _ours(emu: AliyunEmulator) -> dict[int, dict[str, object]]:
    return {cid: c for cid, c in emu.state.cas_certs.items()
            if str(c["Name"]).startswith("acmeali-")}


# --------------------------------------------------------------------------- cas
def test_cas_upload_then_reuse(emu: AliyunEmulator, ca: TinyCA) -> None:
    lin = make_lineage(ca, ["example.test", "*.example.test"])
    res = _run(emu, lin, ["cas"])
    assert res["cas"][0], res
    assert len(emu.state.cas_certs) == 1
    cert_id, stored = next(iter(emu.state.cas_certs.items()))
    assert str(stored["Sha2"]).lower() == lin.fingerprint
    assert "BEGIN PRIVATE KEY" in str(stored["Key"])  # PKCS#8, though the store had SEC1
    assert str(stored["Cert"]).count("BEGIN CERTIFICATE") == 2  # leaf + intermediate
    assert len(str(stored["Name"])) <= 63
    dep = lin.meta.deployments["cas"]
    assert dep.ok and dep.fingerprint == lin.fingerprint
    assert dep.details["cert_id"] == cert_id
    assert dep.details["identifier"] == f"{cert_id}-cn-hangzhou"
    assert lin.meta.cas_uploads[0]["cert_id"] == cert_id and lin.meta.cas_uploads[0]["acmeali"]

    res = _run(emu, lin, ["cas"])
    assert res["cas"][0] and "already in CAS" in res["cas"][1]
    assert len(emu.calls_of("UploadUserCertificate")) == 1


def test_cas_finds_an_upload_whose_answer_was_lost(emu: AliyunEmulator, ca: TinyCA) -> None:
    """Metadata forgot the upload (crash after the call): the listing finds it, no copy."""
    lin = make_lineage(ca, ["lost.example.test"])
    assert _run(emu, lin, ["cas"])["cas"][0]
    lin.meta.cas_uploads.clear()
    lin.meta.deployments.clear()
    res = _run(emu, lin, ["cas"])
    assert res["cas"][0], res
    assert len(emu.calls_of("UploadUserCertificate")) == 1
    listing = emu.calls_of("ListUserCertificateOrder")
    assert listing and listing[-1]["OrderType"] == "UPLOAD"
    assert lin.meta.cas_uploads[0]["acmeali"]  # recognised by its name as ours


def test_cas_pages_through_other_uploads(emu: AliyunEmulator, ca: TinyCA) -> None:
    """60 foreign certificates for the same CN: the match is on the second page."""
    from acmeali.aliyun import call, make_client

    client = make_client("cas", settings_for(emu))
    for i in range(60):
        key, cert, chain = ca.issue(["paged.example.test"])
        call(client, "UploadUserCertificate", {"Name": f"foreign-{i}", "Cert": (cert + chain)
                                               .decode(), "Key": key.decode()})
    lin = make_lineage(ca, ["paged.example.test"])
    key_pem = lin.bundle.privkey.decode()
    call(client, "UploadUserCertificate", {"Name": "zz-by-hand",
                                           "Cert": lin.bundle.fullchain.decode(), "Key": key_pem})
    res = _run(emu, lin, ["cas"])
    assert res["cas"][0], res
    assert len(emu.calls_of("UploadUserCertificate")) == 61  # no new upload
    pages = [p["CurrentPage"] for p in emu.calls_of("ListUserCertificateOrder")]
    assert pages == ["1", "2"]
    entry = lin.meta.cas_uploads[0]
    assert entry["name"] == "zz-by-hand" and entry["acmeali"] is False


def test_cleanup_keeps_one_previous_and_never_foreign(emu: AliyunEmulator, ca: TinyCA) -> None:
    from acmeali.aliyun import call, make_client

    foreign_key, foreign_cert, foreign_chain = ca.issue(["keep.example.test"])
    call(make_client("cas", settings_for(emu)), "UploadUserCertificate", {
        "Name": "uploaded-by-hand", "Cert": (foreign_cert + foreign_chain).decode(),
        "Key": foreign_key.decode()})
    lin = make_lineage(ca, ["keep.example.test"])
    ids = []
    for _ in range(4):
        assert _run(emu, lin, ["cas"])["cas"][0]
        ids.append(lin.meta.deployments["cas"].details["cert_id"])
        lin = _renew(ca, lin)
    # After the 4th deploy: current = ids[3], previous kept = ids[2], ids[0..1] deleted.
    remaining = set(emu.state.cas_certs)
    assert ids[3] in remaining and ids[2] in remaining
    assert ids[0] not in remaining and ids[1] not in remaining
    assert any(c["Name"] == "uploaded-by-hand" for c in emu.state.cas_certs.values())
    assert {e["cert_id"] for e in lin.meta.cas_uploads} == {ids[2], ids[3]}


def test_cleanup_can_be_turned_off(emu: AliyunEmulator, ca: TinyCA) -> None:
    lin = make_lineage(ca, ["off.example.test"])
    settings = settings_for(emu, cas_cleanup_old=False)
    for _ in range(3):
        assert _run(emu, lin, ["cas"], settings=settings)["cas"][0]
        lin = _renew(ca, lin)
    assert len(_ours(emu)) == 3
    assert not emu.calls_of("DeleteUserCertificate")


# --------------------------------------------------------------------------- cdn / dcdn
def test_cdn_and_dcdn_bound_by_cas_reference(emu: AliyunEmulator, ca: TinyCA) -> None:
    emu.add_cdn_domain("static.example.test")
    emu.add_dcdn_domain("www.example.test")
    lin = make_lineage(ca, ["example.test", "*.example.test"])
    targets = ["cdn:static.example.test", "dcdn:www.example.test"]
    res = _run(emu, lin, targets)
    assert all(ok for ok, _ in res.values()), res
    assert len(emu.calls_of("UploadUserCertificate")) == 1  # one upload for both
    cert_id = lin.meta.cas_uploads[0]["cert_id"]
    for domains in (emu.state.cdn_domains, emu.state.dcdn_domains):
        (dom,) = domains.values()
        assert dom["CertId"] == cert_id and dom["CertType"] == "cas"
        assert dom["SslProtocol"] == "on" and dom["CertRegion"] == "cn-hangzhou"
    for t in targets:
        assert lin.meta.deployments[t].details["cert_id"] == cert_id
    # confirmed by reading back
    assert emu.calls_of("DescribeDomainCertificateInfo")
    assert emu.calls_of("DescribeDcdnDomainCertificateInfo")

    res = _run(emu, lin, targets)  # idempotent: nothing set again
    assert all(ok for ok, _ in res.values()), res
    assert len(emu.calls_of("SetCdnDomainSSLCertificate")) == 1
    assert len(emu.calls_of("SetDcdnDomainSSLCertificate")) == 1


def test_renewal_moves_cdn_and_deletes_the_old_upload(emu: AliyunEmulator, ca: TinyCA) -> None:
    emu.add_cdn_domain("static.example.test")
    lin = make_lineage(ca, ["static.example.test"])
    settings = settings_for(emu, cas_keep_previous=0)
    assert _run(emu, lin, ["cdn:static.example.test"], settings=settings)[
        "cdn:static.example.test"][0]
    old_id = lin.meta.cas_uploads[0]["cert_id"]
    lin = _renew(ca, lin)
    res = _run(emu, lin, ["cdn:static.example.test"], settings=settings)
    assert res["cdn:static.example.test"][0], res
    new_id = emu.state.cdn_domains["static.example.test"]["CertId"]
    assert new_id != old_id
    assert old_id not in emu.state.cas_certs  # deleted once the domain moved
    assert [e["cert_id"] for e in lin.meta.cas_uploads] == [new_id]


def test_international_site_uses_ap_southeast_1(emu: AliyunEmulator, ca: TinyCA) -> None:
    emu.add_cdn_domain("intl.example.test")
    lin = make_lineage(ca, ["intl.example.test"])
    res = _run(emu, lin, ["cdn:intl.example.test"],
               settings=settings_for(emu, site="international"))
    call = emu.calls_of("SetCdnDomainSSLCertificate")
    assert call and call[0]["CertRegion"] == "ap-southeast-1", (res, emu.errors)


def test_cdn_auto_over_several_pages(emu: AliyunEmulator, ca: TinyCA) -> None:
    for i in range(1203):
        emu.add_cdn_domain(f"d{i:04d}.other.test")
    emu.add_cdn_domain("a.example.test", https=True)
    emu.add_cdn_domain("z.example.test", https=True)
    emu.add_cdn_domain("deep.a.example.test", https=True)  # two labels below: not covered
    emu.add_cdn_domain("example.test", https=True)
    lin = make_lineage(ca, ["example.test", "*.example.test"])
    res = _run(emu, lin, ["cdn:auto"])
    assert res["cdn:auto"][0], res
    pages = [p["PageNumber"] for p in emu.calls_of("DescribeUserDomains")]
    assert pages == ["1", "2", "3"]
    bound = {d for d, v in emu.state.cdn_domains.items() if v["CertId"] is not None}
    assert bound == {"a.example.test", "z.example.test", "example.test"}
    assert set(lin.meta.deployments["cdn:auto"].details["domains"]) == bound


def test_cdn_domain_not_covered_is_refused(emu: AliyunEmulator, ca: TinyCA) -> None:
    emu.add_cdn_domain("static.other.test")
    lin = make_lineage(ca, ["example.test"])
    ok, msg = _run(emu, lin, ["cdn:static.other.test"])["cdn:static.other.test"]
    assert not ok and "does not cover" in msg
    assert not emu.calls_of("SetCdnDomainSSLCertificate")


# --------------------------------------------------------------------------- apigateway
def test_apigateway_full_chain_and_confirmation(emu: AliyunEmulator, ca: TinyCA) -> None:
    emu.add_apigateway_domain("abc123", "api.example.test")
    lin = make_lineage(ca, ["api.example.test"])
    res = _run(emu, lin, ["apigateway:abc123:api.example.test"])
    assert res["apigateway:abc123:api.example.test"][0], res
    dom = emu.state.apigw_domains[("abc123", "api.example.test")]
    assert str(dom["CertificateBody"]).count("BEGIN CERTIFICATE") == 2
    assert "BEGIN PRIVATE KEY" in str(dom["CertificatePrivateKey"])
    assert not dom["CaCertificateBody"]
    details = lin.meta.deployments["apigateway:abc123:api.example.test"].details
    assert details["certificate_id"] == dom["CertificateId"]
    assert len(emu.calls_of("DescribeDomain")) == 2  # before and after
    res = _run(emu, lin, ["apigateway:cn-hangzhou:abc123:api.example.test"])
    assert res["apigateway:cn-hangzhou:abc123:api.example.test"][0]
    assert len(emu.calls_of("SetDomainCertificate")) == 1  # already there


# --------------------------------------------------------------------------- mqtt / hook
def test_mqtt_server_prints_identifier_and_console_step(emu: AliyunEmulator,
                                                        ca: TinyCA) -> None:
    emu.add_mqtt_instance("post-cn-test1")
    lin = make_lineage(ca, ["mqtt.example.test"])
    ui = make_ui()
    res = _run(emu, lin, ["mqtt-server:post-cn-test1"], ui=ui)
    assert res["mqtt-server:post-cn-test1"][0], res
    (cert_id,) = emu.state.cas_certs
    out, err = captured(ui)
    assert f"{cert_id}-cn-hangzhou" in out
    assert "post-cn-test1" in out and "console" in out
    assert "restarts the instance" in err and "5-10 minutes" in err
    assert "BEGIN PRIVATE KEY" in str(emu.state.cas_certs[cert_id]["Key"])

    # After a renewal the previous CertId stays: the instance may still serve it.
    lin = _renew(ca, lin)
    assert _run(emu, lin, ["mqtt-server:post-cn-test1"], settings=settings_for(
        emu, cas_keep_previous=0))["mqtt-server:post-cn-test1"][0]
    assert cert_id in emu.state.cas_certs


def test_hook_target_gets_paths_in_env(emu: AliyunEmulator, ca: TinyCA, tmp_path: Path) -> None:
    lin = make_lineage(ca, ["hook.example.test"])
    paths = live_paths(tmp_path / "live", lin)
    out = tmp_path / "out.txt"
    target = f'hook:echo "$ACMEALI_LINEAGE $ACMEALI_FULLCHAIN_PATH $ACMEALI_DOMAINS" > {out}'
    res = _run(emu, lin, [target], live_paths=paths)
    assert res[target][0], res
    assert out.read_text().split() == ["hook.example.test", str(paths.fullchain),
                                       "hook.example.test"]
    bad = _run(emu, lin, ["hook:exit 3"], live_paths=paths)
    assert not bad["hook:exit 3"][0]


def test_hook_target_gets_certbots_variables_and_shows_its_output(
        emu: AliyunEmulator, ca: TinyCA, tmp_path: Path) -> None:
    """A `hook:` target is a deploy hook too: certbot's RENEWED_LINEAGE (the live
    directory) and RENEWED_DOMAINS, and what it printed shown at normal verbosity."""
    lin = make_lineage(ca, ["a.example.test", "b.example.test"])
    paths = live_paths(tmp_path / "live", lin)
    out = tmp_path / "out.txt"
    target = f'hook:echo "$RENEWED_LINEAGE|$RENEWED_DOMAINS" > {out}; echo reloaded nginx'
    ui = make_ui()
    res = _run(emu, lin, [target], live_paths=paths, ui=ui)
    assert res[target][0], res
    assert out.read_text().strip() == f"{paths.cert.parent}|a.example.test b.example.test"
    shown = "".join(captured(ui))
    assert "reloaded nginx" in shown and "ran with output" in shown


# --------------------------------------------------------------------------- failures, dry run
def test_one_failure_does_not_stop_the_others(emu: AliyunEmulator, ca: TinyCA) -> None:
    emu.add_cdn_domain("ok.example.test")
    lin = make_lineage(ca, ["ok.example.test", "missing.example.test"])
    res = _run(emu, lin, ["cdn:missing.example.test", "cdn:ok.example.test", "cas"])
    ok, msg = res["cdn:missing.example.test"]
    assert not ok and "InvalidDomain.NotFound" in msg and "RequestId" in msg
    assert res["cdn:ok.example.test"][0] and res["cas"][0]
    dep = lin.meta.deployments["cdn:missing.example.test"]
    assert not dep.ok and dep.error and dep.fingerprint is None
    lin.meta.deploy = ["cdn:missing.example.test", "cdn:ok.example.test", "cas"]
    assert lin.meta.deploy_pending() == ["cdn:missing.example.test"]


def test_dry_run_changes_nothing(emu: AliyunEmulator, ca: TinyCA) -> None:
    emu.add_cdn_domain("static.example.test")
    emu.add_apigateway_domain("g1", "static.example.test")
    lin = make_lineage(ca, ["static.example.test"])
    before = LineageMeta.from_json(lin.meta.to_json())
    ui = make_ui()
    res = _run(emu, lin, ["cas", "cdn:static.example.test", "apigateway:g1:static.example.test"],
               ui=ui, dry_run=True)
    assert all(ok for ok, _ in res.values()), res
    assert not emu.state.cas_certs
    assert emu.state.cdn_domains["static.example.test"]["CertId"] is None
    writes = [a for a, _ in emu.calls if not a.startswith(("Describe", "List", "Get"))]
    assert writes == []
    assert lin.meta.to_json() == before.to_json()
    out, _ = captured(ui)
    assert "would call cas UploadUserCertificate" in out
    assert "would call cdn SetCdnDomainSSLCertificate" in out
    assert "Key=<redacted>" in out and "BEGIN" not in out


def test_unknown_target_is_reported_not_raised(emu: AliyunEmulator, ca: TinyCA) -> None:
    lin = make_lineage(ca, ["x.example.test"])
    res = _run(emu, lin, ["s3:bucket", "cas"])
    assert not res["s3:bucket"][0] and "unknown kind" in res["s3:bucket"][1]
    assert res["cas"][0]


def test_concurrent_deploys_share_clients_safely(emu: AliyunEmulator, ca: TinyCA) -> None:
    """renew deploys several lineages at once: one client per service, no cross-talk."""
    from concurrent.futures import ThreadPoolExecutor

    lineages = []
    for i in range(6):
        emu.add_cdn_domain(f"c{i}.example.test")
        lineages.append(make_lineage(ca, [f"c{i}.example.test"]))
    emu.faults.throttle("SetCdnDomainSSLCertificate", count=3, retry_after_ms=100)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(
            lambda lin: _run(emu, lin, [f"cdn:{lin.meta.domains[0]}"]), lineages))
    assert all(ok for r in results for ok, _ in r.values()), results
    for lin in lineages:
        dom = emu.state.cdn_domains[lin.meta.domains[0]]
        assert dom["CertId"] == lin.meta.cas_uploads[0]["cert_id"]
