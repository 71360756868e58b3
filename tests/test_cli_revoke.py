"""`acmeali revoke` end to end: by account key, by the certificate's own key (with and
without any account), keyCompromise bookkeeping and ``--reissue``, each revocation
confirmed through Pebble's management API."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.peers.pebble import Pebble
from tests.test_cli_issue import Cli, fresh, leaf, ok, spki, usage_error, verify_chain

UNSPECIFIED, KEY_COMPROMISE = 0, 1


@pytest.fixture
def cli(pebble: Pebble, tmp_path: Path) -> Cli:
    return Cli(pebble, tmp_path / "state")


def serial_of(cli: Cli, name: str) -> str:
    return format(leaf(cli.live(name)).serial_number, "x")


def issued(cli: Cli, *extra: str) -> tuple[str, str]:
    name = fresh()
    ok(cli.issue("-d", name, *extra))
    serial = serial_of(cli, name)
    assert cli.pebble.cert_status(serial)["Status"] == "Valid"
    return name, serial


def test_revoke_by_account_key(cli: Cli) -> None:
    name, serial = issued(cli)
    r = ok(cli("revoke", "--name", name, "--no-delete"))
    assert r.stdout.strip() == f"Revoked certificate {serial} (unspecified)"
    assert f"acmeali issue --name {name} --force" in r.stderr
    status = cli.pebble.cert_status(serial)
    assert status["Status"] == "Revoked" and status.get("Reason", 0) == UNSPECIFIED
    row = cli.certs()[name]
    assert row["status"] == "revoked"
    # revoking again: the CA's own words, exit 1
    again = cli("revoke", "--name", name, "--no-delete")
    assert again.returncode == 1 and "alreadyRevoked" in again.stderr, again.stderr


def test_revoke_with_certificate_key_marks_it_compromised(cli: Cli) -> None:
    name, serial = issued(cli)
    live = cli.live(name)
    old_key = spki(live / "privkey.pem")
    r = ok(cli("revoke", "--name", name, "--use-cert-key", "--reason", "keyCompromise",
               "--no-delete"))
    assert r.stdout.strip() == f"Revoked certificate {serial} (keyCompromise)"
    assert f"{name}: key marked compromised; it will never be reused" in r.stderr
    status = cli.pebble.cert_status(serial)
    assert status["Status"] == "Revoked" and status["Reason"] == KEY_COMPROMISE

    # --reuse-key must not bring the compromised key back
    r = ok(cli.issue("-d", name, "--reuse-key", "--force"))
    assert "version 2" in r.stdout
    assert spki(live / "privkey.pem") != old_key
    assert spki(leaf(live)) == spki(live / "privkey.pem")
    assert cli.certs()[name]["status"] == "valid"


def test_renew_after_key_compromise_uses_a_fresh_key(cli: Cli, pebble: Pebble,
                                                      tmp_path: Path) -> None:
    name, serial = issued(cli, "--reuse-key")  # the lineage asks for key reuse
    live = cli.live(name)
    old_key = spki(live / "privkey.pem")
    ok(cli("revoke", "--name", name, "--use-cert-key", "--reason", "keyCompromise",
           "--no-delete"))
    assert cli.certs()[name]["status"] == "revoked"

    r = cli("renew", "--name", name)  # revoked by the user: renew leaves it alone
    assert r.returncode == 0, r.stderr
    assert serial_of(cli, name) == serial
    r = cli.issue("--name", name, "--force")  # the stored names and settings, a fresh key
    assert r.returncode == 0, r.stderr
    new_serial = serial_of(cli, name)
    assert new_serial != serial
    assert spki(live / "privkey.pem") != old_key
    assert spki(leaf(live)) == spki(live / "privkey.pem")
    assert pebble.cert_status(new_serial)["Status"] == "Valid"
    verify_chain(live, pebble.root_pem(), tmp_path)


def test_revoke_cert_file_with_its_key_and_no_account(cli: Cli, pebble: Pebble,
                                                      tmp_path: Path) -> None:
    """What a key-compromise responder does on another box: only the cert and its key."""
    name, serial = issued(cli)
    cert, key = tmp_path / "leaked-cert.pem", tmp_path / "leaked-key.pem"
    shutil.copy(cli.live(name) / "cert.pem", cert)
    shutil.copy(cli.live(name) / "privkey.pem", key)

    fresh_state = Cli(pebble, tmp_path / "empty-state")
    # Without --key there is nothing to sign with: no account is registered to find out.
    line = usage_error(fresh_state("revoke", "--cert", str(cert)))
    assert "no ACME account" in line
    assert not (fresh_state.state / "accounts").exists()
    r = ok(fresh_state("revoke", "--cert", str(cert), "--key", str(key),
                       "--reason", "keyCompromise"))
    assert r.stdout.strip() == f"Revoked certificate {serial} (keyCompromise)"
    status = pebble.cert_status(serial)
    assert status["Status"] == "Revoked" and status["Reason"] == KEY_COMPROMISE
    # no account was registered for it
    assert not (fresh_state.state / "accounts").exists()


def test_revoke_reissue_gets_a_fresh_key_replacement(cli: Cli, pebble: Pebble,
                                                     tmp_path: Path) -> None:
    log = tmp_path / "deployed.log"
    name, serial = issued(cli, "--deploy-hook", f'echo "$ACMEALI_LINEAGE" >> {log}')
    assert log.read_text().split() == [name]
    live = cli.live(name)
    old_key = spki(live / "privkey.pem")
    r = ok(cli("revoke", "--name", name, "--use-cert-key", "--reason", "keyCompromise",
               "--reissue"))  # the replacement uses the lineage's stored http-01 settings
    assert log.read_text().split() == [name, name]  # redeployed: the deploy hook ran again
    assert f"Revoked certificate {serial} (keyCompromise)" in r.stdout
    assert f"{name}: replacement issued with a fresh key, expires " in r.stdout
    assert pebble.cert_status(serial)["Status"] == "Revoked"
    new_serial = serial_of(cli, name)
    assert new_serial != serial
    assert pebble.cert_status(new_serial)["Status"] == "Valid"
    assert spki(live / "privkey.pem") != old_key
    verify_chain(live, pebble.root_pem(), tmp_path)
    row = cli.certs()[name]
    assert row["status"] == "valid" and row["serial"] == serial_of(cli, name).zfill(
        len(str(row["serial"])))


def test_revoke_cert_file_of_a_lineage_updates_it(cli: Cli, tmp_path: Path) -> None:
    name, serial = issued(cli)
    copy = tmp_path / "cert.pem"
    shutil.copy(cli.live(name) / "cert.pem", copy)
    ok(cli("revoke", "--cert", str(copy), "--reason", "superseded", "--no-delete"))
    assert cli.pebble.cert_status(serial)["Reason"] == 4
    assert cli.certs()[name]["status"] == "revoked"


# ---------------------------------------------------------------------------- refusals


def test_unknown_lineage(cli: Cli) -> None:
    r = cli("revoke", "--name", "nope.example.test")
    line = usage_error(r)
    assert "--name nope.example.test: no such lineage" in line
    assert "certs list" in r.stderr
    assert not cli.state.exists() or not any((cli.state / d).exists()
                                             for d in ("accounts", "live", "archive"))


def test_key_that_does_not_match(cli: Cli, tmp_path: Path) -> None:
    name, serial = issued(cli)
    other = tmp_path / "other.key"
    ok(cli("key", "generate", "--out", str(other), server=False))
    line = usage_error(cli("revoke", "--name", name, "--key", str(other)))
    assert "the key given does not belong to this certificate" in line
    assert cli.pebble.cert_status(serial)["Status"] == "Valid"


def test_bad_reason_and_missing_cert(cli: Cli, tmp_path: Path) -> None:
    r = cli("revoke", "--cert", str(tmp_path / "x.pem"), "--reason", "stolen")
    assert r.returncode == 2 and "invalid choice: 'stolen'" in r.stderr
    line = usage_error(cli("revoke", "--cert", str(tmp_path / "x.pem")))
    assert "x.pem" in line and "no such file" in line.lower()


def test_csr_lineage_refuses_the_compromised_csr_key(cli: Cli, tmp_path: Path) -> None:
    name = fresh()
    key, csr = tmp_path / "my.key", tmp_path / "my.csr"
    ok(cli("key", "generate", "--out", str(key), server=False))
    ok(cli("csr", "--key", str(key), "-d", name, "--out", str(csr), server=False))
    ok(cli.issue("--csr", str(csr)))
    serial = serial_of(cli, name)
    ok(cli("revoke", "--name", name, "--key", str(key), "--reason", "keyCompromise",
           "--no-delete"))
    assert cli.pebble.cert_status(serial)["Status"] == "Revoked"
    # the same CSR carries the compromised key: refused before any order
    line = usage_error(cli.issue("--csr", str(csr), "--force"))
    assert "its key is recorded as compromised" in line
    assert serial_of(cli, name) == serial
