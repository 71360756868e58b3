"""`acmeali key ...` and `acmeali csr` as a user runs them: real processes, real openssl."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_acmeali

OPENSSL = shutil.which("openssl")


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    if OPENSSL is None:
        pytest.fail("openssl is not installed; run `make test`")
    return subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=60)


def ok(*args: str) -> subprocess.CompletedProcess[str]:
    r = run_acmeali(*args)
    assert r.returncode == 0, r.stderr
    return r


def fails(*args: str) -> str:
    """Exit 2, exactly one line on stderr; returns that line."""
    r = run_acmeali(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.parametrize("key_type", ["ec256", "ec384", "rsa2048", "rsa3072", "rsa4096"])
def test_generate_every_type(tmp_path: Path, key_type: str) -> None:
    out = tmp_path / "k.pem"
    r = ok("key", "generate", "--type", key_type, "--out", str(out))
    assert str(out) in r.stdout
    assert mode(out) == 0o600
    check = openssl("pkey", "-in", str(out), "-check", "-noout")
    assert check.returncode == 0, check.stderr
    header = out.read_text().splitlines()[0]
    assert header == ("-----BEGIN RSA PRIVATE KEY-----" if key_type.startswith("rsa")
                      else "-----BEGIN EC PRIVATE KEY-----")
    show = ok("key", "show", str(out)).stdout
    assert f"type: {key_type}" in show
    assert "BEGIN" not in show + r.stdout + r.stderr


def test_generate_defaults_to_ec256_pkcs8_and_encrypted(tmp_path: Path) -> None:
    out = tmp_path / "k.pem"
    ok("key", "generate", "--out", str(out), "--pkcs8")
    assert out.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert "type: ec256 (EC P-256, 256 bits)" in ok("key", "show", str(out)).stdout
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    enc = tmp_path / "enc.pem"
    ok("key", "generate", "--type", "rsa2048", "--out", str(enc), "--passphrase-file", str(pw))
    assert mode(enc) == 0o600 and "ENCRYPTED" in enc.read_text()
    r = openssl("pkey", "-in", str(enc), "-passin", f"file:{pw}", "-check", "-noout")
    assert r.returncode == 0, r.stderr
    show = ok("key", "show", str(enc), "--passphrase-file", str(pw)).stdout
    assert "type: rsa2048" in show and "encrypted" in show


def test_show_matches_openssl_and_rfc7638(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    assert openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout",
                   "-out", str(key)).returncode == 0
    show = ok("key", "show", str(key)).stdout
    import hashlib

    der = subprocess.run([OPENSSL or "openssl", "pkey", "-in", str(key), "-pubout", "-outform",
                          "DER"], capture_output=True, timeout=30).stdout
    assert f"public key sha256: {hashlib.sha256(der).hexdigest()}" in show
    assert "format: SEC1" in show
    thumb = [line for line in show.splitlines() if line.startswith("jwk thumbprint: ")]
    assert len(thumb) == 1 and len(thumb[0].split(": ")[1]) == 43


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "k.pem"
    out.write_text("precious")
    line = fails("key", "generate", "--out", str(out))
    assert line == f"error: --out {out}: file exists; pass --force to overwrite it"
    assert out.read_text() == "precious"
    ok("key", "generate", "--out", str(out), "--force")
    assert "PRIVATE KEY" in out.read_text() and mode(out) == 0o600


def test_pkcs8_conversion(tmp_path: Path) -> None:
    src = tmp_path / "rsa.pem"
    assert openssl("genrsa", "-traditional", "-out", str(src), "2048").returncode == 0
    pw = tmp_path / "pw"
    pw.write_text("pw1234\n")
    enc = tmp_path / "enc.pem"
    assert openssl("pkey", "-in", str(src), "-aes256", "-passout", f"file:{pw}",
                   "-out", str(enc)).returncode == 0
    for inp, extra in ((src, []), (enc, ["--passphrase-file", str(pw)])):
        out = tmp_path / f"out-{inp.name}"
        ok("key", "pkcs8", str(inp), "--out", str(out), *extra)
        assert out.read_text().startswith("-----BEGIN PRIVATE KEY-----")
        assert mode(out) == 0o600
        assert openssl("pkey", "-in", str(out), "-check", "-noout").returncode == 0
    same = [openssl("pkey", "-in", str(p), "-pubout").stdout
            for p in (src, tmp_path / "out-rsa.pem", tmp_path / "out-enc.pem")]
    assert len(set(same)) == 1


def test_csr(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    ok("key", "generate", "--type", "ec384", "--out", str(key))
    csr = tmp_path / "r.csr"
    r = ok("csr", "--key", str(key), "-d", "Example.COM", "-d", "*.example.com",
           "-d", "bücher.example", "-d", "example.com", "-d", "2001:db8::1",
           "--email", "ops@example.com", "--must-staple", "--out", str(csr))
    assert "listed more than once" in r.stderr
    v = openssl("req", "-in", str(csr), "-verify", "-noout", "-text")
    assert v.returncode == 0, v.stderr
    assert "verify OK" in v.stdout + v.stderr
    assert ("DNS:example.com, DNS:*.example.com, DNS:xn--bcher-kva.example, "
            "IP Address:2001:DB8:0:0:0:0:0:1") in v.stdout
    assert "CN = example.com, emailAddress = ops@example.com" in v.stdout
    assert "status_request" in v.stdout and "ecdsa-with-SHA384" in v.stdout


@pytest.mark.parametrize("name,why", [
    ("a..example.com", "empty label"),
    ("x" * 64 + ".example.com", "longer than 63"),
    (("a" * 60 + ".") * 4 + "example.com", "longer than 253"),
    ("has space.example.com", "white space"),
    ("-lead.example.com", "hyphen"),
    ("www.*.example.com", "leftmost"),
])
def test_csr_rejects_malformed_names(tmp_path: Path, name: str, why: str) -> None:
    key = tmp_path / "k.pem"
    ok("key", "generate", "--out", str(key))
    out = tmp_path / "r.csr"
    line = fails("csr", "--key", str(key), "-d", "ok.example.com", f"--domain={name}",
                 "--out", str(out))
    assert line.startswith("error: -d: ") and why in line
    assert not out.exists()


def test_bad_key_inputs(tmp_path: Path) -> None:
    out = tmp_path / "r.csr"
    assert fails("csr", "--key", str(tmp_path / "none.pem"), "-d", "a.example.com",
                 "--out", str(out)) == f"error: {tmp_path / 'none.pem'}: no such file"
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    assert "is not a PEM or DER private key" in fails("key", "show", str(junk))
    enc = tmp_path / "enc.pem"
    pw = tmp_path / "pw"
    pw.write_text("right\n")
    ok("key", "generate", "--out", str(enc), "--passphrase-file", str(pw))
    assert "encrypted; give its passphrase" in fails("key", "show", str(enc))
    wrong = tmp_path / "wrong"
    wrong.write_text("wrong\n")
    assert "wrong passphrase" in fails("csr", "--key", str(enc), "--passphrase-file",
                                       str(wrong), "-d", "a.example.com", "--out", str(out))
    ed = tmp_path / "ed.pem"
    assert openssl("genpkey", "-algorithm", "ed25519", "-out", str(ed)).returncode == 0
    assert "unsupported key type" in fails("key", "pkcs8", str(ed), "--out", str(out))
    unreadable = tmp_path / "dir.pem"
    unreadable.mkdir()
    assert "is a directory" in fails("key", "show", str(unreadable))
    assert not out.exists()


def test_bad_email_and_type(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    ok("key", "generate", "--out", str(key))
    assert "not an e-mail address" in fails("csr", "--key", str(key), "-d", "a.example.com",
                                            "--email", "nobody", "--out", str(tmp_path / "r"))
    r = run_acmeali("key", "generate", "--type", "dsa", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "invalid choice" in r.stderr
    assert fails("key", "generate", "--out", str(tmp_path / "no" / "dir" / "k.pem")
                 ).endswith("does not exist")


def test_global_options_after_subcommand(tmp_path: Path) -> None:
    r = ok("key", "generate", "--out", str(tmp_path / "k.pem"), "-q")
    assert r.stderr == ""


def test_help_does_not_import_cryptography() -> None:
    code = ("import sys\nfrom acmeali.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('cryptography', 'josepy', 'requests', 'dns', 'rich') "
            "or m.startswith('alibabacloud')]\n"
            "print('HEAVY', heavy, file=sys.stderr)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=60)
    assert "HEAVY []" in r.stderr, r.stderr
    assert "key " in r.stdout and "csr " in r.stdout
