"""The CA itself: create one, load one (refusing anything unfit to sign), issue leaves.

Extensions follow RFC 5280 and what TLS stacks actually check, not the seed documents'
config files, which put ``keyCertSign`` on a server certificate and leave the CA's
basic constraints non-critical.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from acmeali.errors import KeyFileError, UsageError
from acmeali.keys import PrivateKey, generate_key, load_private_key_file, private_key_pem
from acmeali.localca.output import KEY_MODE, OutFile, SerialRegistry, check_outputs
from acmeali.localca.subject import (
    check_device_id,
    check_registration_code,
    common_name,
    parse_subject,
)
from acmeali.names import InvalidName, is_ip, normalize_names

CA_KEY_TYPES = ("rsa2048", "rsa4096", "ec256", "ec384")
CA_KEY = "CA.key"
CA_CERT = "CA.crt"
MAX_DAYS = 36500
# Clocks on devices and brokers drift; a certificate valid from "now" fails on a slow one.
BACKDATE = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Issued:
    """A key and the certificate the CA made for it, plus the files that carry them."""

    key: PrivateKey
    cert: x509.Certificate
    files: tuple[OutFile, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def check_days(days: int, option: str = "--days") -> int:
    if not 1 <= days <= MAX_DAYS:
        raise UsageError(f"{option} {days}: expected 1 to {MAX_DAYS} days")
    return days


def _hash_for(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    # A P-384 key signing with SHA-256 would cap its strength at 128 bits (RFC 5480 §4).
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _spki(key: PrivateKey | x509.Certificate) -> bytes:
    pub = key.public_key()
    return pub.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _leaf_key_usage(key: PrivateKey) -> x509.KeyUsage:
    # RSA key exchange (TLS 1.2 non-ECDHE suites) needs keyEncipherment; EC keys never
    # encipher, and some validators reject the bit on them.
    rsa_key = isinstance(key, rsa.RSAPrivateKey)
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=rsa_key, data_encipherment=False, key_agreement=False,
                         key_cert_sign=False, crl_sign=False, encipher_only=False,
                         decipher_only=False)


def _key_pem(key: PrivateKey, *, pkcs8: bool = True) -> bytes:
    return private_key_pem(key, pkcs8=pkcs8)


class LocalCA:
    """A CA directory holding ``CA.key``, ``CA.crt`` and the serial registry."""

    def __init__(self, directory: Path, key: PrivateKey, cert: x509.Certificate) -> None:
        self.directory = directory
        self.key = key
        self.cert = cert
        self.serials = SerialRegistry(directory)

    # ------------------------------------------------------------------ create / load
    @classmethod
    def create(cls, directory: Path, *, key_type: str = "rsa2048", subject: str | None = None,
               days: int = 3650, force: bool = False,
               passphrase: bytes | None = None) -> tuple[LocalCA, list[OutFile]]:
        """A new self-signed CA; returns it and the files to write (the caller writes them).

        pathlen 0: this CA signs leaves only, so a stolen device key can never mint more.
        """
        if key_type not in CA_KEY_TYPES:
            raise UsageError(f"--key-type {key_type}: expected one of {', '.join(CA_KEY_TYPES)}")
        check_days(days)
        if subject is not None:
            name = parse_subject(subject)
            if not name.get_attributes_for_oid(NameOID.COMMON_NAME):
                raise UsageError("--subject: a CA subject needs a CN, so the console and "
                                 "`openssl x509` can tell your CAs apart")
        else:
            name = x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "acmeali local CA"),
                x509.NameAttribute(NameOID.COMMON_NAME,
                                   f"acmeali MQTT CA {x509.random_serial_number() % 16**8:08x}"),
            ])
        check_outputs(directory, [CA_KEY, CA_CERT], force=force)
        key = generate_key(key_type)
        now = dt.datetime.now(dt.timezone.utc)
        registry = SerialRegistry(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        serial = registry.allocate("ca", common_name(name) or "", x509.random_serial_number)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                           critical=False)
            .sign(key, _hash_for(key))
        )
        ca = cls(directory, key, cert)
        key_pem = private_key_pem(key, pkcs8=True, passphrase=passphrase)
        files = [OutFile(CA_KEY, key_pem, KEY_MODE), OutFile(CA_CERT, ca.cert_pem)]
        return ca, files

    @classmethod
    def load(cls, directory: Path, *, passphrase_file: str | Path | None = None,
             now: dt.datetime | None = None) -> LocalCA:
        """Open a CA directory, refusing one that cannot sign anything a verifier accepts."""
        if not directory.is_dir():
            raise UsageError(f"--ca {directory}: no such directory",
                             hint="create a CA with `acmeali ca init --dir DIR`")
        cert_path, key_path = directory / CA_CERT, directory / CA_KEY
        if not cert_path.is_file():
            raise UsageError(f"--ca {directory}: no {CA_CERT} in it",
                             hint="create a CA with `acmeali ca init --dir DIR`")
        if not key_path.is_file():
            raise UsageError(f"--ca {directory}: {CA_CERT} is there but {CA_KEY} is not; "
                             "signing needs the CA's private key")
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{cert_path}: not a PEM certificate ({exc})") from None
        try:
            key = load_private_key_file(key_path, passphrase_file)
        except KeyFileError:
            raise
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"{key_path}: cannot load the key ({exc})") from None
        if _spki(key) != _spki(cert):
            raise UsageError(f"{key_path} does not belong to {cert_path} (different public keys)")
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise UsageError(f"{cert_path} is not a CA certificate (no basicConstraints CA:TRUE); "
                             "certificates it signed would be rejected")
        try:
            ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            ku = None
        if ku is not None and not ku.key_cert_sign:
            raise UsageError(f"{cert_path}: its key usage does not allow signing certificates")
        moment = now or dt.datetime.now(dt.timezone.utc)
        if cert.not_valid_after_utc <= moment:
            raise UsageError(f"{cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d}",
                             hint="create a new CA with `acmeali ca init` and register it")
        if cert.not_valid_before_utc > moment:
            raise UsageError(f"{cert_path} is not valid before "
                             f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (check the clock)")
        return cls(directory, key, cert)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    # ------------------------------------------------------------------ issuing
    def _sign(self, *, kind: str, subject: x509.Name, key: PrivateKey, days: int,
              extensions: Sequence[tuple[x509.ExtensionType, bool]]) -> tuple[x509.Certificate,
                                                                              list[str]]:
        now = dt.datetime.now(dt.timezone.utc)
        notes: list[str] = []
        not_after = now + dt.timedelta(days=days)
        ca_end = self.cert.not_valid_after_utc
        if not_after > ca_end:
            # A leaf outliving its CA looks valid on paper and fails once the CA expires.
            not_after = ca_end
            notes.append(f"validity cut to the CA's end, {ca_end:%Y-%m-%d}")
        try:
            ca_ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
        except x509.ExtensionNotFound:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        serial = self.serials.allocate(kind, common_name(subject) or "", x509.random_serial_number)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(max(now - BACKDATE, self.cert.not_valid_before_utc))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(aki, critical=False)
        )
        for ext, critical in extensions:
            builder = builder.add_extension(ext, critical=critical)
        return builder.sign(self.key, _hash_for(self.key)), notes

    def server_cert(self, names: Sequence[str], *, key_type: str = "rsa2048", days: int = 500,
                    subject: str | None = None) -> Issued:
        """For the broker (or CAS): serverAuth, every name in the SAN, chain = server + CA."""
        if key_type not in CA_KEY_TYPES:
            raise UsageError(f"--key-type {key_type}: expected one of {', '.join(CA_KEY_TYPES)}")
        check_days(days)
        try:
            normalized, _ = normalize_names(names)
        except InvalidName as exc:
            raise UsageError(f"-d: {exc}") from None
        if subject is not None:
            name = parse_subject(subject)
        else:
            first = normalized[0]
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first)]
                             if len(first) <= 64 else [])
        sans: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address(n)) if is_ip(n) else x509.DNSName(n)
            for n in normalized
        ]
        key = generate_key(key_type)
        cert, notes = self._sign(kind="server", subject=name, key=key, days=days, extensions=[
            (_leaf_key_usage(key), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            # Critical when the subject is empty (RFC 5280 §4.2.1.6).
            (x509.SubjectAlternativeName(sans), len(name) == 0),
        ])
        pem = cert.public_bytes(serialization.Encoding.PEM)
        files = (
            # server.key in the traditional format, as `openssl req -newkey`/`ecparam` make it;
            # server_pkcs8.key is what the CAS upload form insists on.
            OutFile("server.key", _key_pem(key, pkcs8=False), KEY_MODE),
            OutFile("server_pkcs8.key", _key_pem(key), KEY_MODE),
            OutFile("server.crt", pem),
            OutFile("server_chain.crt", pem + self.cert_pem),
        )
        return Issued(key, cert, files, tuple(notes))

    def verification_cert(self, code: str) -> Issued:
        """Proof of possession for RegisterCaCertificate: CN = the instance's register code."""
        value = check_registration_code(code)
        # Same algorithm family as the CA, so the service's checker meets nothing unusual.
        key_type = "ec256" if isinstance(self.key, ec.EllipticCurvePrivateKey) else "rsa2048"
        key = generate_key(key_type)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)])
        cert, notes = self._sign(kind="verification", subject=name, key=key, days=30,
                                 extensions=[(_leaf_key_usage(key), True)])
        pem = cert.public_bytes(serialization.Encoding.PEM)
        files = (OutFile("verificationCert.key", _key_pem(key), KEY_MODE),
                 OutFile("verificationCert.crt", pem))
        return Issued(key, cert, files, tuple(notes))

    def device_cert(self, device_id: str, *, key_type: str = "rsa2048",
                    days: int = 1825) -> Issued:
        """A client certificate: clientAuth only, CN = device id (the broker's identity)."""
        value = check_device_id(device_id)
        if key_type not in CA_KEY_TYPES:
            raise UsageError(f"--key-type {key_type}: expected one of {', '.join(CA_KEY_TYPES)}")
        check_days(days)
        key = generate_key(key_type)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)])
        cert, notes = self._sign(kind="device", subject=name, key=key, days=days, extensions=[
            (_leaf_key_usage(key), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        ])
        pem = cert.public_bytes(serialization.Encoding.PEM)
        files = (OutFile(f"{value}.key", _key_pem(key), KEY_MODE),
                 OutFile(f"{value}.crt", pem),
                 OutFile(f"{value}_chain.crt", pem + self.cert_pem))
        return Issued(key, cert, files, tuple(notes))


def device_file_names(device_id: str) -> list[str]:
    return [f"{device_id}.key", f"{device_id}.crt", f"{device_id}_chain.crt"]


SERVER_FILES = ("server.key", "server_pkcs8.key", "server.crt", "server_chain.crt")
VERIFICATION_FILES = ("verificationCert.key", "verificationCert.crt")
