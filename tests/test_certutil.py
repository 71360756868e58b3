"""acmeali.certutil: chains, identities, RFC 9773 ids and the bundle gate before going live."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acmeali import certutil, keys
from acmeali.errors import StoreError

NOW = dt.datetime.now(dt.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(subject: str, key: keys.PrivateKey, issuer: x509.Certificate | None,
              issuer_key: keys.PrivateKey, *, ca: bool, sans: list[str] | None = None,
              serial: int | None = None, not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None,
              aki: bytes | None = None) -> x509.Certificate:
    b = (x509.CertificateBuilder()
         .subject_name(_name(subject))
         .issuer_name(issuer.subject if issuer else _name(subject))
         .public_key(key.public_key())
         .serial_number(serial or x509.random_serial_number())
         .not_valid_before(not_before or NOW - dt.timedelta(hours=1))
         .not_valid_after(not_after or NOW + dt.timedelta(days=90))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                        critical=False))
    if aki is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier(aki, None, None), critical=False)
    elif issuer is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.public_key()), critical=False)  # type: ignore[arg-type]
    if sans:
        gns: list[x509.GeneralName] = []
        for s in sans:
            try:
                gns.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                gns.append(x509.DNSName(s))
        b = b.add_extension(x509.SubjectAlternativeName(gns), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@dataclass
class Chain:
    root: x509.Certificate
    inter: x509.Certificate
    leaf: x509.Certificate
    leaf_key: keys.PrivateKey
    inter_key: keys.PrivateKey

    @property
    def fullchain(self) -> bytes:
        return pem(self.leaf, self.inter)


NAMES = ["example.com", "*.example.com", "192.0.2.7"]


@pytest.fixture(scope="module")
def chain() -> Chain:
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = make_cert("Test Root", root_key, None, root_key, ca=True)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = make_cert("Test Intermediate", inter_key, root, root_key, ca=True)
    leaf_key = keys.generate_key("ec256")
    leaf = make_cert("example.com", leaf_key, inter, inter_key, ca=False, sans=NAMES)
    return Chain(root, inter, leaf, leaf_key, inter_key)


def test_load_and_split(chain: Chain) -> None:
    certs = certutil.load_chain(chain.fullchain)
    assert [c.subject for c in certs] == [chain.leaf.subject, chain.inter.subject]
    assert len(certutil.load_chain(chain.fullchain.decode())) == 2
    cert_pem, chain_pem = certutil.split_fullchain(chain.fullchain.decode())
    assert certutil.load_chain(cert_pem)[0] == chain.leaf
    assert certutil.load_chain(chain_pem) == [chain.inter]
    assert cert_pem + chain_pem == chain.fullchain.decode()
    only_leaf = certutil.split_fullchain(pem(chain.leaf))
    assert only_leaf[1] == ""


def test_split_output_verifies_with_openssl(chain: Chain, tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed; run `make test`")
    cert_pem, chain_pem = certutil.split_fullchain(chain.fullchain)
    (tmp_path / "cert.pem").write_text(cert_pem)
    (tmp_path / "chain.pem").write_text(chain_pem)
    (tmp_path / "root.pem").write_bytes(pem(chain.root))
    r = subprocess.run([openssl, "verify", "-CAfile", str(tmp_path / "root.pem"),
                        "-untrusted", str(tmp_path / "chain.pem"), str(tmp_path / "cert.pem")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr


def test_load_chain_errors() -> None:
    with pytest.raises(StoreError, match=r"no PEM certificate"):
        certutil.load_chain(b"nothing here")
    bad = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(StoreError, match=r"certificate #1"):
        certutil.load_chain(bad)


def test_identities(chain: Chain) -> None:
    fp = certutil.fingerprint(chain.leaf)
    assert fp == chain.leaf.fingerprint(hashes.SHA256()).hex() and len(fp) == 64
    assert certutil.serial_hex(chain.leaf) == format(chain.leaf.serial_number, "x")
    assert certutil.issuer_cn(chain.leaf) == "Test Intermediate"
    assert certutil.names_of(chain.leaf) == NAMES


def test_names_of_without_san_falls_back_to_cn(chain: Chain) -> None:
    assert certutil.names_of(chain.root) == ["test root"]


def test_issuer_without_cn_uses_full_name() -> None:
    k = ec.generate_private_key(ec.SECP256R1())
    org = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Org")])
    cert = (x509.CertificateBuilder().subject_name(org).issuer_name(org)
            .public_key(k.public_key()).serial_number(1)
            .not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=1))
            .sign(k, hashes.SHA256()))
    assert certutil.issuer_cn(cert) == "O=Acme Org"


# RFC 9773 §4.1 example: AKI keyIdentifier and serial 0x0087654321.
ARI_AKI = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")


def test_ari_cert_id_rfc9773_example(chain: Chain) -> None:
    k = keys.generate_key("ec256")
    cert = make_cert("x.example.com", k, chain.inter, chain.inter_key, ca=False,
                     sans=["x.example.com"], serial=0x87654321, aki=ARI_AKI)
    assert certutil.ari_cert_id(cert) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


@pytest.mark.parametrize("serial,encoded", [
    (0x7F, "fw"),          # high bit clear: one byte
    (0x80, "AIA"),         # high bit set: leading zero kept
    (0x0100, "AQA"),
])
def test_ari_serial_encoding(chain: Chain, serial: int, encoded: str) -> None:
    k = keys.generate_key("ec256")
    cert = make_cert("x.example.com", k, chain.inter, chain.inter_key, ca=False,
                     serial=serial, aki=ARI_AKI)
    cert_id = certutil.ari_cert_id(cert)
    assert cert_id is not None and cert_id.split(".")[1] == encoded


def test_ari_cert_id_none_without_aki(chain: Chain) -> None:
    assert certutil.ari_cert_id(chain.root) is None


def test_cert_facts(chain: Chain) -> None:
    facts = certutil.cert_facts(chain.fullchain, chain.leaf_key, 3)
    assert facts.version == 3
    assert facts.fingerprint == certutil.fingerprint(chain.leaf)
    assert facts.serial == certutil.serial_hex(chain.leaf)
    assert facts.issuer == "Test Intermediate"
    assert facts.key_type == "ec256"
    assert facts.key_sha256 == keys.public_key_sha256(chain.leaf_key)
    assert facts.ari_cert_id == certutil.ari_cert_id(chain.leaf)
    assert facts.not_after.endswith("Z") and facts.not_before < facts.not_after
    # Without the private key (a user's CSR) the facts come from the certificate alone.
    assert certutil.cert_facts(chain.fullchain, None, 3) == facts


# --------------------------------------------------------------------------- check_bundle
def test_check_bundle_accepts_good_bundle(chain: Chain) -> None:
    certutil.check_bundle(chain.leaf_key, chain.fullchain, ["EXAMPLE.com", "www.example.com",
                                                            "*.example.com", "192.0.2.7"],
                          roots_pem=pem(chain.root))
    # A root bundle that contains the top certificate itself is fine too.
    certutil.check_bundle(chain.leaf_key, chain.fullchain, ["example.com"],
                          roots_pem=pem(chain.inter))


def test_check_bundle_wrong_key(chain: Chain) -> None:
    with pytest.raises(StoreError, match=r"does not match the private key"):
        certutil.check_bundle(keys.generate_key("ec256"), chain.fullchain, ["example.com"])


def test_check_bundle_missing_name(chain: Chain) -> None:
    with pytest.raises(StoreError, match=r"does not cover a\.b\.example\.com, other\.org"):
        certutil.check_bundle(chain.leaf_key, chain.fullchain,
                              ["example.com", "a.b.example.com", "other.org"])


def test_check_bundle_broken_link(chain: Chain) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1())
    impostor = make_cert("Test Intermediate", other_key, chain.root, other_key, ca=True)
    with pytest.raises(StoreError, match=r"chain link 1: 'example.com' is not signed"):
        certutil.check_bundle(chain.leaf_key, pem(chain.leaf, impostor), ["example.com"])


def test_check_bundle_untrusted_root(chain: Chain) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    other_root = make_cert("Other Root", other, None, other, ca=True)
    with pytest.raises(StoreError, match=r"does not lead to a trusted root"):
        certutil.check_bundle(chain.leaf_key, chain.fullchain, ["example.com"],
                              roots_pem=pem(other_root))


def test_check_bundle_validity(chain: Chain) -> None:
    k = keys.generate_key("ec256")
    expired = make_cert("example.com", k, chain.inter, chain.inter_key, ca=False,
                        sans=["example.com"], not_before=NOW - dt.timedelta(days=10),
                        not_after=NOW - dt.timedelta(days=1))
    with pytest.raises(StoreError, match=r"expired"):
        certutil.check_bundle(k, pem(expired, chain.inter), ["example.com"])
    future = make_cert("example.com", k, chain.inter, chain.inter_key, ca=False,
                       sans=["example.com"], not_before=NOW + dt.timedelta(days=1))
    with pytest.raises(StoreError, match=r"not valid before"):
        certutil.check_bundle(k, pem(future, chain.inter), ["example.com"])
    slightly = make_cert("example.com", k, chain.inter, chain.inter_key, ca=False,
                         sans=["example.com"], not_before=NOW + dt.timedelta(minutes=1))
    certutil.check_bundle(k, pem(slightly, chain.inter), ["example.com"])


# ------------------------------------------------------------------ issue 12 items 8 and 17
def test_pem_scan_is_linear_on_unmatched_begin_lines() -> None:
    # A lazy BEGIN.+?END regex rescans to the end for every BEGIN: quadratic. 2 MB of
    # them took minutes; a linear scan takes milliseconds (bound generous for busy CI).
    import time

    junk = b"-----BEGIN CERTIFICATE-----\n" * 75000
    started = time.monotonic()
    with pytest.raises(StoreError, match="no PEM certificate"):
        certutil.load_chain(junk)
    assert time.monotonic() - started < 5


def test_stray_begin_lines_do_not_swallow_a_certificate(chain: Chain) -> None:
    text = b"-----BEGIN CERTIFICATE-----\ngarbage\n" + chain.fullchain
    assert [c.subject for c in certutil.load_chain(text)] == [chain.leaf.subject,
                                                              chain.inter.subject]


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_chain_without_intermediate_is_refused(chain: Chain) -> None:
    with pytest.raises(StoreError, match="without its issuer"):
        certutil.check_chain_complete(pem(chain.leaf), anchors=[_der(chain.root)])
    with pytest.raises(StoreError, match="previous one came with 1"):
        certutil.check_chain_complete(pem(chain.leaf), previous_intermediates=1)
    # Directly under a trusted root, and never with an intermediate before: accepted.
    certutil.check_chain_complete(pem(chain.inter), anchors=[_der(chain.root)])


def test_chain_checked_against_the_trusted_root_of_its_name(chain: Chain) -> None:
    certutil.check_chain_complete(chain.fullchain, anchors=[_der(chain.root)])
    certutil.check_chain_complete(chain.fullchain)  # root unknown here: not checked
    impostor_key = ec.generate_private_key(ec.SECP384R1())
    impostor = make_cert("Test Root", impostor_key, None, impostor_key, ca=True)
    with pytest.raises(StoreError, match="not signed by the trusted root 'Test Root'"):
        certutil.check_chain_complete(chain.fullchain, anchors=[_der(impostor)])
    # Several roots of one name (a re-keyed root): the one that signed it counts.
    certutil.check_chain_complete(chain.fullchain, anchors=[_der(impostor), _der(chain.root)])
    # A chain that carries a root of a trusted name must carry that very root.
    with pytest.raises(StoreError, match="not the trusted root of that name"):
        certutil.check_chain_complete(chain.fullchain + pem(chain.root),
                                      anchors=[_der(impostor)])
