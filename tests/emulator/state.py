"""What the emulated account holds, plus the certificate helpers every product needs.

All dicts are plain data so tests can assert on them directly. Keys use the real API's
field names where one exists, so a test reads ``state.cas_certs[cid]["SerialNo"]`` the way
acmeali reads it from ``GetUserCertificateDetail``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


class ApiError(Exception):
    """A business error, returned with Alibaba's error body shape."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


class TxtSink(Protocol):
    """What the Alidns side forwards TXT records to (pebble-challtestsrv's API)."""

    def set_txt(self, host: str, value: str) -> None: ...
    def clear_txt(self, host: str) -> None: ...


@dataclass
class EmulatorState:
    """The account's resources. Guard every access from a handler with ``lock``.

    - ``cas_certs``: CertId (int) -> {"Id", "Name", "Cert", "Key", "Fingerprint", "Sha2",
      "SerialNo", "Common", "Sans", "Issuer", "Algorithm", "NotBefore", "NotAfter",
      "StartDate", "EndDate", "InstanceId", "CertIdentifier", "Region"}.
      ``Fingerprint`` is the SHA-1 of the leaf's DER as 40 uppercase hex digits and
      ``Sha2`` the SHA-256 as 64 uppercase hex digits (a guess at the real format: the API
      documents both fields only as "fingerprint" / "SHA-2 value"). ``SerialNo`` is the
      leaf serial in lowercase hex without leading zeros; ``Sans`` is comma-separated;
      ``NotBefore``/``NotAfter`` are Unix milliseconds.
    - ``cdn_domains`` / ``dcdn_domains``: domain -> {"DomainName", "DomainStatus",
      "SslProtocol" ("on"/"off"), "CertType" ("cas"/"upload"/None), "CertId" (int|None),
      "CertName", "CertRegion", "SSLPub" (PEM|None), "SSLPri", "CertUpdateTime",
      "GmtCreated", "DomainId", "Cname"}.
    - ``apigw_domains``: (group_id, domain) -> {"GroupId", "DomainName", "Region",
      "CertificateId", "CertificateName", "CertificateBody", "CertificatePrivateKey",
      "CaCertificateBody", "CertificateValidStart", "CertificateValidEnd" (ms),
      "DomainBindingStatus"}.
    - ``dns_zones``: zone as Alidns lists it (Unicode for an IDN zone) -> RecordId (str)
      -> {"RecordId", "DomainName", "RR", "Type", "Value", "TTL", "Line", "Status",
      "Locked", "Weight", "Priority", "CreateTimestamp"}.
    - ``mqtt``: instance id -> {"RegisterCode": str, "CaCertificates": {Sn: {...}},
      "DeviceCertificates": {DeviceSn: {...}}} with the SDK's field names inside.
    """

    cas_region: str = "cn-hangzhou"
    cas_certs: dict[int, dict[str, Any]] = field(default_factory=dict)
    cdn_domains: dict[str, dict[str, Any]] = field(default_factory=dict)
    dcdn_domains: dict[str, dict[str, Any]] = field(default_factory=dict)
    apigw_domains: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    dns_zones: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    mqtt: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ClientToken of an UploadUserCertificate -> the CertId it created.
    cas_tokens: dict[str, int] = field(default_factory=dict)
    #: CertId -> [(CloudProduct, domain)] bound outside acmeali (console, SLB, WAF, ...).
    cas_hand_bound: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    #: Products modelled in their own modules (slb.py, alb.py, nlb.py, casjobs.py) keep
    #: their state here under the module's name, so adding one touches no shared field.
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    # Id counters: numbers shaped like the real ones (8-digit CertIds, long RecordIds).
    _cert_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(12345001),
                                            repr=False)
    _record_ids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(800000000000000001), repr=False)
    _domain_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001),
                                              repr=False)

    def next_cert_id(self) -> int:
        return next(self._cert_ids)

    def next_record_id(self) -> str:
        return str(next(self._record_ids))

    def next_domain_id(self) -> int:
        return next(self._domain_ids)


@dataclass
class Backend:
    """What every action handler gets: the state, where TXT goes, and the region."""

    state: EmulatorState
    challtestsrv: TxtSink | None
    region: str


# ----------------------------------------------------------------------- certificates
def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def to_ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def load_chain(pem: str, what: str, code: str = "InvalidCertificate") -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, leaf first; an API error if there is none."""
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        certs = []
    if not certs:
        raise ApiError(400, code, f"The {what} is not a valid PEM certificate.")
    return certs


def load_key(pem: str, what: str, code: str = "InvalidPrivateKey") -> Any:
    try:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ApiError(400, code, f"The {what} is not a valid unencrypted PEM private "
                       "key.") from None


def key_matches(cert: x509.Certificate, key: Any) -> bool:
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return bool(cert.public_key().public_bytes(der, pub) == key.public_key().public_bytes(der, pub))


def common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def org_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(attrs[0].value) if attrs else ""


def dns_sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value.get_values_for_type(x509.DNSName))


def is_ca(cert: x509.Certificate) -> bool:
    try:
        ext = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return bool(ext.value.ca)


def key_algorithm(cert: x509.Certificate) -> str:
    pub = cert.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return "ECC"
    return "UNKNOWN"


def key_algorithm_of_key(key_pem: str) -> str:
    key = load_key(key_pem, "private key")
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ECC"
    return "UNKNOWN"


def serial_hex(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def fingerprints(cert: x509.Certificate) -> tuple[str, str]:
    """(SHA-1, SHA-256) of the DER encoding, uppercase hex without separators."""
    der = cert.public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der).hexdigest().upper(), hashlib.sha256(der).hexdigest().upper()


def validity(cert: x509.Certificate) -> tuple[dt.datetime, dt.datetime]:
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """True when ``parent``'s key signed ``child`` and the names chain."""
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def covers(pattern_names: list[str], host: str) -> bool:
    """Does a certificate naming ``pattern_names`` cover ``host``? Wildcards one label deep."""
    host = host.lower().rstrip(".")
    for name in pattern_names:
        name = name.lower().rstrip(".")
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False
