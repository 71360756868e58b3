"""Private keys and CSRs: the only place acmeali makes, reads or serialises a key.

Keeping it in one module keeps one rule enforceable: key material never reaches an
exception message, a log line or a process argument. Every error here names the file
(or the ``source`` label the caller gives) and what is wrong, never the bytes.

Supported key types are the ones Let's Encrypt and Alibaba Cloud both accept: EC P-256,
EC P-384 and RSA 2048/3072/4096. Anything else is refused when loaded, so a key that
works locally cannot fail later at the CA or at an upload.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from acmeali.errors import KeyFileError, UsageError

KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_CURVES: dict[str, ec.EllipticCurve] = {"ec256": ec.SECP256R1(), "ec384": ec.SECP384R1()}
_CURVE_TYPES = {"secp256r1": "ec256", "secp384r1": "ec384"}
_RSA_SIZES = (2048, 3072, 4096)
# RFC 7518 §6.2.1.1: the JWK curve names, and coordinate sizes for RFC 7638 padding.
_JWK_CURVES = {"secp256r1": ("P-256", 32), "secp384r1": ("P-384", 48)}
_CN_MAX = 64  # RFC 5280 ub-common-name


def generate_key(key_type: str) -> PrivateKey:
    """A fresh key of one of ``KEY_TYPES`` (EC is the default everywhere: fast to make and use)."""
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type])
    if key_type.startswith("rsa") and key_type in KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    raise UsageError(f"unsupported key type {key_type!r}; expected one of {', '.join(KEY_TYPES)}")


def key_type_of(key: PrivateKey | PublicKey) -> str:
    """``ec256`` ... ``rsa4096`` for a private or public key; UsageError for anything else."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        kind = _CURVE_TYPES.get(key.curve.name)
        if kind:
            return kind
        raise UsageError(f"unsupported EC curve {key.curve.name}; use P-256 or P-384")
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        if key.key_size in _RSA_SIZES:
            return f"rsa{key.key_size}"
        raise UsageError(f"unsupported RSA key size {key.key_size}; use 2048, 3072 or 4096")
    raise UsageError(f"unsupported key algorithm {type(key).__name__}; use EC or RSA")


def pem_format(data: bytes) -> str:
    """Which encoding a PEM key uses (for ``key show``): PKCS#8, PKCS#1 or SEC1, +encrypted."""
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data:
        return "PKCS#8, encrypted"
    if b"-----BEGIN PRIVATE KEY-----" in data:
        return "PKCS#8"
    enc = ", encrypted" if b"Proc-Type: 4,ENCRYPTED" in data else ""
    if b"-----BEGIN RSA PRIVATE KEY-----" in data:
        return "PKCS#1" + enc
    if b"-----BEGIN EC PRIVATE KEY-----" in data:
        return "SEC1" + enc
    return "DER" if not data.lstrip().startswith(b"-----") else "unknown"


def _not_a_key_reason(data: bytes) -> str:
    if b"-----BEGIN CERTIFICATE-----" in data:
        return "is a certificate, not a private key"
    if b"-----BEGIN CERTIFICATE REQUEST-----" in data:
        return "is a certificate signing request, not a private key"
    if b"PUBLIC KEY-----" in data:
        return "is a public key, not a private key"
    return "is not a PEM or DER private key"


def load_private_key(data: bytes, passphrase: bytes | None = None, *,
                     source: str = "key") -> PrivateKey:
    """Parse PKCS#1, SEC1 or PKCS#8 (PEM or DER, maybe encrypted) into a supported key.

    A passphrase given for an unencrypted key is ignored rather than refused: the key
    is still the one the user meant, and refusing would only make scripts brittle.
    """
    is_pem = b"-----BEGIN" in data
    encrypted = b"ENCRYPTED" in data if is_pem else False
    loader = serialization.load_pem_private_key if is_pem else serialization.load_der_private_key
    password = passphrase if encrypted or not is_pem else None
    try:
        try:
            key = loader(data, password=password)
        except TypeError:
            if password is not None and not is_pem:
                key = loader(data, password=None)  # DER without encryption, passphrase given
            else:
                raise
    except TypeError:
        raise KeyFileError(f"{source}: the key is encrypted; give its passphrase with "
                           "--passphrase-file") from None
    except UnsupportedAlgorithm:
        raise KeyFileError(f"{source}: unsupported key type; use EC P-256/P-384 or "
                           "RSA 2048/3072/4096") from None
    except ValueError:
        if encrypted:
            raise KeyFileError(f"{source}: wrong passphrase (or a damaged key file)") from None
        raise KeyFileError(f"{source} {_not_a_key_reason(data)}") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise KeyFileError(f"{source}: unsupported key type {type(key).__name__.lstrip('_')}; "
                           "use EC P-256/P-384 or RSA 2048/3072/4096")
    try:
        key_type_of(key)
    except UsageError as exc:
        raise KeyFileError(f"{source}: {exc.message}") from None
    return key


