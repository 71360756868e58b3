"""The local CA, judged by OpenSSL: every leaf verifies, extensions are what TLS stacks
check, keys parse, secrets are 0600, serials never repeat, and bad input writes nothing."""

from __future__ import annotations

import datetime as dt
import random
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acmeali.errors import UsageError
from acmeali.localca import (
    CA_KEY_TYPES,
    LocalCA,
    SerialRegistry,
    parse_subject,
    write_outputs,
)
from tests.conftest import run_acmeali
from tests.peers.pebble import require_binary


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_binary("openssl"), *args], capture_output=True, text=True,
                          timeout=30)


def x509_text(path: Path) -> str:
    r = openssl("x509", "-in", str(path), "-noout", "-text")
    assert r.returncode == 0, r.stderr
    return r.stdout


def verify(ca: Path, *leaves: Path) -> None:
    for leaf in leaves:
        r = openssl("verify", "-CAfile", str(ca), str(leaf))
        assert r.returncode == 0 and r.stdout.strip() == f"{leaf}: OK", (leaf, r.stdout, r.stderr)


def pkey_ok(path: Path) -> None:
    r = openssl("pkey", "-in", str(path), "-noout")
    assert r.returncode == 0, (path, r.stderr)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def ok(*args: str) -> subprocess.CompletedProcess[str]:
    r = run_acmeali(*args)
    assert r.returncode == 0, r.stderr
    return r


def refused(*args: str, contains: str) -> str:
    """Exit 2, one error line (plus at most a hint line), no traceback."""
    r = run_acmeali(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: "), r.stderr
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].lstrip().startswith("hint:")), r.stderr
    assert "Traceback" not in r.stderr
    assert contains in lines[0], lines[0]
    return lines[0]


