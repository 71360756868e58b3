"""Certificates as acmeali sees them: PEM chains, identities, and the pre-switch bundle check.

``check_bundle`` is the gate in front of the live directory: nothing becomes live (and
nothing is deployed) unless the key matches the leaf, the leaf covers every name asked
for, every chain link is really signed by the next, and the leaf is valid now. Each
failure is a ``StoreError`` whose message says which of those went wrong.
"""

from __future__ import annotations

import base64
import itertools
import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from acmeali import keys
from acmeali.errors import StoreError, UsageError
from acmeali.lineage import CertFacts, to_iso
from acmeali.names import covers

# A CA's clock may run slightly ahead of ours; a certificate "not yet valid" by less than
# this is accepted rather than failing a fresh issuance over clock drift.
CLOCK_SKEW = timedelta(minutes=5)

_BEGIN = b"-----BEGIN CERTIFICATE-----"
_END = b"-----END CERTIFICATE-----"


def _bytes(pem: bytes | str) -> bytes:
    return pem.encode("ascii", "replace") if isinstance(pem, str) else pem


def pem_blocks(data: bytes) -> list[bytes]:
    """The ``BEGIN``..``END CERTIFICATE`` blocks of ``data``, in linear time.

    A lazy regex (``BEGIN.+?END``) rescans to the end of the text for every BEGIN without
    an END: 200 KB of such lines took seconds. Here each byte is looked at a bounded
    number of times: once the text holds no further END, no block can follow.
    """
    blocks: list[bytes] = []
    pos = 0
    while True:
        start = data.find(_BEGIN, pos)
        if start < 0:
            return blocks
        end = data.find(_END, start + len(_BEGIN))
        if end < 0:
            return blocks
        # The innermost BEGIN before this END opens the block (a stray BEGIN line before
        # a real certificate must not swallow it).
        inner = data.rfind(_BEGIN, start, end)
        blocks.append(data[inner:end + len(_END)])
        pos = end + len(_END)


def load_chain(pem: bytes | str) -> list[x509.Certificate]:
    """Every certificate in a PEM text, in order (leaf first for a fullchain)."""
    blocks = pem_blocks(_bytes(pem))
    if not blocks:
        raise StoreError("no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")
    certs: list[x509.Certificate] = []
    for i, block in enumerate(blocks):
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            raise StoreError(f"certificate #{i + 1} in the chain is not valid PEM/DER") from None
    return certs


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def split_fullchain(pem: bytes | str) -> tuple[str, str]:
    """(leaf PEM, intermediates PEM) — the ``cert.pem`` / ``chain.pem`` of the live layout."""
    chain = load_chain(pem)
    return _pem(chain[0]), "".join(_pem(c) for c in chain[1:])


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER, lower-case hex: how deployers recognise what is already deployed."""
    return cert.fingerprint(hashes.SHA256()).hex()


def serial_hex(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def _int_der_content(n: int) -> bytes:
    """The content octets of a DER INTEGER: minimal two's complement, big-endian."""
    length = ((n if n >= 0 else ~n).bit_length() + 8) // 8
    return n.to_bytes(length, "big", signed=True)


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def ari_cert_id(cert: x509.Certificate) -> str | None:
    """RFC 9773 §4.1 identifier: base64url(AKI keyIdentifier) "." base64url(serial DER).

    The serial is the DER INTEGER's content octets, so a serial with its high bit set
    keeps its leading 0x00 — dropping it yields an id the CA does not recognise.
    None when the certificate has no AKI keyIdentifier (then ARI cannot be used).
    """
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    if not aki.key_identifier:
        return None
    return f"{_b64u(aki.key_identifier)}.{_b64u(_int_der_content(cert.serial_number))}"


def _cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def issuer_cn(cert: x509.Certificate) -> str:
    """The issuer's CN (what users know a CA by), else its full RFC 4514 name."""
    return _cn(cert.issuer) or cert.issuer.rfc4514_string()


def names_of(cert: x509.Certificate) -> list[str]:
    """DNS names and IP addresses in the SAN (lower-case, IPs compressed); CN if no SAN."""
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        cn = _cn(cert.subject)
        return [cn.lower()] if cn else []
    assert isinstance(san, x509.SubjectAlternativeName)
    out = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    out += [ip.compressed for ip in san.get_values_for_type(x509.IPAddress)]
    return out


def cert_facts(fullchain_pem: bytes | str, key: keys.PrivateKey | None,
               version: int) -> CertFacts:
    """The facts ``renew`` caches so that a run with nothing due parses no PEM.

    Key facts come from the leaf's public key, so this works for certificates issued
    from a user's CSR (``key`` None) as well.
    """
    leaf = load_chain(fullchain_pem)[0]
    pub = _leaf_public(leaf)
    try:
        key_type = keys.key_type_of(pub)
    except UsageError:
        key_type = "unknown"
    return CertFacts(
        version=version, serial=serial_hex(leaf), fingerprint=fingerprint(leaf),
        not_before=to_iso(leaf.not_valid_before_utc) or "",
        not_after=to_iso(leaf.not_valid_after_utc) or "",
        issuer=issuer_cn(leaf), key_type=key_type, key_sha256=keys.public_key_sha256(pub),
        ari_cert_id=ari_cert_id(leaf))


