"""Synthetic lineages: certificates from a throw-away local CA, in each client's own layout.

Used for "renew with nothing due" (90-day certificates, freshly issued, so nothing is due
for any client's default rule) and, for acmeali, as the 50 lineages ``renew --force``
re-issues against Pebble. One leaf key is shared by all lineages: key generation is not
what is being measured.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALIDITY = dt.timedelta(days=90)


@dataclass
class Bundle:
    key_pem: bytes
    cert_pem: bytes
    chain_pem: bytes

    @property
    def fullchain_pem(self) -> bytes:
        return self.cert_pem + self.chain_pem


class LocalCA:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acmeali bench local CA")])
        now = dt.datetime.now(dt.timezone.utc)
        self.name = name
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + VALIDITY * 2)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256()))
        self.chain_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.leaf_key_pem = self.leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())

    def issue(self, domain: str) -> Bundle:
        now = dt.datetime.now(dt.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
            .issuer_name(self.name).public_key(self.leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
            .sign(self.key, hashes.SHA256()))
        return Bundle(self.leaf_key_pem, cert.public_bytes(serialization.Encoding.PEM),
                      self.chain_pem)


def acmeali_lineages(ca: LocalCA, state_dir: Path, domains: list[str], server: str,
                     settings: dict[str, object] | None = None) -> None:
    """Lineages written with acmeali's own store API (so its layout is followed exactly)."""
    from acmeali import certutil, keys
    from acmeali.lineage import LineageMeta
    from acmeali.store.files import FileStore

    store = FileStore(state_dir)
    key = keys.load_private_key(ca.leaf_key_pem)
    for d in domains:
        b = ca.issue(d)
        version = store.write_version(d, privkey_pem=b.key_pem, cert_pem=b.cert_pem,
                                      chain_pem=b.chain_pem, fullchain_pem=b.fullchain_pem)
        store.activate(d, version)
        store.save_meta(LineageMeta(
            name=d, domains=[d], server=server, settings=dict(settings or {}),
            current=certutil.cert_facts(b.fullchain_pem, key, version)))


def certbot_lineages(ca: LocalCA, config_dir: Path, domains: list[str], *, server: str,
                     account: str, http_port: int) -> None:
    """certbot's layout: archive/<n>/*1.pem, live/<n>/*.pem -> ../../archive, renewal/<n>.conf."""
    for sub in ("archive", "live", "renewal"):
        (config_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    for d in domains:
        b = ca.issue(d)
        arch, live = config_dir / "archive" / d, config_dir / "live" / d
        arch.mkdir(exist_ok=True)
        live.mkdir(exist_ok=True)
        files = {"cert": b.cert_pem, "chain": b.chain_pem, "fullchain": b.fullchain_pem,
                 "privkey": b.key_pem}
        for kind, data in files.items():
            (arch / f"{kind}1.pem").write_bytes(data)
            link = live / f"{kind}.pem"
            if link.is_symlink():
                link.unlink()
            os.symlink(f"../../archive/{d}/{kind}1.pem", link)
        os.chmod(arch / "privkey1.pem", 0o600)
        (config_dir / "renewal" / f"{d}.conf").write_text(
            "version = 5.8.0\n"
            f"archive_dir = {arch}\n"
            + "".join(f"{k} = {live / (k + '.pem')}\n"
                      for k in ("cert", "privkey", "chain", "fullchain"))
            + "\n[renewalparams]\n"
            f"account = {account}\n"
            f"http01_port = {http_port}\n"
            "http01_address = 127.0.0.1\n"
            f"server = {server}\n"
            "authenticator = standalone\n"
            "key_type = ecdsa\n")


def lego_certificates(ca: LocalCA, lego_path: Path, domains: list[str]) -> None:
    """lego's layout: certificates/<domain>.{crt,key,issuer.crt,json}."""
    certs = lego_path / "certificates"
    certs.mkdir(parents=True, exist_ok=True, mode=0o700)
    for d in domains:
        b = ca.issue(d)
        (certs / f"{d}.crt").write_bytes(b.fullchain_pem)
        (certs / f"{d}.issuer.crt").write_bytes(b.chain_pem)
        (certs / f"{d}.key").write_bytes(b.key_pem)
        os.chmod(certs / f"{d}.key", 0o600)
        (certs / f"{d}.json").write_text(json.dumps({"domain": d, "certUrl": "",
                                                     "certStableUrl": ""}))


def copy_accounts(src: Path, dst: Path) -> None:
    """Reuse an account a client registered in another directory (same server)."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)