def snapshot(*dirs: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for d in dirs:
        if d.exists():
            for p in sorted(d.rglob("*")):
                if p.is_file():
                    out[str(p)] = p.read_bytes()
    return out


# --------------------------------------------------------------------------- happy paths
@pytest.mark.parametrize("ca_type,leaf_type", [("rsa2048", "rsa2048"), ("ec256", "ec256"),
                                               ("ec384", "rsa2048"), ("rsa4096", "ec384")])
def test_full_workflow_verified_by_openssl(tmp_path: Path, ca_type: str, leaf_type: str) -> None:
    ca, srv, dev = tmp_path / "ca", tmp_path / "srv", tmp_path / "dev"
    r = ok("ca", "init", "--dir", str(ca), "--key-type", ca_type,
           "--subject", "C=CN,ST=ZJ,L=HZ,O=ALI,OU=MQTT,CN=acmeali test CA")
    assert str(ca / "CA.key") in r.stdout and str(ca / "CA.crt") in r.stdout
    assert "next:" in r.stderr
    ok("ca", "server-cert", "--ca", str(ca), "-d", "*.mqtt.aliyuncs.com",
       "-d", "mqtt-test.cn-qingdao.aliyuncs.com", "-d", "127.0.0.1", "--key-type", leaf_type,
       "--out", str(srv))
    ok("ca", "device-cert", "--ca", str(ca), "--device-id", "GID_test@@@dev-1",
       "--key-type", leaf_type, "--out", str(dev))
    ok("ca", "verification-cert", "--ca", str(ca), "--code", "i29adsjfp29jfj92jlajsdf0000")

    verify(ca / "CA.crt", srv / "server.crt", srv / "server_chain.crt",
           dev / "GID_test@@@dev-1.crt", dev / "GID_test@@@dev-1_chain.crt",
           ca / "verificationCert.crt")
    for key_file in (ca / "CA.key", srv / "server.key", srv / "server_pkcs8.key",
                     dev / "GID_test@@@dev-1.key", ca / "verificationCert.key"):
        pkey_ok(key_file)
    assert (srv / "server_pkcs8.key").read_text().startswith("-----BEGIN PRIVATE KEY-----")
    # server.key is the traditional form the OpenSSL walk-through's ecparam/genrsa produce.
    assert "BEGIN RSA PRIVATE KEY" in (srv / "server.key").read_text() or \
        "BEGIN EC PRIVATE KEY" in (srv / "server.key").read_text()
    assert stat.S_IMODE((ca / "CA.crt").stat().st_mode) == 0o644

    ca_text = x509_text(ca / "CA.crt")
    assert "X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0" in ca_text
    assert "X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign" in ca_text
    assert "X509v3 Subject Key Identifier" in ca_text
    assert "X509v3 Authority Key Identifier" in ca_text
    assert "Subject: C = CN, ST = ZJ, L = HZ, O = ALI, OU = MQTT, CN = acmeali test CA" in ca_text

    srv_text = x509_text(srv / "server.crt")
    assert "X509v3 Basic Constraints: critical\n                CA:FALSE" in srv_text
    usage = ("Digital Signature, Key Encipherment" if leaf_type.startswith("rsa")
             else "Digital Signature\n")
    assert f"X509v3 Key Usage: critical\n                {usage}" in srv_text
    assert "Certificate Sign" not in srv_text
    assert "TLS Web Server Authentication" in srv_text
    assert "TLS Web Client Authentication" not in srv_text
    assert ("DNS:*.mqtt.aliyuncs.com, DNS:mqtt-test.cn-qingdao.aliyuncs.com, "
            "IP Address:127.0.0.1") in srv_text
    assert "Subject: CN = *.mqtt.aliyuncs.com" in srv_text
    assert "X509v3 Subject Key Identifier" in srv_text
    assert "X509v3 Authority Key Identifier" in srv_text

    dev_text = x509_text(dev / "GID_test@@@dev-1.crt")
    assert "Subject: CN = GID_test@@@dev-1" in dev_text
    assert "TLS Web Client Authentication" in dev_text
    assert "TLS Web Server Authentication" not in dev_text
    assert "CA:FALSE" in dev_text

    ver_text = x509_text(ca / "verificationCert.crt")
    assert "Subject: CN = i29adsjfp29jfj92jlajsdf0000" in ver_text
    assert "Issuer: C = CN, ST = ZJ, L = HZ, O = ALI, OU = MQTT, CN = acmeali test CA" in ver_text

    # chains: leaf first, then the CA, byte for byte
    ca_pem = (ca / "CA.crt").read_bytes()
    assert (srv / "server_chain.crt").read_bytes() == (srv / "server.crt").read_bytes() + ca_pem
    assert (dev / "GID_test@@@dev-1_chain.crt").read_bytes() == \
        (dev / "GID_test@@@dev-1.crt").read_bytes() + ca_pem

    # the key in server_pkcs8.key is the key of server.crt
    cert = x509.load_pem_x509_certificate((srv / "server.crt").read_bytes())
    key = serialization.load_pem_private_key((srv / "server_pkcs8.key").read_bytes(), None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(serialization.Encoding.DER, spki) == \
        cert.public_key().public_bytes(serialization.Encoding.DER, spki)


def test_pkcs8_command(tmp_path: Path) -> None:
    trad = tmp_path / "server.key"
    r = openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(trad))
    assert r.returncode == 0, r.stderr
    assert "BEGIN EC PRIVATE KEY" in trad.read_text()
    out = tmp_path / "server_pkcs8.key"
    r = ok("ca", "pkcs8", str(trad), "--out", str(out))
    assert str(out) in r.stdout
    assert out.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    pkey_ok(out)
    a = openssl("pkey", "-in", str(trad), "-pubout").stdout
    b = openssl("pkey", "-in", str(out), "-pubout").stdout
    assert a == b and a
    refused("ca", "pkcs8", str(trad), "--out", str(out), contains="file exists")
    ok("ca", "pkcs8", str(trad), "--out", str(out), "--force")
    refused("ca", "pkcs8", str(tmp_path / "missing.key"), "--out", str(tmp_path / "x.key"),
            contains="no such file")


def test_encrypted_ca_key(tmp_path: Path) -> None:
    ca, pw = tmp_path / "ca", tmp_path / "pw"
    pw.write_text("correct horse\n")
    ok("ca", "init", "--dir", str(ca), "--key-type", "ec256", "--passphrase-file", str(pw))
    assert "ENCRYPTED PRIVATE KEY" in (ca / "CA.key").read_text()
    ok("ca", "device-cert", "--ca", str(ca), "--ca-passphrase-file", str(pw),
       "--device-id", "d1", "--key-type", "ec256", "--out", str(tmp_path / "d"))
    verify(ca / "CA.crt", tmp_path / "d" / "d1.crt")
    refused("ca", "device-cert", "--ca", str(ca), "--device-id", "d2", "--out",
            str(tmp_path / "e"), contains="CA.key")
    assert not (tmp_path / "e").exists()


def test_leaf_validity_is_cut_to_the_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    ok("ca", "init", "--dir", str(ca), "--key-type", "ec256", "--days", "10")
    r = ok("ca", "device-cert", "--ca", str(ca), "--device-id", "d1", "--key-type", "ec256",
           "--days", "100", "--out", str(tmp_path / "d"))
    assert "validity cut to the CA's end" in r.stdout
    ca_cert = x509.load_pem_x509_certificate((ca / "CA.crt").read_bytes())
    leaf = x509.load_pem_x509_certificate((tmp_path / "d" / "d1.crt").read_bytes())
    assert leaf.not_valid_after_utc == ca_cert.not_valid_after_utc


def test_overwrite_needs_force(tmp_path: Path) -> None:
    ca, srv = tmp_path / "ca", tmp_path / "srv"
    ok("ca", "init", "--dir", str(ca), "--key-type", "ec256")
    before_ca = snapshot(ca)
    refused("ca", "init", "--dir", str(ca), contains="already has CA.key, CA.crt")
    assert snapshot(ca) == before_ca
    ok("ca", "server-cert", "--ca", str(ca), "-d", "mqtt.example.com", "--key-type", "ec256",
       "--out", str(srv))
    before = snapshot(srv, ca)
    refused("ca", "server-cert", "--ca", str(ca), "-d", "mqtt.example.com", "--out", str(srv),
            contains="already has server.key")
    assert snapshot(srv, ca) == before  # not even a serial was used
    ok("ca", "server-cert", "--ca", str(ca), "-d", "mqtt.example.com", "--key-type", "ec256",
       "--out", str(srv), "--force")
    assert (srv / "server.crt").read_bytes() != before[str(srv / "server.crt")]
    verify(ca / "CA.crt", srv / "server_chain.crt")
    ok("ca", "init", "--dir", str(ca), "--key-type", "ec256", "--force")
    assert (ca / "CA.crt").read_bytes() != before_ca[str(ca / "CA.crt")]


def test_key_types_match_the_library() -> None:
    from acmeali.commands.ca import KEY_TYPES

    assert tuple(KEY_TYPES) == CA_KEY_TYPES


# --------------------------------------------------------------------------- serials
def test_serials_unique_and_recorded(tmp_path: Path) -> None:
    ca, files = LocalCA.create(tmp_path / "ca", key_type="ec256")
    write_outputs(tmp_path / "ca", files, force=False)
    ca = LocalCA.load(tmp_path / "ca")
    serials = {ca.cert.serial_number}
    for i in range(60):
        leaf = ca.device_cert(f"dev{i}", key_type="ec256", days=30)
        serials.add(leaf.cert.serial_number)
    assert len(serials) == 61
    assert SerialRegistry(tmp_path / "ca").used() == serials
    assert all(0 < s < 2**159 for s in serials)


def test_serial_registry_never_repeats_under_collisions(tmp_path: Path) -> None:
    """A tiny serial space forces collisions; the flocked registry still hands out each
    serial at most once, across threads with their own file descriptors."""
    reg = SerialRegistry(tmp_path)
    rng = random.Random(7)
    lock = threading.Lock()

    def gen() -> int:
        with lock:
            return rng.randint(1, 300)

    got: list[int] = []

    def worker() -> None:
        for _ in range(30):
            s = SerialRegistry(tmp_path).allocate("device", "x", gen)
            with lock:
                got.append(s)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 240 and len(set(got)) == 240
    assert reg.used() == set(got)


def test_corrupt_serial_file_is_reported(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    ok("ca", "init", "--dir", str(ca), "--key-type", "ec256")
    with (ca / "serials.txt").open("a") as fh:
        fh.write("not-hex\n")
    r = run_acmeali("ca", "device-cert", "--ca", str(ca), "--device-id", "d", "--out",
                    str(tmp_path / "d"))
    assert r.returncode == 1 and "serials.txt:2: not a hexadecimal serial" in r.stderr
    assert not (tmp_path / "d" / "d.crt").exists()


# --------------------------------------------------------------------------- bad input
def _make_ca(path: Path) -> Path:
    _, files = LocalCA.create(path, key_type="ec256")
    write_outputs(path, files, force=False)
    return path


def _write_cert(dirpath: Path, *, ca: bool, not_after: dt.datetime) -> None:
    """A hand-made CA.crt/CA.key pair with chosen flaws."""
    dirpath.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flawed")])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(not_after - dt.timedelta(days=400)).not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    cert = b.sign(key, hashes.SHA256())
    (dirpath / "CA.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (dirpath / "CA.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


@pytest.fixture
def good_ca(tmp_path: Path) -> Path:
    return _make_ca(tmp_path / "good")


def test_bad_ca_directories(tmp_path: Path, good_ca: Path) -> None:
    out = tmp_path / "out"
    now = dt.datetime.now(dt.timezone.utc)
    args = ("--device-id", "d1", "--out", str(out))

    refused("ca", "device-cert", "--ca", str(tmp_path / "nope"), *args,
            contains="no such directory")
    nokey = tmp_path / "nokey"
    nokey.mkdir()
    (nokey / "CA.crt").write_bytes((good_ca / "CA.crt").read_bytes())
    refused("ca", "device-cert", "--ca", str(nokey), *args, contains="CA.key is not")

    mismatch = _make_ca(tmp_path / "mismatch")
    (mismatch / "CA.key").write_bytes((good_ca / "CA.key").read_bytes())
    refused("ca", "server-cert", "--ca", str(mismatch), "-d", "a.example.com",
            "--out", str(out), contains="does not belong to")

    _write_cert(tmp_path / "notca", ca=False, not_after=now + dt.timedelta(days=30))
    refused("ca", "device-cert", "--ca", str(tmp_path / "notca"), *args,
            contains="is not a CA certificate")

    _write_cert(tmp_path / "expired", ca=True, not_after=now - dt.timedelta(days=1))
    refused("ca", "verification-cert", "--ca", str(tmp_path / "expired"), "--code", "abc",
            "--out", str(out), contains="expired on")

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "CA.crt").write_text("not a certificate")
    (garbage / "CA.key").write_text("not a key")
    refused("ca", "device-cert", "--ca", str(garbage), *args, contains="not a PEM certificate")

    assert not out.exists()
    for d in ("notca", "expired", "garbage"):
        assert not (tmp_path / d / "serials.txt").exists(), d
    assert len((mismatch / "serials.txt").read_text().splitlines()) == 1  # the CA's own


def test_bad_arguments_write_nothing(tmp_path: Path, good_ca: Path) -> None:
    out = tmp_path / "out"
    before = snapshot(good_ca)
    ca = ("--ca", str(good_ca))
    refused("ca", "verification-cert", *ca, "--code", "", "--out", str(out),
            contains="registration code is empty")
    refused("ca", "verification-cert", *ca, "--code", "   ", "--out", str(out),
            contains="registration code is empty")
    refused("ca", "verification-cert", *ca, "--code", "a b", "--out", str(out),
            contains="at most 64 characters")
    refused("ca", "verification-cert", *ca, "--code", "x" * 65, "--out", str(out),
            contains="at most 64 characters")
    for bad in ("", "a b", "../etc", ".hidden", "x" * 65, "dev/1", "dév"):
        refused("ca", "device-cert", *ca, "--device-id", bad, "--out", str(out),
                contains="--device-id")
    refused("ca", "server-cert", *ca, "-d", "bad..name", "--out", str(out), contains="-d:")
    refused("ca", "server-cert", *ca, "-d", "a.*.example.com", "--out", str(out),
            contains="wildcard")
    refused("ca", "server-cert", *ca, "-d", "a.example.com", "--subject", "CN=x,XX=1",
            "--out", str(out), contains="unknown attribute 'XX'")
    refused("ca", "server-cert", *ca, "-d", "a.example.com", "--days", "0", "--out", str(out),
            contains="--days 0")
    refused("ca", "device-cert", *ca, "--device-id", "d", "--days", "-5", "--out", str(out),
            contains="--days -5")
    assert not out.exists()
    assert snapshot(good_ca) == before

    newca = tmp_path / "newca"
    refused("ca", "init", "--dir", str(newca), "--subject", "C=China,CN=x",
            contains="two-letter country code")
    refused("ca", "init", "--dir", str(newca), "--subject", "O=only org",
            contains="needs a CN")
    refused("ca", "init", "--dir", str(newca), "--subject", "CN=", contains="empty value")
    refused("ca", "init", "--dir", str(newca), "--subject", "CN=x,OU", contains="not KEY=VALUE")
    refused("ca", "init", "--dir", str(newca), "--days", "0", contains="--days 0")
    refused("ca", "init", "--dir", str(newca), "--passphrase-file", str(tmp_path / "nopw"),
            contains="passphrase file")
    assert not newca.exists()


def test_parse_subject() -> None:
    name = parse_subject(r"C=cn,ST=ZJ,L=HZ,O=Acme\, Inc.,OU=MQTT,emailAddress=a@b.c,CN=x")
    assert name.rfc4514_string() == r"CN=x,1.2.840.113549.1.9.1=a@b.c,OU=MQTT,O=Acme\, Inc.," \
                                     "L=HZ,ST=ZJ,C=CN"
    assert parse_subject("/C=CN/O=ALI/CN=y").rfc4514_string() == "CN=y,O=ALI,C=CN"
    assert parse_subject("OU=a, OU=b, CN=z").rfc4514_string() == "CN=z,OU=b,OU=a"
    with pytest.raises(UsageError, match="unknown attribute 'DC'"):
        parse_subject("DC=com,CN=x")
    with pytest.raises(UsageError, match="CN is 65 characters"):
        parse_subject("CN=" + "a" * 65)
