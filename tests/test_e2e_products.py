"""Issue 15, end to end: one Pebble certificate to WAF, ESA, Function Compute, OSS and the
cloud-native API Gateway in one run of the real CLI; a forced renewal moves every one of
them, leaves every setting acmeali does not own byte-for-byte as it was, and leaves no
orphaned CAS or product-side certificate. ``test_every_product_follows_one_certificate``
does the same for all nine targets of the issue at once (productsb's live:/vod:/ddos:/ga:
helpers come from test_e2e_products_b)."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from tests import test_e2e_products_b as prod_b
from tests.conftest import run_acmeali
from tests.emulator import AliyunEmulator, apig, esa, fc, oss, waf
from tests.peers.pebble import Pebble
from tests.test_e2e_alibaba import _leaf, _setup


def _without(row: dict[str, Any], *paths: str) -> str:
    """``row`` as canonical JSON with the fields acmeali owns removed (``a.b`` nests)."""
    out = copy.deepcopy(row)
    for path in paths:
        *head, last = path.split(".")
        node = out
        for part in head:
            node = node.get(part) or {}
        node.pop(last, None)
    return json.dumps(out, sort_keys=True)


@dataclass(frozen=True)
class Seeded:
    """The zone plus the product-side ids the emulator chose while seeding."""

    zone: str
    site: Any  # ESA site id
    host: Any  # ESA SaaS hostname id
    gw: str  # API Gateway domain id


def seed(emu: AliyunEmulator, zone: str) -> Seeded:
    """WAF, ESA, FC, API Gateway and OSS resources under ``zone`` (plus some not covered)."""
    waf.add_domain(emu, f"www.{zone}")
    waf.add_domain(emu, f"shop.{zone}")  # found by waf:auto
    waf.add_domain(emu, f"plain.{zone}", https_ports=())  # HTTP only: left alone
    waf.add_domain(emu, "other.test")  # not covered: left alone
    waf.add_cloud_port(emu, "alb-e2e0001", 443)
    waf.add_cloud_port(emu, "alb-e2e0001", 8443, extensions=("777-cn-hangzhou",))
    site = esa.add_site(emu, zone)  # holds a console upload acmeali must keep
    host = esa.add_hostname(emu, zone, f"saas.{zone}")
    fc.add_domain(emu, f"fn.{zone}")
    fc.add_domain(emu, f"new.{zone}", protocol="HTTP")
    gw = apig.add_domain(emu, f"gw.{zone}")
    apig.add_domain(emu, f"plain-gw.{zone}", protocol="HTTP")  # auto leaves it alone
    oss.add_cname(emu, "media-bucket", f"img.{zone}")
    oss.add_cname(emu, "static-bucket", f"cdn.{zone}", region="cn-shanghai",
                  certificate="999-cn-hangzhou")  # someone else's: oss:auto replaces it
    oss.add_cname(emu, "static-bucket", f"bare.{zone}", region="cn-shanghai")
    return Seeded(zone, site, host, gw)


def targets(s: Seeded) -> list[str]:
    """The waf:/esa:/fc:/apig:/oss: deploy targets for ``s.zone`` and ``*.zone``."""
    z = s.zone
    return [f"waf:www.{z}", "waf:auto", "waf:cloud:alb-e2e0001:443",
            "waf:cloud:alb-e2e0001:8443:extra",
            f"esa:{z}", f"esa:hostname:{s.host}", f"fc:fn.{z}", "fc:auto",
            f"apig:{s.gw}", "apig:auto", f"oss:media-bucket:img.{z}",
            "oss:cn-shanghai:static-bucket:auto"]


def snapshot(emu: AliyunEmulator, s: Seeded) -> dict[str, str]:
    """Everything acmeali must not change, one canonical JSON string per resource."""
    st = emu.state.extra
    out = {f"waf:{d}": _without(r, "Listen.CertId") for d, r in st["waf"]["domains"].items()}
    out.update({f"esa-host:{h}": _without(r, "CasId", "CertType")
                for h, r in st["esa"]["hostnames"].items()})
    out["esa-console-cert"] = json.dumps(st["esa"]["certs"][s.site][0], sort_keys=True)
    out.update({f"fc:{d}": _without(r, "certConfig", "protocol", "lastModifiedTime")
                for d, r in st["fc"]["domains"].items()})
    out.update({f"apig:{d}": _without(r, "certIdentifier", "protocol")
                for d, r in st["apig"]["domains"].items()})
    out.update({f"oss:{b}:{d}": _without(r, "Certificate")
                for b, v in st["oss"]["buckets"].items() for d, r in v["Cnames"].items()})
    return out


def bound(emu: AliyunEmulator, s: Seeded) -> dict[str, Any]:
    """What each waf:/esa:/fc:/apig:/oss: target is bound to now."""
    st = emu.state.extra
    domains = st["waf"]["domains"]
    port = st["waf"]["ports"][("alb-e2e0001", 443)]
    extra = st["waf"]["ports"][("alb-e2e0001", 8443)]
    fcd = st["fc"]["domains"]
    leaf = {d: (x509.load_pem_x509_certificates(
                fcd[d]["certConfig"]["certificate"].encode())[0].serial_number
                if fcd[d]["certConfig"] else None) for d in fcd}
    return {
        "waf": {d: r["Listen"]["CertId"] for d, r in domains.items()},
        "waf-cloud": [c["CertificateId"] for c in port["Certificates"]],
        "waf-extra": [(c["AppliedType"], c["CertificateId"]) for c in extra["Certificates"]],
        "esa": [(c["Type"], c["CasId"]) for c in st["esa"]["certs"][s.site]],
        "esa-host": st["esa"]["hostnames"][s.host]["CasId"],
        "fc": leaf,
        "apig": {d: (r["protocol"], r["certIdentifier"])
                 for d, r in st["apig"]["domains"].items()},
        "oss": {d: (r["Certificate"] or {}).get("CertId")
                for v in st["oss"]["buckets"].values() for d, r in v["Cnames"].items()},
    }


def expected(emu: AliyunEmulator, s: Seeded, cert_id: int, serial: int) -> dict[str, Any]:
    """What :func:`bound` must return once CAS certificate ``cert_id`` (leaf ``serial``)
    is deployed."""
    z, ident = s.zone, f"{cert_id}-cn-hangzhou"
    return {
        "waf": {f"www.{z}": ident, f"shop.{z}": ident,
                f"plain.{z}": None, "other.test": None},
        "waf-cloud": [ident],
        # the console's extension stays; acmeali's previous one is deleted
        "waf-extra": [("extension", "777-cn-hangzhou"), ("extension", ident)],
        # ESA keeps the console upload plus exactly one acmeali certificate
        "esa": [("upload", None), ("cas", str(cert_id))],
        "esa-host": cert_id,
        # new.<zone> served HTTP only: fc:auto leaves it alone
        "fc": {f"fn.{z}": serial, f"new.{z}": None},
        "apig": {s.gw: ("HTTPS", ident),
                 next(k for k in emu.state.extra["apig"]["domains"] if k != s.gw):
                 ("HTTP", None)},
        # bare.<zone> has no certificate (no HTTPS): oss:auto leaves it alone
        "oss": {f"img.{z}": ident, f"cdn.{z}": ident, f"bare.{z}": None},
    }


def assert_replaced_in_place(emu: AliyunEmulator, s: Seeded, first_id: int) -> None:
    """After a forced renewal: ESA and OSS replaced the certificate they held, by name."""
    # ESA: the certificate acmeali set was replaced in place (Id=), not added to.
    assert [c.get("Id") for c in emu.calls_of("SetCertificate")] \
        == [None, str(emu.state.extra["esa"]["certs"][s.site][1]["Id"])]
    # OSS replaced a bound certificate by naming it (PreviousCertId), never by Force.
    puts = emu.calls_of("PutCname")
    assert [p.get("PreviousCertId") for p in puts if p["Domain"] == f"cdn.{s.zone}"] \
        == ["999-cn-hangzhou", f"{first_id}-cn-hangzhou"]
    # Force only where there was nothing to overwrite (the first binding of img.<zone>)
    assert [p["Domain"] for p in puts if p.get("Force") == "true"] == [f"img.{s.zone}"]


def _issue(tmp_path: Path, emu: AliyunEmulator, env: dict[str, str], zone: str,
           deploy: list[str]) -> tuple[int, int]:
    """Issue ``zone`` + ``*.zone`` through Alidns to every ``deploy`` target in one run;
    return the (only) CAS id and the leaf's serial."""
    proc = run_acmeali("issue", "-d", zone, "-d", f"*.{zone}", "--dns", "alidns",
                       *[a for t in deploy for a in ("--deploy", t)], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (first_id, _), = emu.state.cas_certs.items()
    return first_id, _leaf(tmp_path / "state", zone).serial_number


def _routine_renew_is_silent(emu: AliyunEmulator, env: dict[str, str]) -> None:
    """``certs check`` is ok and a renew with nothing due makes no API call."""
    check = run_acmeali("certs", "check", "--json", env=env)
    assert json.loads(check.stdout)["ok"] is True, check.stdout
    # Nothing due: a routine renew writes nothing anywhere.
    calls = len(emu.calls)
    proc = run_acmeali("renew", env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(emu.calls) == calls


def _force_renew(tmp_path: Path, emu: AliyunEmulator, env: dict[str, str], zone: str,
                 first_id: int, first_serial: int) -> tuple[int, int]:
    """``renew --force``: one CAS upload left, a new id and a new leaf."""
    proc = run_acmeali("renew", "--force", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (new_id, _), = emu.state.cas_certs.items()  # the old CAS upload is gone
    new_serial = _leaf(tmp_path / "state", zone).serial_number
    assert new_id != first_id and new_serial != first_serial
    return new_id, new_serial


def test_products_follow_a_renewal(tmp_path: Path, pebble: Pebble,
                                   aliyun: AliyunEmulator) -> None:
    env = _setup(tmp_path, pebble, aliyun)
    zone = f"pr{uuid.uuid4().hex[:8]}.test"  # unique: challtestsrv is session-wide
    aliyun.add_dns_zone(zone)
    s = seed(aliyun, zone)
    before = snapshot(aliyun, s)
    first_id, first_serial = _issue(tmp_path, aliyun, env, zone, targets(s))
    assert bound(aliyun, s) == expected(aliyun, s, first_id, first_serial)
    assert snapshot(aliyun, s) == before  # read-modify-write: nothing else changed

    new_id, new_serial = _force_renew(tmp_path, aliyun, env, zone, first_id, first_serial)
    assert bound(aliyun, s) == expected(aliyun, s, new_id, new_serial)
    assert snapshot(aliyun, s) == before
    assert_replaced_in_place(aliyun, s, first_id)
    _routine_renew_is_silent(aliyun, env)


def test_every_product_follows_one_certificate(tmp_path: Path, pebble: Pebble,
                                               aliyun: AliyunEmulator) -> None:
    """Issue 15's "Done when": ONE certificate to all nine targets (waf, esa, oss, fc,
    live, vod, ddos, apig, ga) in ONE run; a forced renewal moves all of them."""
    env = _setup(tmp_path, pebble, aliyun)
    zone = f"pa{uuid.uuid4().hex[:8]}.test"  # unique: challtestsrv is session-wide
    aliyun.add_dns_zone(zone)
    s = seed(aliyun, zone)
    prod_b.seed(aliyun, zone)
    before = (snapshot(aliyun, s), prod_b.untouched(aliyun, zone))

    def state() -> tuple[dict[str, str], dict[str, Any]]:
        return snapshot(aliyun, s), prod_b.untouched(aliyun, zone)

    deploy = targets(s) + prod_b.targets(zone)
    first_id, first_serial = _issue(tmp_path, aliyun, env, zone, deploy)
    assert bound(aliyun, s) == expected(aliyun, s, first_id, first_serial)
    assert prod_b.bound(aliyun, zone) == prod_b.expected(zone, first_id)
    assert state() == before

    new_id, new_serial = _force_renew(tmp_path, aliyun, env, zone, first_id, first_serial)
    assert bound(aliyun, s) == expected(aliyun, s, new_id, new_serial)
    assert prod_b.bound(aliyun, zone) == prod_b.expected(zone, new_id)
    assert state() == before
    assert_replaced_in_place(aliyun, s, first_id)
    prod_b.assert_no_orphans(aliyun, zone, first_id)
    _routine_renew_is_silent(aliyun, env)