def _read_file(path: str | Path, what: str) -> bytes:
    """A regular file of at most 1 MiB (not /dev/zero, not a FIFO): KeyFileError else."""
    from acmeali.validate import InvalidValue, read_input_file

    try:
        return read_input_file(path, what)
    except InvalidValue as exc:
        raise KeyFileError(str(exc)) from None


def read_key_file(path: str | Path) -> bytes:
    """The bytes of a key file, read as :func:`load_private_key_file` reads them."""
    return _read_file(path, str(path))


def read_passphrase_file(path: str | Path) -> bytes:
    """The first line of ``path`` without its newline, as ``openssl -passin file:`` reads it."""
    raw = _read_file(path, f"passphrase file {path}")
    line = raw.split(b"\n", 1)[0].rstrip(b"\r")
    if not line:
        raise KeyFileError(f"passphrase file {path}: the first line is empty")
    return line


def load_private_key_file(path: str | Path,
                          passphrase_file: str | Path | None = None) -> PrivateKey:
    """Read and parse a key file; every failure is a one-line KeyFileError naming the file."""
    data = _read_file(path, str(path))
    passphrase = read_passphrase_file(passphrase_file) if passphrase_file is not None else None
    return load_private_key(data, passphrase, source=str(path))


def private_key_pem(key: PrivateKey, *, pkcs8: bool = True,
                    passphrase: bytes | None = None) -> bytes:
    """PEM: PKCS#8 (what Alibaba Cloud uploads require) or the traditional PKCS#1/SEC1 form."""
    fmt = (serialization.PrivateFormat.PKCS8 if pkcs8
           else serialization.PrivateFormat.TraditionalOpenSSL)
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase
        else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, fmt, enc)


def _public(key: PrivateKey | PublicKey) -> PublicKey:
    if isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        return key.public_key()
    return key


def public_key_sha256(key: PrivateKey | PublicKey) -> str:
    """Hex SHA-256 of the SubjectPublicKeyInfo DER: the identity of a key pair.

    Used as the key of the compromised-key list, so it must be stable across PEM formats
    and computable from a certificate alone (no private key needed).
    """
    spki = _public(key).public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint_bytes(n: int, length: int | None = None) -> bytes:
    return n.to_bytes(length or max(1, (n.bit_length() + 7) // 8), "big")


def jwk_thumbprint(key: PrivateKey | PublicKey) -> str:
    """RFC 7638 thumbprint, base64url without padding.

    Computed by hand (§3.2): only the required members, sorted, no white space. EC
    coordinates are padded to the curve size (RFC 7518 §6.2.1.2) and RSA integers are
    minimal big-endian — the details that make two implementations agree.
    """
    pub = _public(key)
    members: dict[str, str]
    if isinstance(pub, ec.EllipticCurvePublicKey):
        crv, size = _JWK_CURVES.get(pub.curve.name, (None, 0))
        if crv is None:
            raise UsageError(f"unsupported EC curve {pub.curve.name}; use P-256 or P-384")
        nums = pub.public_numbers()
        members = {"crv": crv, "kty": "EC", "x": _b64u(_uint_bytes(nums.x, size)),
                   "y": _b64u(_uint_bytes(nums.y, size))}
    else:
        rnums = pub.public_numbers()
        members = {"e": _b64u(_uint_bytes(rnums.e)), "kty": "RSA",
                   "n": _b64u(_uint_bytes(rnums.n))}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return _b64u(hashlib.sha256(canonical.encode("ascii")).digest())


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def build_csr(key: PrivateKey, names: Sequence[str], *, email: str | None = None,
              must_staple: bool = False) -> bytes:
    """A PEM CSR for ``names`` (already normalised by ``acmeali.names``).

    The CA reads only the SAN extension, so every name goes there; the CN copies the
    first name for old software, but only when it fits the 64-character X.520 bound
    (a longer CN makes the whole CSR invalid). P-384 keys sign with SHA-384, matching
    the curve strength as CAs expect; everything else with SHA-256.
    """
    unique = list(dict.fromkeys(names))
    if not unique:
        raise UsageError("no names for the CSR; give at least one with -d NAME")
    attrs: list[x509.NameAttribute[str]] = []
    if len(unique[0]) <= _CN_MAX:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, unique[0]))
    if email:
        attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    try:
        builder = (x509.CertificateSigningRequestBuilder()
                   .subject_name(x509.Name(attrs))
                   .add_extension(x509.SubjectAlternativeName(
                       [_general_name(n) for n in unique]), critical=False))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"cannot build a CSR for these names: {exc}") from None
    if must_staple:
        # RFC 7633: the TLS Feature extension with status_request (5) is OCSP must-staple.
        builder = builder.add_extension(
            x509.TLSFeature([x509.TLSFeatureType.status_request]), critical=False)
    algorithm: hashes.SHA256 | hashes.SHA384 = (
        hashes.SHA384() if isinstance(key, ec.EllipticCurvePrivateKey)
        and key.curve.name == "secp384r1" else hashes.SHA256())
    csr = builder.sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.PEM)
