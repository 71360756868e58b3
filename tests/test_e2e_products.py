"""Issue 15, end to end: one Pebble certificate to WAF, ESA, Function Compute and the
cloud-native API Gateway in one run of the real CLI; a forced renewal moves every one of
them, leaves every setting acmeali does not own byte-for-byte as it was, and leaves no
orphaned CAS or product-side certificate. (productsb's live:/vod:/ddos:/ga: have their own
file.)"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

from cryptography import x509

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


def test_products_follow_a_renewal(tmp_path: Path, pebble: Pebble,
                                   aliyun: AliyunEmulator) -> None:
    env = _setup(tmp_path, pebble, aliyun)
    base = f"pr{uuid.uuid4().hex[:8]}.test"  # unique: challtestsrv is session-wide
    aliyun.add_dns_zone(base)
    emu = aliyun
    waf.add_domain(emu, f"www.{base}")
    waf.add_domain(emu, f"shop.{base}")  # found by waf:auto
    waf.add_domain(emu, f"plain.{base}", https_ports=())  # HTTP only: left alone
    waf.add_domain(emu, "other.test")  # not covered: left alone
    waf.add_cloud_port(emu, "alb-e2e0001", 443)
    waf.add_cloud_port(emu, "alb-e2e0001", 8443, extensions=("777-cn-hangzhou",))
    site = esa.add_site(emu, base)  # holds a console upload acmeali must keep
    host = esa.add_hostname(emu, base, f"saas.{base}")
    fc.add_domain(emu, f"fn.{base}")
    fc.add_domain(emu, f"new.{base}", protocol="HTTP")
    gw = apig.add_domain(emu, f"gw.{base}")
    apig.add_domain(emu, f"plain-gw.{base}", protocol="HTTP")  # auto leaves it alone
    oss.add_cname(emu, "media-bucket", f"img.{base}")
    oss.add_cname(emu, "static-bucket", f"cdn.{base}", region="cn-shanghai",
                  certificate="999-cn-hangzhou")  # someone else's: oss:auto replaces it
    oss.add_cname(emu, "static-bucket", f"bare.{base}", region="cn-shanghai")
    targets = [f"waf:www.{base}", "waf:auto", "waf:cloud:alb-e2e0001:443",
               "waf:cloud:alb-e2e0001:8443:extra",
               f"esa:{base}", f"esa:hostname:{host}", f"fc:fn.{base}", "fc:auto",
               f"apig:{gw}", "apig:auto", f"oss:media-bucket:img.{base}",
               "oss:cn-shanghai:static-bucket:auto"]
    st = emu.state.extra

    def snapshot() -> dict[str, str]:
        """Everything acmeali must not change, one canonical JSON string per resource."""
        out = {f"waf:{d}": _without(r, "Listen.CertId") for d, r in st["waf"]["domains"].items()}
        out.update({f"esa-host:{h}": _without(r, "CasId", "CertType")
                    for h, r in st["esa"]["hostnames"].items()})
        out["esa-console-cert"] = json.dumps(st["esa"]["certs"][site][0], sort_keys=True)
        out.update({f"fc:{d}": _without(r, "certConfig", "protocol", "lastModifiedTime")
                    for d, r in st["fc"]["domains"].items()})
        out.update({f"apig:{d}": _without(r, "certIdentifier", "protocol")
                    for d, r in st["apig"]["domains"].items()})
        out.update({f"oss:{b}:{d}": _without(r, "Certificate")
                    for b, v in st["oss"]["buckets"].items() for d, r in v["Cnames"].items()})
        return out

    before = snapshot()
    proc = run_acmeali("issue", "-d", base, "-d", f"*.{base}",
                       "--dns", "alidns", *[a for t in targets for a in ("--deploy", t)],
                       env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = tmp_path / "state"

    def bound() -> dict[str, Any]:
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
            "esa": [(c["Type"], c["CasId"]) for c in st["esa"]["certs"][site]],
            "esa-host": st["esa"]["hostnames"][host]["CasId"],
            "fc": leaf,
            "apig": {d: (r["protocol"], r["certIdentifier"])
                     for d, r in st["apig"]["domains"].items()},
            "oss": {d: (r["Certificate"] or {}).get("CertId")
                    for v in st["oss"]["buckets"].values() for d, r in v["Cnames"].items()},
        }

    def expected(cert_id: int, serial: int) -> dict[str, Any]:
        ident = f"{cert_id}-cn-hangzhou"
        return {
            "waf": {f"www.{base}": ident, f"shop.{base}": ident,
                    f"plain.{base}": None, "other.test": None},
            "waf-cloud": [ident],
            # the console's extension stays; acmeali's previous one is deleted
            "waf-extra": [("extension", "777-cn-hangzhou"), ("extension", ident)],
            "esa": [("upload", None), ("cas", str(cert_id))],
            "esa-host": cert_id,
            # new.<base> served HTTP only: fc:auto leaves it alone
            "fc": {f"fn.{base}": serial, f"new.{base}": None},
            "apig": {gw: ("HTTPS", ident),
                     next(k for k in st["apig"]["domains"] if k != gw): ("HTTP", None)},
            # bare.<base> has no certificate (no HTTPS): oss:auto leaves it alone
            "oss": {f"img.{base}": ident, f"cdn.{base}": ident,
                    f"bare.{base}": None},
        }

    (first_id, _), = emu.state.cas_certs.items()
    first_serial = _leaf(state, base).serial_number
    assert bound() == expected(first_id, first_serial)
    assert snapshot() == before  # read-modify-write: nothing else changed

    proc = run_acmeali("renew", "--force", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (new_id, _), = emu.state.cas_certs.items()  # the old CAS upload is gone
    new_serial = _leaf(state, base).serial_number
    assert new_id != first_id and new_serial != first_serial
    assert bound() == expected(new_id, new_serial)
    assert snapshot() == before
    # ESA: the certificate acmeali set was replaced in place (Id=), not added to.
    assert [c.get("Id") for c in emu.calls_of("SetCertificate")] \
        == [None, str(st["esa"]["certs"][site][1]["Id"])]
    # OSS replaced a bound certificate by naming it (PreviousCertId), never by Force.
    puts = emu.calls_of("PutCname")
    assert [p.get("PreviousCertId") for p in puts if p["Domain"] == f"cdn.{base}"] \
        == ["999-cn-hangzhou", f"{first_id}-cn-hangzhou"]
    # Force only where there was nothing to overwrite (the first binding of img.<base>)
    assert [p["Domain"] for p in puts if p.get("Force") == "true"] == [f"img.{base}"]
    check = run_acmeali("certs", "check", "--json", env=env)
    assert json.loads(check.stdout)["ok"] is True, check.stdout

    # Nothing due: a routine renew writes nothing anywhere.
    calls = len(emu.calls)
    proc = run_acmeali("renew", env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(emu.calls) == calls
