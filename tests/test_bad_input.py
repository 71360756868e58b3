"""Bad input of every kind, as ONE table: argv -> exit code and the one error line.

Each case runs the real CLI against a state directory that already holds a working
lineage (issued from Pebble once per module). Every case must end with its exit code,
exactly one ``error:`` line (plus at most a hint) containing the expected words, no
traceback, within a bounded time (a FIFO or /dev/zero must not hang or eat memory), and
the state directory byte for byte as it was: nothing written, nothing lost.

Inputs are made once in ``inputs/``; ``{in}`` in an argv stands for that directory and
``{state}`` for the state directory.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import run_acmeali
from tests.peers.pebble import Pebble

NAME = "bad-input.example.test"


@dataclass
class Bed:
    state: Path
    inputs: Path
    pebble: Pebble

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return run_acmeali("--state-dir", str(self.state), "--server", self.pebble.directory_url,
                           "--ca-bundle", self.pebble.ca_bundle, *args, input="",
                           timeout=timeout)


def _ok(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"


@pytest.fixture(scope="module")
def bed(pebble: Pebble, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    root = tmp_path_factory.mktemp("bad-input")
    b = Bed(root / "state", root / "inputs", pebble)
    i = b.inputs
    i.mkdir()
    http = ["--http-port", str(pebble.http_port), "--http-address", "127.0.0.1"]
    _ok(b.cli("issue", "-d", NAME, *http, "--agree-tos", "--email", "ops@example.test"))
    # Files the table refers to.
    (i / "nested.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    (i / "big.toml").write_bytes(b"# " + b"x" * (2 << 20) + b"\n")
    (i / "nan-days.toml").write_text("[renewal]\ndays_before_expiry = nan\n")
    (i / "inf-jitter.toml").write_text("[renewal]\njitter = inf\n")
    (i / "ctl-name.toml").write_text('[[certificates]]\nname = "a\\u0007b"\n'
                                     'domains = ["a.example.test"]\n')
    (i / "long-default.toml").write_text(
        '[[certificates]]\ndomains = ["' + ".".join(["a" * 60] * 4) + '"]\n')
    (i / "reserved-name.toml").write_text('[[certificates]]\nname = "wildcard_x"\n'
                                          'domains = ["a.example.test"]\n')
    (i / "numeric-tld.toml").write_text('[[certificates]]\ndomains = ["host.example.123"]\n')
    (i / "bad-target.toml").write_text('[defaults]\ndeploy = ["cdn:bad..example.test"]\n')
    (i / "notpem.pem").write_text("this is not a certificate\n")
    os.mkfifo(i / "fifo")
    pw = i / "pass"
    pw.write_text("correct horse\n")
    (i / "wrong-pass").write_text("battery staple\n")
    _ok(b.cli("key", "generate", "--out", str(i / "enc.key"), "--passphrase-file", str(pw)))
    _ok(b.cli("key", "generate", "--out", str(i / "plain.key")))
    _ok(b.cli("csr", "--key", str(i / "plain.key"), "-d", "csr-a.example.test",
              "-d", "csr-b.example.test", "--out", str(i / "ab.csr")))
    yield b


def snapshot(state: Path) -> dict[str, bytes | str]:
    """Every file and link of the state directory, with its content; lock files and the
    run log (which records every run, failed ones included) aside."""
    out: dict[str, bytes | str] = {}
    for p in sorted(state.rglob("*")):
        rel = str(p.relative_to(state))
        if rel.startswith(("locks", "logs")):
            continue
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
    return out


LIVE_CERT = "{state}/live/" + NAME + "/cert.pem"
CASES: list[tuple[str, list[str], int, str]] = [
    # --- item 12: one validation per value: finite bounded numbers
    ("days-nan", ["renew", "--days", "nan"], 2, "--days: expected a number"),
    ("days-inf", ["renew", "--days", "inf"], 2, "--days: expected a number"),
    ("jitter-inf", ["renew", "--force", "--jitter", "inf"], 2, "--jitter: expected a number"),
    ("jitter-nan", ["renew", "--force", "--jitter", "nan"], 2, "--jitter: expected a number"),
    ("dns-timeout-nan", ["issue", "-d", "t.example.test", "--dns-hook", "true",
                         "--dns-timeout", "nan", "--agree-tos"], 2, "--dns-timeout"),
    ("dns-timeout-inf", ["issue", "-d", "t.example.test", "--dns-hook", "true",
                         "--dns-timeout", "inf", "--agree-tos"], 2, "--dns-timeout"),
    ("warn-days-nan", ["certs", "check", "--warn-days", "nan"], 2, "--warn-days"),
    ("config-days-nan", ["--config", "{in}/nan-days.toml", "renew"], 2,
     "renewal.days_before_expiry"),
    ("config-jitter-inf", ["--config", "{in}/inf-jitter.toml", "renew"], 2, "renewal.jitter"),
    # ... lineage names the store can hold
    ("name-control-char", ["issue", "-d", "t.example.test", "--name", "a\x07b",
                           "--agree-tos"], 2, "control characters"),
    ("name-newline", ["issue", "-d", "t.example.test", "--name", "a\nb", "--agree-tos"], 2,
     "control characters"),
    ("name-too-long", ["issue", "-d", "t.example.test", "--name", "n" * 201, "--agree-tos"], 2,
     "longer than 200"),
    ("name-stars-too-long", ["issue", "-d", "t.example.test", "--name", "*" * 30,
                             "--agree-tos"], 2, "longer than 200"),
    ("name-reserved", ["issue", "-d", "t.example.test", "--name", "wildcard_x",
                       "--agree-tos"], 2, "reserved"),
    ("default-name-too-long", ["issue", "-d", ".".join(["a" * 60] * 4), "--agree-tos"], 2,
     "longer than 200"),
    ("config-name-control", ["--config", "{in}/ctl-name.toml", "certs", "list"], 2,
     "certificates[0].name"),
    ("config-name-reserved", ["--config", "{in}/reserved-name.toml", "certs", "list"], 2,
     "certificates[0].name"),
    ("config-default-name-long", ["--config", "{in}/long-default.toml", "certs", "list"], 2,
     "certificates[0].name"),
    # ... names: an all-numeric last label; deploy targets' domains
    ("numeric-tld", ["issue", "-d", "host.example.123", "--agree-tos"], 2, "all digits"),
    ("numeric-only", ["issue", "-d", "1.2.3", "--agree-tos"], 2, "all digits"),
    ("config-numeric-tld", ["--config", "{in}/numeric-tld.toml", "certs", "list"], 2,
     "all digits"),
    ("target-bad-domain", ["issue", "-d", "t.example.test", "--deploy", "cdn:bad..example.test",
                           "--agree-tos"], 2, "empty label"),
    ("target-space", ["issue", "-d", "t.example.test", "--deploy", "dcdn:a b.example.test",
                      "--agree-tos"], 2, "white space"),
    ("target-apigw-domain", ["issue", "-d", "t.example.test", "--deploy",
                             "apigateway:abc123:exa_mple.test", "--agree-tos"], 2,
     "letters, digits and hyphens"),
    ("config-target", ["--config", "{in}/bad-target.toml", "certs", "list"], 2,
     "defaults.deploy[0]"),
    # --- item 13: input files are regular files, up to a size cap
    ("config-dev-zero", ["--config", "/dev/zero", "certs", "list"], 2, "not a regular file"),
    ("config-fifo", ["--config", "{in}/fifo", "certs", "list"], 2, "not a regular file"),
    ("config-directory", ["--config", "{in}", "certs", "list"], 2, "is a directory"),
    ("config-too-big", ["--config", "{in}/big.toml", "certs", "list"], 2, "limit"),
    ("config-nested", ["--config", "{in}/nested.toml", "certs", "list"], 2, "nested too deeply"),
    ("key-show-dev-zero", ["key", "show", "/dev/zero"], 2, "not a regular file"),
    ("key-show-fifo", ["key", "show", "{in}/fifo"], 2, "not a regular file"),
    ("passphrase-fifo", ["key", "show", "{in}/enc.key", "--passphrase-file", "{in}/fifo"], 2,
     "not a regular file"),
    ("csr-dev-zero", ["issue", "--csr", "/dev/zero", "--agree-tos"], 2, "not a regular file"),
    ("csr-dev-zero-with-d", ["issue", "--csr", "/dev/zero", "-d", "t.example.test",
                             "--agree-tos"], 2, "not a regular file"),
    ("csr-fifo", ["issue", "--csr", "{in}/fifo", "--agree-tos"], 2, "not a regular file"),
    ("revoke-cert-dev-zero", ["revoke", "--cert", "/dev/zero"], 2, "not a regular file"),
    ("ca-bundle-dev-zero", ["--ca-bundle", "/dev/zero", "issue", "-d", "t.example.test",
                            "--agree-tos"], 2, "not a regular file"),
    # --- item 15
    ("csr-names-differ", ["issue", "--csr", "{in}/ab.csr", "-d", "csr-a.example.test",
                          "-d", "other.example.test", "--agree-tos"], 2, "differ"),
    ("csr-names-subset", ["issue", "--csr", "{in}/ab.csr", "-d", "csr-a.example.test",
                          "--agree-tos"], 2, "also names csr-b.example.test"),
    ("ca-bundle-not-pem", ["--ca-bundle", "{in}/notpem.pem", "issue", "-d", "t.example.test",
                           "--agree-tos"], 2, "not a PEM file"),
    ("revoke-key-wrong-passphrase", ["revoke", "--cert", LIVE_CERT, "--key", "{in}/enc.key",
                                     "--passphrase-file", "{in}/wrong-pass"], 2,
     "wrong passphrase"),
    ("revoke-key-no-passphrase", ["revoke", "--cert", LIVE_CERT, "--key", "{in}/enc.key"], 2,
     "--passphrase-file"),
    ("renew-unknown-name", ["renew", "--name", "nosuch.example.test"], 2,
     "--name nosuch.example.test: no such lineage"),
    ("renew-unknown-among-known", ["renew", "--name", NAME, "--name", "nosuch"], 2,
     "--name nosuch: no such lineage"),
]


@pytest.mark.parametrize(("argv", "code", "expect"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input(bed: Bed, argv: list[str], code: int, expect: str) -> None:
    before = snapshot(bed.state)
    args = [a.replace("{in}", str(bed.inputs)).replace("{state}", str(bed.state)) for a in argv]
    # --server/--ca-bundle of the bed come first; a case's own global options override them.
    r = bed.cli(*args, timeout=30)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == code, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    lines = r.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr
    after = lines[lines.index(errors[0]) + 1:]
    assert all(ln.startswith("  hint:") for ln in after), r.stderr
    assert expect in errors[0], r.stderr
    assert snapshot(bed.state) == before  # nothing written, nothing lost


# --------------------------------------------------------------------------- item 14
# A lineage record that parses but holds wrong values is reported by name and skipped;
# the other lineages still renew and list.

CORRUPTIONS = {
    "month13": lambda m: m["current"].update(not_after="2031-13-01T00:00:00Z"),
    "number-for-list": lambda m: m.update(domains=5),
    "settings-number-for-list": lambda m: m["settings"].update(dns_resolvers=7),
    "nan-timeout": lambda m: m["settings"].update(dns_timeout=float("nan")),
    "ari-bad-date": lambda m: m.update(ari={"cert_id": "x", "selected": "yesterday"}),
    "deployments-list": lambda m: m.update(deployments=["cas"]),
}


def test_lineage_record_with_wrong_values_is_skipped(pebble: Pebble, tmp_path: Path) -> None:
    import json

    b = Bed(tmp_path / "state", tmp_path, pebble)
    http = ["--http-port", str(pebble.http_port), "--http-address", "127.0.0.1"]
    good = "good.records.example.test"
    bad = {kind: f"{kind}.records.example.test" for kind in CORRUPTIONS}
    for name in (good, *bad.values()):
        _ok(b.cli("issue", "-d", name, *http, "--agree-tos", "--email", "ops@example.test"))
    for kind, name in bad.items():
        path = b.state / "renewal" / f"{name}.json"
        meta = json.loads(path.read_text())
        CORRUPTIONS[kind](meta)
        path.write_text(json.dumps(meta))
    good_serial = json.loads((b.state / "renewal" / f"{good}.json").read_text())[
        "current"]["serial"]

    r = b.cli("renew", "--days", "100000", timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1, r.stderr
    assert f"{good}: renewed" in r.stderr
    for name in bad.values():
        line = next((ln for ln in r.stderr.splitlines() if ln.startswith(f"error: {name}:")),
                    None)
        assert line is not None and "wrong value" in line, r.stderr
    assert "current.not_after" in r.stderr and "domains is 5" in r.stderr
    renewed = json.loads((b.state / "renewal" / f"{good}.json").read_text())
    assert renewed["current"]["serial"] != good_serial

    r = b.cli("certs", "list")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert good in r.stdout
    for name in bad.values():
        assert f"{name}: BROKEN" in r.stdout
    r = b.cli("certs", "check", "--json")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    problems = {p["name"] for p in json.loads(r.stdout)["problems"]}
    assert problems == set(bad.values())


# --------------------------------------------------------------------------- item 15
def test_revoke_with_an_encrypted_certificate_key(pebble: Pebble, tmp_path: Path) -> None:
    """`revoke --key` of an encrypted key takes --passphrase-file (as `key show` does)."""
    b = Bed(tmp_path / "state", tmp_path, pebble)
    pw, key, csr = tmp_path / "pass", tmp_path / "enc.key", tmp_path / "my.csr"
    pw.write_text("correct horse\n")
    name = "encrypted-revoke.example.test"
    _ok(b.cli("key", "generate", "--out", str(key), "--passphrase-file", str(pw)))
    _ok(b.cli("csr", "--key", str(key), "--passphrase-file", str(pw), "-d", name,
              "--out", str(csr)))
    _ok(b.cli("issue", "--csr", str(csr), "--http-port", str(pebble.http_port),
              "--http-address", "127.0.0.1", "--agree-tos", "--email", "ops@example.test"))
    r = b.cli("revoke", "--cert", str(b.state / "live" / name / "cert.pem"), "--key", str(key),
              "--passphrase-file", str(pw), "--reason", "keyCompromise")
    _ok(r)
    assert "Revoked certificate" in r.stdout


def test_config_dev_null_still_means_no_file(tmp_path: Path) -> None:
    """Devices are refused as input files, except /dev/null: `--config /dev/null` is the
    usual way to run without a config file, and reads as an empty one."""
    r = run_acmeali("--state-dir", str(tmp_path / "state"), "--config", os.devnull,
                    "certs", "list")
    assert r.returncode == 0, r.stderr
    assert "No certificates" in r.stdout
