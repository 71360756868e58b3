"""`acmeali issue` end to end: the real CLI in a child process against a real Pebble.

Each test gets a fresh state directory and checks what a user would: the exit code, the
lines printed, the files under ``live/`` (keys 0600), ``openssl verify`` of the chain
against Pebble's root, the SANs ``openssl x509 -text`` shows, and ``certs list --json``.
http-01 answers are fetched by Pebble's VA from 127.0.0.1:<pebble.http_port>; dns-01
records go into Pebble's challtestsrv through a small hook script.
"""

from __future__ import annotations

import http.server
import json
import os
import shlex
import stat
import subprocess
import threading
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.conftest import run_acmeali
from tests.peers.pebble import ChallTestSrv, Pebble, PebbleOptions

# ---------------------------------------------------------------------------- helpers


def fresh(suffix: str = "example.test") -> str:
    return f"t{uuid.uuid4().hex[:10]}.{suffix}"


class Cli:
    """``acmeali --state-dir S --server <pebble> --ca-bundle <pebble tls> ...``.

    stdin is an empty pipe unless ``input`` says otherwise: no test may depend on whether
    pytest itself was started from a terminal.
    """

    def __init__(self, pebble: Pebble, state: Path) -> None:
        self.pebble = pebble
        self.state = state

    def __call__(self, *args: str, env: dict[str, str] | None = None, input: str = "",
                 server: bool = True) -> subprocess.CompletedProcess[str]:
        glob = ["--state-dir", str(self.state)]
        if server:
            glob += ["--server", self.pebble.directory_url, "--ca-bundle", self.pebble.ca_bundle]
        return run_acmeali(*glob, *args, env=env, input=input)

    def issue(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        """``issue`` by standalone http-01 on Pebble's VA port (unless args choose otherwise)."""
        http = ["--http-port", str(self.pebble.http_port), "--http-address", "127.0.0.1"]
        return self("issue", *args, *http, "--agree-tos", "--email", "ops@example.test",
                    **kw)  # type: ignore[arg-type]

    def live(self, name: str) -> Path:
        return self.state / "live" / name

    def certs(self) -> dict[str, dict[str, object]]:
        r = self("certs", "list", "--json", server=False)
        assert r.returncode == 0, r.stderr
        return {c["name"]: c for c in json.loads(r.stdout)["certificates"]}


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert "Traceback" not in r.stderr
    return r


def usage_error(r: subprocess.CompletedProcess[str]) -> str:
    """Exit 2 with one ``error:`` line (plus at most a hint); returns that line."""
    assert r.returncode == 2, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr
    after = lines[lines.index(errors[0]) + 1:]
    assert all(ln.startswith("  hint:") for ln in after), r.stderr  # the error comes last
    return errors[0]


def written(state: Path) -> list[str]:
    """What a run left in the state directory, lock files aside."""
    if not state.exists():
        return []
    return sorted(str(p.relative_to(state)) for p in state.rglob("*")
                  if p.relative_to(state).parts[0] != "locks")


def openssl(*args: str) -> str:
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def verify_chain(live: Path, root_pem: str, tmp: Path) -> None:
    """What an operator runs: the leaf verifies to the CA's root through chain.pem."""
    root = tmp / f"root-{uuid.uuid4().hex[:6]}.pem"
    root.write_text(root_pem)
    out = openssl("verify", "-CAfile", str(root), "-untrusted", str(live / "chain.pem"),
                  str(live / "cert.pem"))
    assert out.strip().endswith(": OK"), out


def sans(cert_path: Path) -> str:
    text = openssl("x509", "-in", str(cert_path), "-noout", "-text")
    return text.split("X509v3 Subject Alternative Name:", 1)[1].splitlines()[1].strip()


def assert_live(live: Path, *, key: bool = True) -> None:
    for f in ("cert.pem", "chain.pem", "fullchain.pem"):
        assert (live / f).is_file(), f
    if key:
        assert stat.S_IMODE((live / "privkey.pem").stat().st_mode) == 0o600
        # archive/<name>/v<N>/ holds the files, 0600 key there too (what the symlink points at)
        real = (live / "privkey.pem").resolve()
        assert real.parent.name.startswith("v") and real.parent.parent.parent.name == "archive"
    else:  # not even a dangling link a server config could name (ux-review b#11)
        assert not os.path.lexists(live / "privkey.pem")


def leaf(live: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())


def spki(obj: x509.Certificate | Path) -> bytes:
    pub = (obj.public_key() if isinstance(obj, x509.Certificate)
           else serialization.load_pem_private_key(obj.read_bytes(), None).public_key())
    return pub.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def top_issuer_cn(chain_pem: Path) -> str:
    certs = x509.load_pem_x509_certificates(chain_pem.read_bytes())
    return str(certs[-1].issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def subject_cn(pem: str) -> str:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def write_dns_hook(path: Path, mgmt_urls: dict[str, str], log: Path) -> str:
    """A hook publishing ACMEALI_TXT_VALUE (or a fixed value) into challtestsrv instances.

    ``mgmt_urls`` maps a management URL to the value to publish there: "" means the real
    value, anything else is published as is (a wrong answer).
    """
    lines = ["#!/bin/sh", "set -e",
             f'echo "$ACMEALI_ACTION $ACMEALI_DOMAIN $ACMEALI_TXT_NAME" >> {shlex.quote(str(log))}']
    host = '"host":"\'"$ACMEALI_TXT_NAME"\'."'
    for url, value in mgmt_urls.items():
        v = value or '\'"$ACMEALI_TXT_VALUE"\''
        lines += [
            'if [ "$ACMEALI_ACTION" = present ]; then',
            f"  curl -sf -X POST -d '{{{host},\"value\":\"{v}\"}}' {url}/set-txt",
            "else",
            f"  curl -sf -X POST -d '{{{host}}}' {url}/clear-txt",
            "fi",
        ]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return str(path)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def cli(pebble: Pebble, tmp_path: Path) -> Cli:
    return Cli(pebble, tmp_path / "state")


@pytest.fixture
def dns_hook(pebble: Pebble, tmp_path: Path) -> tuple[str, Path]:
    log = tmp_path / "hook.log"
    return write_dns_hook(tmp_path / "hook.sh", {pebble.challtestsrv.mgmt_url: ""}, log), log


@pytest.fixture(scope="module")
def alt_pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """A Pebble offering alternate chains to two more roots."""
    with Pebble(tmp_path_factory.mktemp("pebble-alt"), PebbleOptions(alternate_roots=2)) as p:
        yield p


def dns_args(pebble: Pebble, hook: str) -> list[str]:
    return ["--challenge", "dns-01", "--dns", "hook", "--dns-hook", hook,
            "--dns-resolver", pebble.challtestsrv.dns_address, "--dns-timeout", "20"]


# ---------------------------------------------------------------------------- http-01


def test_http01_standalone(cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    name = fresh()
    r = ok(cli.issue("-d", name))
    live = cli.live(name)
    assert f"Certificate for {name} saved (lineage {name}, version 1)" in r.stdout
    assert f"fullchain: {live / 'fullchain.pem'}" in r.stdout
    assert f"key:       {live / 'privkey.pem'}" in r.stdout
    assert "expires " in r.stdout and "(in " in r.stdout
    assert f"Requesting a certificate for {name}" in r.stderr
    assert_live(live)
    assert os.readlink(live / "current") == f"../../archive/{name}/v1"
    assert (live / "fullchain.pem").read_text() == (
        (live / "cert.pem").read_text() + (live / "chain.pem").read_text())
    verify_chain(live, pebble.root_pem(), tmp_path)
    assert sans(live / "cert.pem") == f"DNS:{name}"
    # the account was registered on first use, its key 0600, directories 0700
    accounts = list((cli.state / "accounts").iterdir())
    assert len(accounts) == 1
    assert stat.S_IMODE((accounts[0] / "private_key.pem").stat().st_mode) == 0o600
    for d in ("accounts", "archive", "live", f"archive/{name}"):
        assert stat.S_IMODE((cli.state / d).stat().st_mode) == 0o700, d

    row = cli.certs()[name]
    assert row["domains"] == [name]
    assert row["status"] == "valid"
    assert row["key_type"] == "ec256"
    assert row["serial"] == format(leaf(live).serial_number, "x").zfill(len(str(row["serial"])))
    assert str(row["issuer"]).startswith("Pebble Intermediate CA")
    assert isinstance(row["days_left"], float) and row["days_left"] > 30


def test_http01_webroot(cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    webroot = tmp_path / "www"
    webroot.mkdir()
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            seen.append(self.path)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", pebble.http_port), partial(Handler, directory=str(webroot)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        name = fresh()
        r = ok(cli("issue", "-d", name, "--webroot", str(webroot), "--agree-tos"))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert f"Certificate for {name} saved" in r.stdout
    assert_live(cli.live(name))
    verify_chain(cli.live(name), pebble.root_pem(), tmp_path)
    assert any(p.startswith("/.well-known/acme-challenge/") for p in seen), seen
    # the answer files and the directories acmeali made for them are gone again
    assert list(webroot.iterdir()) == []
    assert json.loads((cli.state / "renewal" / f"{name}.json").read_text())[
        "settings"]["webroot"] == str(webroot)


def test_ip_identifier(cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    r = ok(cli.issue("-d", "127.0.0.1"))
    live = cli.live("127.0.0.1")
    assert "Certificate for 127.0.0.1 saved (lineage 127.0.0.1" in r.stdout
    assert_live(live)
    assert sans(live / "cert.pem") == "IP Address:127.0.0.1"
    verify_chain(live, pebble.root_pem(), tmp_path)
    assert cli.certs()["127.0.0.1"]["domains"] == ["127.0.0.1"]


# ---------------------------------------------------------------------------- dns-01


def test_dns01_hook(cli: Cli, pebble: Pebble, dns_hook: tuple[str, Path], tmp_path: Path
                    ) -> None:
    hook, log = dns_hook
    name = fresh()
    r = ok(cli.issue("-d", name, *dns_args(pebble, hook)))
    assert f"Certificate for {name} saved" in r.stdout
    live = cli.live(name)
    assert_live(live)
    verify_chain(live, pebble.root_pem(), tmp_path)
    assert sans(live / "cert.pem") == f"DNS:{name}"
    assert log.read_text().splitlines() == [f"present {name} _acme-challenge.{name}",
                                            f"cleanup {name} _acme-challenge.{name}"]
    settings = json.loads((cli.state / "renewal" / f"{name}.json").read_text())["settings"]
    assert settings["challenge"] == "dns-01" and settings["dns_hook"] == hook


def test_apex_and_wildcard_in_one_order(cli: Cli, pebble: Pebble, dns_hook: tuple[str, Path],
                                        tmp_path: Path) -> None:
    hook, log = dns_hook
    apex = fresh()
    r = ok(cli.issue("-d", apex, "-d", f"*.{apex}", *dns_args(pebble, hook)))
    assert f"Certificate for {apex}, *.{apex} saved (lineage {apex}," in r.stdout
    live = cli.live(apex)
    assert_live(live)
    verify_chain(live, pebble.root_pem(), tmp_path)
    assert sorted(sans(live / "cert.pem").split(", ")) == sorted([f"DNS:{apex}", f"DNS:*.{apex}"])
    # two answers under the same TXT name, both published before the CA looked
    hook_lines = log.read_text().splitlines()
    assert hook_lines[:2] == [f"present {apex} _acme-challenge.{apex}"] * 2
    assert hook_lines[2:] == [f"cleanup {apex} _acme-challenge.{apex}"] * 2
    assert cli.certs()[apex]["domains"] == [apex, f"*.{apex}"]


def test_failed_authorization_shows_the_cas_words(cli: Cli, pebble: Pebble, tmp_path: Path
                                                  ) -> None:
    """The hook publishes the right value where acmeali's propagation check looks, but a
    wrong one where the CA looks: the CA's own error must reach the user."""
    with _started(tmp_path) as decoy:
        log = tmp_path / "hook.log"
        hook = write_dns_hook(tmp_path / "hook.sh", {decoy.mgmt_url: "",
                                                     pebble.challtestsrv.mgmt_url: "wrong-value"},
                              log)
        name = fresh()
        args = ["--challenge", "dns-01", "--dns-hook", hook, "--dns-resolver",
                decoy.dns_address, "--dns-timeout", "20"]
        r = cli.issue("-d", name, *args)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert f"error: the CA could not validate {name}:" in r.stderr
    line = next(ln for ln in r.stderr.splitlines() if ln.strip().startswith(f"{name} (dns-01):"))
    # Pebble's own detail, with the problem type and the challenge type that was tried
    assert line.strip() == (f"{name} (dns-01): unauthorized: "
                            "Correct value not found for DNS challenge")
    assert "hint:" in r.stderr
    assert not cli.live(name).exists()
    # the records were cleaned up even though validation failed
    assert log.read_text().splitlines()[-1].startswith("cleanup ")


class _started:
    """A second challtestsrv (the "resolver" acmeali checks), stopped afterwards."""

    def __init__(self, workdir: Path) -> None:
        self.srv = ChallTestSrv(workdir)

    def __enter__(self) -> ChallTestSrv:
        return self.srv.start()

    def __exit__(self, *exc: object) -> None:
        self.srv.stop()


# ---------------------------------------------------------------------------- keys


@pytest.mark.parametrize(("key_type", "check"), [
    ("rsa2048", lambda k: isinstance(k, rsa.RSAPrivateKey) and k.key_size == 2048),
    ("ec384", lambda k: isinstance(k, ec.EllipticCurvePrivateKey)
     and k.curve.name == "secp384r1"),
])
def test_key_type(cli: Cli, pebble: Pebble, tmp_path: Path, key_type: str, check: object
                  ) -> None:
    name = fresh()
    ok(cli.issue("-d", name, "--key-type", key_type))
    live = cli.live(name)
    key = serialization.load_pem_private_key((live / "privkey.pem").read_bytes(), None)
    assert check(key)  # type: ignore[operator]
    assert spki(leaf(live)) == spki(live / "privkey.pem")
    verify_chain(live, pebble.root_pem(), tmp_path)
    assert cli.certs()[name]["key_type"] == key_type


def test_reuse_key_keeps_the_key_default_replaces_it(cli: Cli) -> None:
    name = fresh()
    ok(cli.issue("-d", name))
    live = cli.live(name)
    first = spki(live / "privkey.pem")
    r = ok(cli.issue("-d", name, "--reuse-key", "--force"))
    assert "version 2" in r.stdout
    assert spki(live / "privkey.pem") == first
    assert spki(leaf(live)) == first
    # The lineage now records --reuse-key (as renew repeats it); --no-reuse-key undoes it.
    r = ok(cli.issue("-d", name, "--force", "--no-reuse-key"))
    assert "version 3" in r.stdout
    assert spki(live / "privkey.pem") != first
    assert spki(leaf(live)) == spki(live / "privkey.pem")
    assert os.readlink(live / "current") == f"../../archive/{name}/v3"


def test_own_csr_stores_no_key(cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    name = fresh()
    key, csr = tmp_path / "my.key", tmp_path / "my.csr"
    ok(cli("key", "generate", "--type", "ec256", "--out", str(key), server=False))
    ok(cli("csr", "--key", str(key), "-d", name, "-d", f"www.{name}", "--out", str(csr),
           server=False))
    r = ok(cli.issue("--csr", str(csr)))  # the names come from the CSR
    assert f"Certificate for {name}, www.{name} saved" in r.stdout
    assert "key:" not in r.stdout
    live = cli.live(name)
    assert_live(live, key=False)
    assert not list((cli.state / "archive").rglob("privkey.pem"))
    assert spki(leaf(live)) == spki(key)
    verify_chain(live, pebble.root_pem(), tmp_path)


# ---------------------------------------------------------------------------- chains


def test_preferred_chain(alt_pebble: Pebble, tmp_path: Path) -> None:
    default_root_cn = subject_cn(alt_pebble.root_pem(0))
    alt_root_cn = subject_cn(alt_pebble.root_pem(1))
    assert alt_root_cn != default_root_cn

    cli = Cli(alt_pebble, tmp_path / "state")
    name = fresh()
    ok(cli.issue("-d", name))
    assert top_issuer_cn(cli.live(name) / "chain.pem") == default_root_cn
    verify_chain(cli.live(name), alt_pebble.root_pem(0), tmp_path)

    other = fresh()
    ok(cli.issue("-d", other, "--preferred-chain", alt_root_cn))
    live = cli.live(other)
    assert top_issuer_cn(live / "chain.pem") == alt_root_cn
    verify_chain(live, alt_pebble.root_pem(1), tmp_path)
    meta = json.loads((cli.state / "renewal" / f"{other}.json").read_text())
    assert meta["settings"]["preferred_chain"] == alt_root_cn


# ---------------------------------------------------------------------------- misc


def test_dry_run_writes_nothing_live(cli: Cli) -> None:
    name = fresh()
    r = ok(cli.issue("-d", name, "--dry-run"))
    assert "dry run" in r.stderr and "nothing was stored" in r.stderr
    assert r.stdout == ""
    assert not (cli.state / "live").exists()
    assert not (cli.state / "archive").exists()
    assert cli.certs() == {}


def test_full_issuance_with_nonce_rejection(pebble_nonce_reject: Pebble, tmp_path: Path) -> None:
    cli = Cli(pebble_nonce_reject, tmp_path / "state")
    name = fresh()
    r = ok(cli.issue("-d", name, "-vv"))  # -vv: the protocol debug log shows the retries
    assert f"Certificate for {name} saved" in r.stdout
    verify_chain(cli.live(name), pebble_nonce_reject.root_pem(), tmp_path)
    assert "badNonce from" in r.stderr
    assert "PRIVATE KEY" not in r.stderr


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("args", "expect"), [
    (["-d", "*.wild.example.test"], "needs dns-01"),
    (["-d", "bad..example.test"], "empty label"),
    (["-d", "exa mple.test"], "white space"),
    (["-d", "a.example.test", "--http-port", "0"], "--http-port 0"),
    (["-d", "a.example.test", "--http-port", "70000"], "--http-port 70000"),
    (["-d", "127.0.0.1", "--challenge", "dns-01", "--dns-hook", "true"], "only be validated"),
    (["-d", "a.example.test", "--challenge", "dns-01"], "--dns-hook"),
    (["-d", "a.example.test", "--webroot", "/nonexistent/www"], "not a directory"),
    (["-d", "a.example.test", "--name", "../x"], "lineage name"),
    ([], "no names given"),
])
def test_bad_input_exits_2_and_writes_nothing(cli: Cli, args: list[str], expect: str) -> None:
    line = usage_error(cli("issue", *args, "--agree-tos"))
    assert expect in line
    assert written(cli.state) == []


def test_bad_ca_bundle(cli: Cli, tmp_path: Path) -> None:
    r = run_acmeali("--state-dir", str(cli.state), "--server", cli.pebble.directory_url,
                    "--ca-bundle", str(tmp_path / "missing.pem"), "issue", "-d", fresh(),
                    "--agree-tos", input="")
    line = usage_error(r)
    assert "--ca-bundle" in line and "missing.pem" in line
    assert written(cli.state) == []


@pytest.mark.parametrize(("toml", "expect"), [
    ("[acme]\nbogus = 1\n", "acme.bogus: unknown key"),
    ("[defaults]\nkey_type = \"dsa\"\n", "defaults.key_type: expected one of"),
    ("[[certificates]]\ndomains = [\"*.x.example.test\"]\n", "certificates[0].challenge"),
    ("[acme\n", "not valid TOML"),
])
def test_config_errors(cli: Cli, tmp_path: Path, toml: str, expect: str) -> None:
    cfg = tmp_path / "acmeali.toml"
    cfg.write_text(toml)
    line = usage_error(cli("--config", str(cfg), "issue", "-d", fresh(), "--agree-tos"))
    assert expect in line and str(cfg) in line
    assert written(cli.state) == []


def test_terms_of_service_required_without_a_terminal(cli: Cli) -> None:
    r = cli("issue", "-d", fresh(), "--http-port", str(cli.pebble.http_port))
    line = usage_error(r)
    assert "terms of service" in line
    assert "--agree-tos" in r.stderr
    assert written(cli.state) == []


def test_profile_the_ca_does_not_offer(cli: Cli) -> None:
    name = fresh()
    line = usage_error(cli.issue("-d", name, "--profile", "shortlived"))
    assert "profile 'shortlived'" in line
    assert not (cli.state / "live").exists()
    assert not (cli.state / "renewal" / f"{name}.json").exists()
    assert not (cli.state / "accounts").exists()  # refused before registering an account


def test_pre_and_post_hooks_wrap_issuance_even_when_it_fails(cli: Cli, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    def hook(label: str) -> str:
        return f"echo {label} >> {log}"

    name = fresh()
    ok(cli.issue("-d", name, "--pre-hook", hook("pre"), "--post-hook", hook("post")))
    assert log.read_text().split() == ["pre", "post"]
    meta = json.loads((cli.state / "renewal" / f"{name}.json").read_text())
    assert {"pre_hook", "post_hook"} <= set(meta["flag_keys"])  # renewals repeat them

    # Validation fails (nothing answers on this port): the post-hook still restarts
    # whatever the pre-hook stopped, and the CA's error is the one reported.
    log.unlink()
    from tests.peers.pebble import free_port

    r = cli("issue", "-d", fresh(), "--http-address", "127.0.0.1",
            "--http-port", str(free_port()), "--agree-tos", "--email", "ops@example.test",
            "--pre-hook", hook("pre"), "--post-hook", f"{hook('post')}; exit 3")
    assert r.returncode == 1, r.stderr
    assert log.read_text().split() == ["pre", "post"]
    assert "could not validate" in r.stderr and "post hook" in r.stderr

    # A failing pre-hook stops everything before the CA is asked.
    seen = len(cli.pebble.requests_seen())
    r = cli.issue("-d", fresh(), "--pre-hook", "echo stopping failed >&2; exit 4")
    assert r.returncode == 1 and "pre hook" in r.stderr and "stopping failed" in r.stderr
    assert len(cli.pebble.requests_seen()) == seen


def test_help_lists_every_issue_flag() -> None:
    r = run_acmeali("issue", "--help")
    assert r.returncode == 0
    for flag in ("--domain", "--name", "--key-type", "--reuse-key", "--csr", "--must-staple",
                 "--challenge", "--http-port", "--http-address", "--webroot", "--dns",
                 "--dns-hook", "--dns-resolver", "--dns-timeout", "--preferred-chain",
                 "--profile", "--deploy", "--deploy-hook", "--pre-hook", "--post-hook",
                 "--dry-run", "--email",
                 "--agree-tos", "--eab-kid", "--eab-hmac-key"):
        assert flag in r.stdout, flag

