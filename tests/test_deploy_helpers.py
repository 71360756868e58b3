"""A tiny local CA and lineage builder for the deploy tests (no issuance code needed).

Certificates are real (cryptography), so the emulator parses, fingerprints and matches
them exactly as it would an issued chain. Also unit tests of the pure helpers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from acmeali import certutil
from acmeali.config import AliyunSettings
from acmeali.deployers.cas import MAX_NAME, cas_name
from acmeali.lineage import LineageMeta
from acmeali.store.base import LiveBundle, LivePaths
from acmeali.ui import UI
from tests.emulator.server import service_names


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class TinyCA:
    """Root -> intermediate -> leaves, like a public CA's chain."""

    name: str = "acmeali test"
    root_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    inter_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def __post_init__(self) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name} root")])
        self.root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
                     .public_key(self.root_key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(days=1))
                     .not_valid_after(now + dt.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
                     .sign(self.root_key, hashes.SHA256()))
        inter_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{self.name} R1")])
        self.inter = (x509.CertificateBuilder().subject_name(inter_name)
                      .issuer_name(root_name).public_key(self.inter_key.public_key())
                      .serial_number(x509.random_serial_number())
                      .not_valid_before(now - dt.timedelta(days=1))
                      .not_valid_after(now + dt.timedelta(days=1800))
                      .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                                     critical=True)
                      .sign(self.root_key, hashes.SHA256()))

    def issue(self, names: list[str], *, minutes_ago: int = 0, days: int = 90,
              rsa_key: bool = False, with_cn: bool = True) -> tuple[bytes, bytes, bytes]:
        """(key PEM in SEC1/PKCS#1 form, cert PEM, chain PEM) for ``names``; ``with_cn=False``
        leaves the subject empty, as Let's Encrypt's tlsserver/shortlived profiles do."""
        key: Any = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if rsa_key
                    else ec.generate_private_key(ec.SECP256R1()))
        start = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes_ago)
                 ).replace(second=0, microsecond=0)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]
                            if with_cn else [])
        leaf = (x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(self.inter.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                               critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(self.inter_key, hashes.SHA256()))
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
        return key_pem, _pem(leaf), _pem(self.inter)


@dataclass
class Lineage:
    meta: LineageMeta
    bundle: LiveBundle
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        assert self.meta.current is not None
        return self.meta.current.fingerprint


def make_lineage(ca: TinyCA, names: list[str], *, name: str | None = None,
                 meta: LineageMeta | None = None, minutes_ago: int = 0,
                 version: int = 1, rsa_key: bool = False, with_cn: bool = True) -> Lineage:
    """A lineage whose live bundle is a fresh certificate from ``ca`` (``meta`` renewed
    in place when given, as issuance would)."""
    key_pem, cert_pem, chain_pem = ca.issue(names, minutes_ago=minutes_ago, rsa_key=rsa_key,
                                            with_cn=with_cn)
    fullchain = cert_pem + chain_pem
    from acmeali.keys import load_private_key

    facts = certutil.cert_facts(fullchain, load_private_key(key_pem), version)
    if meta is None:
        meta = LineageMeta(name=name or names[0].removeprefix("*."), domains=list(names),
                           server="https://pebble.test/dir")
    meta.current = facts
    bundle = LiveBundle(privkey=key_pem, cert=cert_pem, chain=chain_pem, fullchain=fullchain,
                        version=version)
    return Lineage(meta, bundle, key_pem)


def live_paths(tmp: Path, lineage: Lineage) -> LivePaths:
    """Write the bundle to files, as the store's live/ directory would hold it."""
    tmp.mkdir(parents=True, exist_ok=True)
    paths = LivePaths(privkey=tmp / "privkey.pem", cert=tmp / "cert.pem",
                      chain=tmp / "chain.pem", fullchain=tmp / "fullchain.pem")
    for attr in ("privkey", "cert", "chain", "fullchain"):
        getattr(paths, attr).write_bytes(getattr(lineage.bundle, attr))
    return paths


def settings_for(emu: object, **overrides: object) -> AliyunSettings:
    """[aliyun] settings pointing every service at the emulator."""
    endpoint = emu.endpoint  # type: ignore[attr-defined]
    base: dict[str, object] = {
        "protocol": "http",
        "endpoints": {s: endpoint for s in service_names()}}
    base.update(overrides)
    return AliyunSettings(**base)  # type: ignore[arg-type]


def make_ui() -> UI:
    """A UI writing into memory; read it back with :func:`captured`."""
    import io

    return UI(out=io.StringIO(), err=io.StringIO())


def captured(ui: UI) -> tuple[str, str]:
    """(stdout, stderr) written so far."""
    return ui.out.getvalue(), ui.err.getvalue()  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- unit tests
def test_cas_name_fits_and_is_unique_per_certificate() -> None:
    long_cn = "a-very-long-label-for-testing." * 3 + "example.com"
    n1 = cas_name(long_cn, "202501020304", "ab" * 32)
    n2 = cas_name(long_cn, "202501020304", "cd" * 32)
    assert len(n1) <= MAX_NAME and len(n2) <= MAX_NAME
    assert n1 != n2
    assert n1.startswith("acmeali-a-very-long-label")
    assert n1.endswith("-202501020304-ababab")
    wild = cas_name("*.example.com", "202501020304", "ef" * 32)
    assert wild == "acmeali-wildcard.example.com-202501020304-efefef"


def test_tiny_ca_bundle_is_consistent() -> None:
    ca = TinyCA()
    lin = make_lineage(ca, ["example.test", "*.example.test"])
    chain = certutil.load_chain(lin.bundle.fullchain)
    assert len(chain) == 2
    assert certutil.fingerprint(chain[0]) == lin.fingerprint
    assert certutil.names_of(chain[0]) == ["example.test", "*.example.test"]
