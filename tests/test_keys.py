"""acmeali.keys against real openssl: every key type, every format, CSRs as the CA sees them."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from acmeali import keys
from acmeali.config import KEY_TYPES as CONFIG_KEY_TYPES
from acmeali.errors import KeyFileError, UsageError

OPENSSL = shutil.which("openssl")


def openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    if OPENSSL is None:
        pytest.fail("openssl is not installed; run `make test` (it installs the test peers)")
    return subprocess.run([OPENSSL, *args], capture_output=True, input=input, timeout=60)


@pytest.fixture(scope="module")
def all_keys() -> dict[str, keys.PrivateKey]:
    return {t: keys.generate_key(t) for t in keys.KEY_TYPES}


def test_key_types_match_config() -> None:
    assert keys.KEY_TYPES == CONFIG_KEY_TYPES


@pytest.mark.parametrize("key_type", keys.KEY_TYPES)
@pytest.mark.parametrize("pkcs8", [True, False])
def test_every_type_and_format_passes_openssl_check(
        all_keys: dict[str, keys.PrivateKey], key_type: str, pkcs8: bool, tmp_path: Path) -> None:
    key = all_keys[key_type]
    assert keys.key_type_of(key) == key_type
    pem = keys.private_key_pem(key, pkcs8=pkcs8)
    expected = "PKCS#8" if pkcs8 else ("PKCS#1" if key_type.startswith("rsa") else "SEC1")
    assert keys.pem_format(pem) == expected
    path = tmp_path / "k.pem"
    path.write_bytes(pem)
    r = openssl("pkey", "-in", str(path), "-check", "-noout")
    assert r.returncode == 0, r.stderr
    assert b"valid" in r.stdout + r.stderr
    # Round trip: what we load is the same key pair.
    again = keys.load_private_key(pem, source="k.pem")
    assert keys.public_key_sha256(again) == keys.public_key_sha256(key)


@pytest.mark.parametrize("key_type", ["ec256", "ec384", "rsa2048"])
@pytest.mark.parametrize("pkcs8", [True, False])
def test_encrypted_keys_read_by_openssl_with_passin_file(
        all_keys: dict[str, keys.PrivateKey], key_type: str, pkcs8: bool, tmp_path: Path) -> None:
    key = all_keys[key_type]
    pem = keys.private_key_pem(key, pkcs8=pkcs8, passphrase=b"s3cret pass")
    assert b"ENCRYPTED" in pem
    (tmp_path / "k.pem").write_bytes(pem)
    (tmp_path / "pass").write_bytes(b"s3cret pass\n")
    r = openssl("pkey", "-in", str(tmp_path / "k.pem"), "-passin",
                f"file:{tmp_path / 'pass'}", "-check", "-noout")
    assert r.returncode == 0, r.stderr
    loaded = keys.load_private_key_file(tmp_path / "k.pem", tmp_path / "pass")
    assert keys.public_key_sha256(loaded) == keys.public_key_sha256(key)


@pytest.mark.parametrize("genargs", [
    ("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"),
    ("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"),
])
def test_loads_keys_made_by_openssl_in_every_encoding(tmp_path: Path,
                                                      genargs: tuple[str, ...]) -> None:
    pk8 = tmp_path / "pk8.pem"
    assert openssl(*genargs, "-out", str(pk8)).returncode == 0
    trad = tmp_path / "trad.pem"
    kind = "ec" if "EC" in genargs else "rsa"
    r = openssl(kind, "-in", str(pk8), "-out", str(trad), *(["-traditional"] if kind == "rsa"
                                                             else []))
    assert r.returncode == 0, r.stderr
    der = tmp_path / "k.der"
    assert openssl("pkey", "-in", str(pk8), "-outform", "DER", "-out", str(der)).returncode == 0
    enc = tmp_path / "enc.pem"
    (tmp_path / "pw").write_text("hunter2\n")
    r = openssl("pkcs8", "-topk8", "-in", str(pk8), "-out", str(enc), "-passout",
                f"file:{tmp_path / 'pw'}")
    assert r.returncode == 0, r.stderr
    fps = {keys.public_key_sha256(keys.load_private_key_file(p, pw)) for p, pw in
           [(pk8, None), (trad, None), (der, None), (enc, tmp_path / "pw")]}
    assert len(fps) == 1
    assert keys.pem_format(trad.read_bytes()) in ("PKCS#1", "SEC1")
    assert keys.pem_format(enc.read_bytes()) == "PKCS#8, encrypted"


def test_public_key_sha256_matches_openssl(all_keys: dict[str, keys.PrivateKey],
                                           tmp_path: Path) -> None:
    key = all_keys["ec256"]
    (tmp_path / "k.pem").write_bytes(keys.private_key_pem(key))
    der = openssl("pkey", "-in", str(tmp_path / "k.pem"), "-pubout", "-outform", "DER").stdout
    import hashlib

    assert keys.public_key_sha256(key) == hashlib.sha256(der).hexdigest()
    assert keys.public_key_sha256(key.public_key()) == keys.public_key_sha256(key)


# RFC 7638 §3.1: the example RSA key and its thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPeb"
    "WKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368"
    "QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lF"
    "d2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_jwk_thumbprint_rfc7638_vector() -> None:
    n = int.from_bytes(base64.urlsafe_b64decode(RFC7638_N + "=="), "big")
    pub = rsa.RSAPublicNumbers(65537, n).public_key()
    assert keys.jwk_thumbprint(pub) == RFC7638_THUMBPRINT


@pytest.mark.parametrize("key_type", keys.KEY_TYPES)
def test_jwk_thumbprint_agrees_with_josepy(all_keys: dict[str, keys.PrivateKey],
                                           key_type: str) -> None:
    import josepy

    key = all_keys[key_type]
    jwk = (josepy.JWKEC(key=key.public_key()) if key_type.startswith("ec")
           else josepy.JWKRSA(key=key.public_key()))
    expected = base64.urlsafe_b64encode(jwk.thumbprint()).rstrip(b"=").decode()
    assert keys.jwk_thumbprint(key) == expected


def test_ec_thumbprint_pads_short_coordinates() -> None:
    # Find a P-256 key whose x has a leading zero byte: padding must keep 32 bytes.
    for _ in range(2000):
        key = ec.generate_private_key(ec.SECP256R1())
        if key.public_key().public_numbers().x < 1 << 248:
            break
    else:
        pytest.skip("no short coordinate found (astronomically unlikely)")
    import josepy

    jwk = josepy.JWKEC(key=key.public_key())
    assert len(jwk.to_partial_json()["x"]) == 43
    expected = base64.urlsafe_b64encode(jwk.thumbprint()).rstrip(b"=").decode()
    assert keys.jwk_thumbprint(key) == expected


# --------------------------------------------------------------------------- errors
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"nope\.pem: no such file"):
        keys.load_private_key_file(tmp_path / "nope.pem")


def test_directory_is_not_a_key(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"is a directory"):
        keys.load_private_key_file(tmp_path)


def test_not_a_key(tmp_path: Path) -> None:
    p = tmp_path / "junk.pem"
    p.write_text("hello\n")
    with pytest.raises(KeyFileError, match=r"junk\.pem is not a PEM or DER private key"):
        keys.load_private_key_file(p)


def test_certificate_is_not_a_key(tmp_path: Path, all_keys: dict[str, keys.PrivateKey]) -> None:
    csr = keys.build_csr(all_keys["ec256"], ["example.com"])
    with pytest.raises(KeyFileError, match=r"certificate signing request, not a private key"):
        keys.load_private_key(csr, source="x.csr")
    pub = all_keys["ec256"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(KeyFileError, match=r"public key, not a private key"):
        keys.load_private_key(pub, source="pub.pem")


def test_encrypted_key_needs_passphrase(all_keys: dict[str, keys.PrivateKey]) -> None:
    pem = keys.private_key_pem(all_keys["ec256"], passphrase=b"right")
    with pytest.raises(KeyFileError, match=r"encrypted; give its passphrase"):
        keys.load_private_key(pem, source="enc.pem")
    with pytest.raises(KeyFileError, match=r"enc.pem: wrong passphrase") as info:
        keys.load_private_key(pem, b"wrong", source="enc.pem")
    assert "BEGIN" not in str(info.value) and info.value.__cause__ is None


def test_passphrase_for_plain_key_is_ignored(all_keys: dict[str, keys.PrivateKey]) -> None:
    pem = keys.private_key_pem(all_keys["ec256"])
    assert keys.key_type_of(keys.load_private_key(pem, b"unused")) == "ec256"


def test_passphrase_file_errors(tmp_path: Path, all_keys: dict[str, keys.PrivateKey]) -> None:
    p = tmp_path / "k.pem"
    p.write_bytes(keys.private_key_pem(all_keys["ec256"], passphrase=b"pw"))
    with pytest.raises(KeyFileError, match=r"passphrase file .*nopass: no such file"):
        keys.load_private_key_file(p, tmp_path / "nopass")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(KeyFileError, match=r"first line is empty"):
        keys.load_private_key_file(p, tmp_path / "empty")


@pytest.mark.parametrize("make", [
    lambda: ed25519.Ed25519PrivateKey.generate(),
    lambda: ec.generate_private_key(ec.SECP521R1()),
    lambda: rsa.generate_private_key(65537, 1024),
])
def test_unsupported_key_types(make: object, tmp_path: Path) -> None:
    key = make()  # type: ignore[operator]
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    p = tmp_path / "odd.pem"
    p.write_bytes(pem)
    with pytest.raises(KeyFileError, match=r"odd\.pem: unsupported") as info:
        keys.load_private_key_file(p)
    assert "\n" not in info.value.message and "PRIVATE" not in info.value.message


def test_generate_unknown_type() -> None:
    with pytest.raises(UsageError, match=r"unsupported key type 'dsa'"):
        keys.generate_key("dsa")


# --------------------------------------------------------------------------- CSRs
def _csr_text(pem: bytes, tmp_path: Path) -> str:
    (tmp_path / "r.csr").write_bytes(pem)
    r = openssl("req", "-in", str(tmp_path / "r.csr"), "-verify", "-noout", "-text")
    assert r.returncode == 0, r.stderr
    assert b"verify OK" in r.stdout + r.stderr
    return r.stdout.decode()


@pytest.mark.parametrize("key_type", keys.KEY_TYPES)
def test_csr_verifies_with_every_key_type(all_keys: dict[str, keys.PrivateKey], key_type: str,
                                          tmp_path: Path) -> None:
    names = ["example.com", "*.example.com", "xn--bcher-kva.example", "192.0.2.7", "2001:db8::1"]
    pem = keys.build_csr(all_keys[key_type], names)
    text = _csr_text(pem, tmp_path)
    assert ("DNS:example.com, DNS:*.example.com, DNS:xn--bcher-kva.example, "
            "IP Address:192.0.2.7, IP Address:2001:DB8:0:0:0:0:0:1") in text
    assert "CN = example.com" in text and "emailAddress" not in text
    assert "TLS Feature" not in text
    csr = x509.load_pem_x509_csr(pem)
    want = hashes.SHA384 if key_type == "ec384" else hashes.SHA256
    assert isinstance(csr.signature_hash_algorithm, want)


def test_csr_email_and_must_staple(all_keys: dict[str, keys.PrivateKey], tmp_path: Path) -> None:
    pem = keys.build_csr(all_keys["ec256"], ["a.example.com"], email="ops@example.com",
                         must_staple=True)
    text = _csr_text(pem, tmp_path)
    assert "emailAddress = ops@example.com" in text
    assert "TLS Feature" in text and "status_request" in text


def test_csr_long_first_name_has_no_cn(all_keys: dict[str, keys.PrivateKey],
                                       tmp_path: Path) -> None:
    long = "a" * 60 + ".example.com"  # 72 characters: too long for a CN
    pem = keys.build_csr(all_keys["ec256"], [long, "short.example.com"])
    text = _csr_text(pem, tmp_path)
    assert "CN =" not in text
    assert f"DNS:{long}, DNS:short.example.com" in text
    exact = "b" * 52 + ".example.com"  # exactly 64
    assert "CN = " + exact in _csr_text(keys.build_csr(all_keys["ec256"], [exact]), tmp_path)


def test_csr_needs_names(all_keys: dict[str, keys.PrivateKey]) -> None:
    with pytest.raises(UsageError, match=r"no names"):
        keys.build_csr(all_keys["ec256"], [])