def _leaf_public(leaf: x509.Certificate) -> keys.PublicKey:
    pub = leaf.public_key()
    if not isinstance(pub, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise StoreError(f"the certificate's key ({type(pub).__name__}) is not EC or RSA")
    return pub


def _subject(cert: x509.Certificate) -> str:
    return _cn(cert.subject) or cert.subject.rfc4514_string() or "(empty subject)"


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, ValueError (names), TypeError (key type)
        return False
    return True


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and _signed_by(cert, cert)


def check_chain_complete(fullchain_pem: bytes | str, *, anchors: Sequence[bytes] = (),
                         previous_intermediates: int = 0) -> None:
    """Refuse a chain a TLS client could not follow to a root; StoreError says why.

    ``check_bundle`` proves the links present are signed by each other; this adds what
    it cannot see: (1) at least one intermediate, unless the leaf is signed directly by a
    trusted root and the lineage's previous chain had none either: a CA that sent one
    before and none now sent a broken chain; (2) where a trusted root (``anchors``, DER)
    carries the name the chain's top certificate points to, the top certificate must
    really be signed by (or be) one of them. A root nobody here knows is not checked:
    that is a promise this function cannot keep (docs/issuing.md says so).
    """
    chain = load_chain(fullchain_pem)
    top = chain[-1]
    roots = []
    with warnings.catch_warnings():  # old system roots (negative serials) are not our news
        warnings.simplefilter("ignore")
        for der in anchors:
            try:
                roots.append(x509.load_der_x509_certificate(der))
            except ValueError:
                continue
    if len(chain) == 1:
        leaf = chain[0]
        if previous_intermediates:
            raise StoreError(f"the CA sent the certificate without any intermediate "
                             f"certificate, where the previous one came with "
                             f"{previous_intermediates}; servers would send an incomplete "
                             "chain, so it was not stored")
        if not any(r.subject == leaf.issuer and _signed_by(leaf, r) for r in roots):
            raise StoreError("the CA sent the certificate without its issuer (no "
                             "intermediate certificate, and no trusted root signed it); "
                             "servers would send an incomplete chain, so it was not stored")
        return
    if _self_signed(top):
        named = [r for r in roots if r.subject == top.subject]
        if named and not any(fingerprint(r) == fingerprint(top) for r in named):
            raise StoreError(f"the chain ends in a root named {_subject(top)!r} that is not "
                             "the trusted root of that name")
        return
    named = [r for r in roots if r.subject == top.issuer]
    if named and not any(_signed_by(top, r) for r in named):
        raise StoreError(f"the chain's top certificate {_subject(top)!r} is not signed by "
                         f"the trusted root {_cn(top.issuer) or top.issuer.rfc4514_string()!r}"
                         " it names")


TLS_FEATURE_NAMES = {x509.TLSFeatureType.status_request: "OCSP must-staple",
                     x509.TLSFeatureType.status_request_v2: "OCSP multi-staple"}


def dropped_extensions(csr_der: bytes, leaf_pem: bytes | str) -> list[str]:
    """Extensions the CSR asked for that the issued certificate lacks (TLS features such
    as must-staple; names are checked by ``check_bundle``). A CA may drop them silently
    (several stopped supporting must-staple); the user asked, so the user is told."""
    csr = x509.load_der_x509_csr(csr_der)
    leaf = load_chain(leaf_pem)[0]
    try:
        asked = csr.extensions.get_extension_for_class(x509.TLSFeature).value
    except x509.ExtensionNotFound:
        return []
    try:
        got = set(leaf.extensions.get_extension_for_class(x509.TLSFeature).value)
    except x509.ExtensionNotFound:
        got = set()
    return [TLS_FEATURE_NAMES.get(f, f"TLS feature {f.value}") for f in asked if f not in got]


def check_bundle(key: keys.PrivateKey, fullchain_pem: bytes | str, names: Sequence[str], *,
                 roots_pem: bytes | None = None, now: datetime | None = None) -> None:
    """Refuse a bundle that would break a server if it went live; StoreError says why."""
    chain = load_chain(fullchain_pem)
    leaf = chain[0]
    if keys.public_key_sha256(_leaf_public(leaf)) != keys.public_key_sha256(key):
        raise StoreError("the certificate's public key does not match the private key")
    have = names_of(leaf)
    missing = [n for n in names if not any(covers(h, n.lower()) for h in have)]
    if missing:
        raise StoreError(f"the certificate does not cover {', '.join(missing)} "
                         f"(it has {', '.join(have) or 'no names'})")
    for i, (cert, issuer) in enumerate(itertools.pairwise(chain)):
        if not _signed_by(cert, issuer):
            raise StoreError(f"chain link {i + 1}: {_subject(cert)!r} is not signed by the "
                             f"next certificate {_subject(issuer)!r}")
    if roots_pem is not None:
        roots = load_chain(roots_pem)
        top = chain[-1]
        top_fp = fingerprint(top)
        if not any(fingerprint(r) == top_fp or _signed_by(top, r) for r in roots):
            raise StoreError(f"the chain does not lead to a trusted root: {_subject(top)!r} "
                             f"is not signed by any of the {len(roots)} root(s) given")
    moment = now or datetime.now(timezone.utc)
    if moment + CLOCK_SKEW < leaf.not_valid_before_utc:
        raise StoreError(f"the certificate is not valid before {to_iso(leaf.not_valid_before_utc)}"
                         " (check this host's clock)")
    if moment >= leaf.not_valid_after_utc:
        raise StoreError(f"the certificate expired at {to_iso(leaf.not_valid_after_utc)}")
