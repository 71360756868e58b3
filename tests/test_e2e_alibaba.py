"""The main job end to end: Pebble + the Alibaba Cloud emulator, through the real CLI.

Issue apex + wildcard through Alidns DNS-01 (Pebble really validates the TXT records the
emulator forwards to challtestsrv), deploy to CAS, CDN and API Gateway; a forced renewal
moves every target to the new certificate and deletes the old CAS upload; a throttled and
5xx-bursting cloud is ridden out; a target that failed is retried by the next run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from tests.conftest import run_acmeali
from tests.emulator import AliyunEmulator
from tests.peers.pebble import Pebble

GROUP = "e2egroup0001"


def _setup(tmp_path: Path, pebble: Pebble, emu: AliyunEmulator, *, keep_previous: int = 0
           ) -> dict[str, str]:
    emu.add_dns_zone("example.test")
    emu.add_cdn_domain("static.example.test")
    emu.add_apigateway_domain(GROUP, "api.example.test")
    config = tmp_path / "acmeali.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[acme]\nserver = "{pebble.directory_url}"\nca_bundle = "{pebble.ca_bundle}"\n'
        'email = ["ops@example.test"]\nagree_tos = true\n'
        f'[defaults]\ndns_resolvers = ["{pebble.challtestsrv.dns_address}"]\n'
        "dns_timeout = 60\n"
        + emu.config_toml()
        + f"[aliyun.cas]\nkeep_previous = {keep_previous}\n")
    env = dict(emu.env())
    env["ACMEALI_CONFIG"] = str(config)
    return env


def _leaf(state: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((state / "live" / name / "cert.pem").read_bytes())


def _sha1_upper(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # CAS reports SHA-1


def test_issue_deploy_renew_everywhere(tmp_path: Path, pebble: Pebble,
                                       aliyun: AliyunEmulator) -> None:
    env = _setup(tmp_path, pebble, aliyun)
    proc = run_acmeali("issue", "-d", "example.test", "-d", "*.example.test", "--dns", "alidns",
                       "--deploy", "cas", "--deploy", "cdn:static.example.test",
                       "--deploy", f"apigateway:{GROUP}:api.example.test", env=env)
    assert proc.returncode == 0, proc.stderr
    state = tmp_path / "state"
    leaf = _leaf(state, "example.test")
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == ["*.example.test", "example.test"]

    # The cloud holds exactly the issued certificate, everywhere.
    (cert_id, cas), = aliyun.state.cas_certs.items()
    assert cas["Fingerprint"] == _sha1_upper(leaf)
    assert aliyun.state.cdn_domains["static.example.test"]["CertId"] == cert_id
    gw = aliyun.state.apigw_domains[(GROUP, "api.example.test")]
    fullchain = (state / "live" / "example.test" / "fullchain.pem").read_text()
    assert gw["CertificateBody"].strip() == fullchain.strip()
    # Only our own TXT records were created, and all were cleaned up afterwards.
    assert len(aliyun.calls_of("AddDomainRecord")) == 2
    assert not any(r["Type"] == "TXT" for r in aliyun.state.dns_zones["example.test"].values())

    # A forced renewal moves every target and deletes the old upload (keep_previous = 0).
    proc = run_acmeali("renew", "--force", env=env)
    assert proc.returncode == 0, proc.stderr
    new_leaf = _leaf(state, "example.test")
    assert new_leaf.serial_number != leaf.serial_number
    (new_id, new_cas), = aliyun.state.cas_certs.items()
    assert new_id != cert_id and new_cas["Fingerprint"] == _sha1_upper(new_leaf)
    assert aliyun.state.cdn_domains["static.example.test"]["CertId"] == new_id
    assert [c["CertId"] for c in aliyun.calls_of("DeleteUserCertificate")] == [str(cert_id)]
    gw = aliyun.state.apigw_domains[(GROUP, "api.example.test")]
    assert new_leaf.public_bytes(Encoding.PEM).decode().strip() in gw["CertificateBody"]

    check = run_acmeali("certs", "check", "--json", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["ok"] is True


def test_cloud_faults_ridden_out_and_failed_target_retried(tmp_path: Path, pebble: Pebble,
                                                           aliyun: AliyunEmulator) -> None:
    env = _setup(tmp_path, pebble, aliyun, keep_previous=1)
    # Throttling and a 5xx burst on the way: both are retried within bounds.
    aliyun.faults.throttle(action="AddDomainRecord", count=2, retry_after_ms=100)
    aliyun.faults.fail_5xx(2, action="UploadUserCertificate")
    # A target that cannot work yet: the CDN domain does not exist in the account.
    proc = run_acmeali("issue", "-d", "shop.example.test", "-d", "cdn.shop.example.test",
                       "--dns", "alidns",
                       "--deploy", "cas", "--deploy", "cdn:cdn.shop.example.test", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cdn:cdn.shop.example.test" in proc.stderr
    errors = [code for _, code in aliyun.errors]
    assert errors.count("Throttling.User") == 2 and errors.count("ServiceUnavailable") == 2
    assert len(aliyun.state.cas_certs) == 1  # the CAS target still succeeded

    status = json.loads(run_acmeali("certs", "check", "--json", env=env).stdout)
    assert [p["problem"] for p in status["problems"]] == ["deploy-failed"]

    # The domain appears; the next (routine) renew redeploys only the failed target.
    aliyun.add_cdn_domain("cdn.shop.example.test")
    uploads_before = len(aliyun.calls_of("UploadUserCertificate"))
    proc = run_acmeali("renew", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "redeployed" in proc.stderr
    cert_id = next(iter(aliyun.state.cas_certs))
    assert aliyun.state.cdn_domains["cdn.shop.example.test"]["CertId"] == cert_id
    assert len(aliyun.calls_of("UploadUserCertificate")) == uploads_before  # reused, not re-sent
    assert run_acmeali("certs", "check", env=env).returncode == 0
    assert os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET") is None  # nothing leaked to us


def test_delegated_zone_wildcard_cdn_idn_zone_and_renewals_under_throttling(
        tmp_path: Path, pebble: Pebble, aliyun: AliyunEmulator) -> None:
    """Issue 11 end to end: the zone found without dns_zone (a delegated sub-zone hosted in
    Alidns while its parents are not), cdn:auto to a wildcard (".x") CDN domain and an exact
    one, a second lineage through an IDN zone, then two forced renewals under injected
    Rejected.Throttling / SystemOverFlow: no TXT record is left, an old upload someone bound
    by hand is kept, the unused one is deleted."""
    import uuid

    base = f"e2e{uuid.uuid4().hex[:8]}.test"  # unique: challtestsrv is session-wide
    zone = aliyun.add_dns_zone(f"dev.corp.{base}")  # corp.<base>, <base>: not in Alidns
    idn_zone = aliyun.add_dns_zone(f"bücher{uuid.uuid4().hex[:6]}.test")
    idn_ascii = idn_zone.encode("idna").decode()
    wild = aliyun.add_cdn_domain(f"*.{zone}", https=True)
    assert wild == f".{zone}"
    aliyun.add_cdn_domain(f"www.{zone}", https=True)
    aliyun.add_cdn_domain(f"plain.{zone}", https=False)  # cdn:auto leaves HTTPS off alone
    config = tmp_path / "acmeali.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[acme]\nserver = "{pebble.directory_url}"\nca_bundle = "{pebble.ca_bundle}"\n'
        'email = ["ops@example.test"]\nagree_tos = true\n'
        f'[defaults]\ndns_resolvers = ["{pebble.challtestsrv.dns_address}"]\n'
        "dns_timeout = 60\n" + aliyun.config_toml() + "[aliyun.cas]\nkeep_previous = 0\n")
    env = dict(aliyun.env(), ACMEALI_CONFIG=str(config))

    proc = run_acmeali("issue", "-d", zone, "-d", f"*.{zone}", "--dns", "alidns",
                       "--deploy", "cdn:auto", env=env)
    assert proc.returncode == 0, proc.stderr
    adds = aliyun.calls_of("AddDomainRecord")
    assert {(a["DomainName"], a["RR"]) for a in adds} == {(zone, "_acme-challenge")}
    assert not aliyun.calls_of("GetMainDomainName")  # the account's zones were listed
    (first_id,) = aliyun.state.cas_certs
    assert {d: v["CertId"] for d, v in aliyun.state.cdn_domains.items()} == {
        f".{zone}": first_id, f"www.{zone}": first_id, f"plain.{zone}": None}
    assert [c["DomainName"] for c in aliyun.calls_of("SetCdnDomainSSLCertificate")] == [
        f".{zone}", f"www.{zone}"]

    # A second run through an IDN zone: DomainName as Alidns lists it, RR in ASCII.
    proc = run_acmeali("issue", "-d", idn_zone, "-d", f"www.{idn_zone}", "--dns", "alidns",
                       "--deploy", "cas", env=env)
    assert proc.returncode == 0, proc.stderr
    idn_adds = aliyun.calls_of("AddDomainRecord")[len(adds):]
    assert {(a["DomainName"], a["RR"]) for a in idn_adds} == {
        (idn_zone, "_acme-challenge"), (idn_zone, "_acme-challenge.www")}
    assert (tmp_path / "state" / "live" / idn_ascii / "cert.pem").exists()
    idn_first = max(aliyun.state.cas_certs)

    # Someone binds the first upload to a load balancer by hand.
    aliyun.bind_by_hand(first_id, "SLB", "lb-e2e")

    def no_txt() -> bool:
        return not any(r["Type"] == "TXT" for z in (zone, idn_zone)
                       for r in aliyun.state.dns_zones[z].values())

    ids_after: list[set[int]] = []
    for _ in range(2):
        aliyun.faults.throttle("AddDomainRecord", count=2, retry_after_ms=None,
                               code="Rejected.Throttling")
        aliyun.faults.throttle("UploadUserCertificate", count=1, retry_after_ms=None,
                               code="SystemOverFlow")
        aliyun.faults.throttle("ListCertificates", count=1, retry_after_ms=100,
                               code="Rejected.Throttling")
        aliyun.faults.lose_response("AddDomainRecord", count=1)
        proc = run_acmeali("renew", "--force", env=env, timeout=240)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert no_txt(), aliyun.state.dns_zones
        ids_after.append(set(aliyun.state.cas_certs))
    codes = [c for _, c in aliyun.errors]
    assert codes.count("Rejected.Throttling") >= 4 and codes.count("SystemOverFlow") >= 2
    assert "DomainRecordDuplicate" in codes  # the lost answer's retry, adopted and deleted

    live = aliyun.state.cdn_domains[f".{zone}"]["CertId"]
    assert aliyun.state.cdn_domains[f"www.{zone}"]["CertId"] == live
    # kept: the hand-bound first upload and the live ones; deleted: everything else
    assert first_id in ids_after[0] and first_id in ids_after[1]
    assert idn_first not in ids_after[0]  # nobody used it
    assert len(ids_after[1]) == 3 and live in ids_after[1]  # hand-bound + two live ones
    assert not (ids_after[0] - {first_id}) & ids_after[1]  # round one's uploads: deleted
    deleted = {int(c["CertId"]) for c in aliyun.calls_of("DeleteUserCertificate")}
    assert first_id not in deleted
    assert deleted == {idn_first} | (ids_after[0] - {first_id})
def test_load_balancers_and_cas_jobs_follow_a_renewal(tmp_path: Path, pebble: Pebble,
                                                      aliyun: AliyunEmulator) -> None:
    """CLB (listener + SNI), ALB (default + additional), NLB and a CAS deployment job; a
    forced renewal moves all of them, ``cas-deploy:follow`` also moves a listener bound by
    hand to the previous certificate, and nothing acmeali uploaded is left orphaned."""
    import uuid

    env = _setup(tmp_path, pebble, aliyun)
    base = f"lb{uuid.uuid4().hex[:8]}.test"  # unique: challtestsrv is session-wide
    aliyun.add_dns_zone(base)
    aliyun.add_clb_listener("lb-e2e0001", 443, domains=(f"www.{base}",))
    for lsn in ("lsn-alb-default", "lsn-alb-extra", "lsn-by-hand", "lsn-job"):
        aliyun.add_alb_listener(lsn)
    aliyun.add_nlb_listener("lsn-nlb-0001", region="cn-shanghai")
    aliyun.add_cas_contact()
    job_rid = next(r["Id"] for r in aliyun.cloud_resources() if r["ListenerId"] == "lsn-job")
    targets = ["clb:lb-e2e0001:443", f"slb:lb-e2e0001:443:www.{base}",
               "alb:lsn-alb-default", "alb:lsn-alb-extra:extra",
               "nlb:cn-shanghai:lsn-nlb-0001", f"cas-deploy:{job_rid}", "cas-deploy:follow"]
    args = [a for t in targets for a in ("--deploy", t)]
    proc = run_acmeali("issue", "-d", base, "-d", f"*.{base}", "--dns", "alidns", *args,
                       env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (first_id, _), = aliyun.state.cas_certs.items()
    ident = f"{first_id}-cn-hangzhou"

    def bound() -> dict[str, object]:
        slb = aliyun.state.extra["slb"]
        alb = aliyun.state.extra["alb"]["listeners"]
        ext = next(iter(slb["extensions"].values()))
        return {
            "clb": slb["certs"][slb["listeners"][("lb-e2e0001", 443)]["ServerCertificateId"]]
            ["AliCloudCertificateId"],
            "sni": slb["certs"][ext["ServerCertificateId"]]["AliCloudCertificateId"],
            "alb": alb["lsn-alb-default"]["Default"],
            "alb-extra": sorted(alb["lsn-alb-extra"]["Additional"]),
            "nlb": aliyun.state.extra["nlb"]["listeners"]["lsn-nlb-0001"]["Default"],
            "job": alb["lsn-job"]["Default"],
        }

    assert bound() == {"clb": str(first_id), "sni": str(first_id), "alb": ident,
                       "alb-extra": [ident], "nlb": ident, "job": ident}
    assert len(aliyun.state.extra["slb"]["certs"]) == 1  # one server certificate, reused
    # Someone binds another listener to this certificate by hand, in the console.
    aliyun.state.extra["alb"]["listeners"]["lsn-by-hand"]["Default"] = ident

    proc = run_acmeali("renew", "--force", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (new_id, _), = aliyun.state.cas_certs.items()  # keep_previous = 0: the old one is gone
    new = f"{new_id}-cn-hangzhou"
    assert new_id != first_id
    assert bound() == {"clb": str(new_id), "sni": str(new_id), "alb": new,
                       "alb-extra": [new], "nlb": new, "job": new}
    assert aliyun.state.extra["alb"]["listeners"]["lsn-by-hand"]["Default"] == new
    # No orphaned uploads: one CAS certificate, one CLB server certificate.
    assert [c["ServerCertificateName"] for c in aliyun.state.extra["slb"]["certs"].values()] \
        == [aliyun.state.cas_certs[new_id]["Name"]]
    assert len(aliyun.calls_of("DissociateAdditionalCertificatesFromListener")) == 1
    check = run_acmeali("certs", "check", "--json", env=env)
    assert json.loads(check.stdout)["ok"] is True, check.stdout

    # Nothing left to do: a routine renew deploys nothing and writes nothing.
    writes = len(aliyun.calls)
    proc = run_acmeali("renew", env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(aliyun.calls) == writes
