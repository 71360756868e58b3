"""`acmeali account ...` end to end: register (with and without EAB), show, update,
rollover, deactivate, against a real Pebble, through the real CLI in a child process."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from acmeali.config import LETSENCRYPT, LETSENCRYPT_STAGING, resolve_server
from tests.conftest import run_acmeali
from tests.peers.pebble import Pebble, PebbleOptions, eab_key
from tests.test_cli_issue import Cli, fresh, ok, spki, usage_error, verify_chain, written

EAB_KEYS = dict(eab_key() for _ in range(3))


@pytest.fixture(scope="module")
def eab_pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """A Pebble that refuses newAccount without External Account Binding."""
    with Pebble(tmp_path_factory.mktemp("pebble-eab"), PebbleOptions(eab_keys=EAB_KEYS)) as p:
        yield p


@pytest.fixture
def cli(pebble: Pebble, tmp_path: Path) -> Cli:
    return Cli(pebble, tmp_path / "state")


def account_dir(cli: Cli) -> Path:
    dirs = list((cli.state / "accounts").iterdir())
    assert len(dirs) == 1, dirs
    return dirs[0]


def show(cli: Cli) -> dict[str, str]:
    r = ok(cli("account", "show"))
    return {k.strip(): v.strip() for k, _, v in
            (ln.partition(":") for ln in r.stdout.splitlines())}


# ---------------------------------------------------------------------------- lifecycle


def test_register_show_update_rollover_then_issue(cli: Cli, pebble: Pebble, tmp_path: Path
                                                  ) -> None:
    r = ok(cli("account", "register", "--email", "a@example.test", "--agree-tos"))
    assert r.stdout.startswith(f"Account {pebble.directory_url.rsplit('/', 1)[0]}/my-account/")
    assert "(contacts: mailto:a@example.test)" in r.stdout
    url = r.stdout.split()[1]
    # stored per server: accounts/<server-id>/, key 0600, no secret in account.json
    adir = account_dir(cli)
    assert adir.name == f"127.0.0.1_{pebble.port}_dir"
    assert stat.S_IMODE((adir / "private_key.pem").stat().st_mode) == 0o600
    record = json.loads((adir / "account.json").read_text())
    assert record["url"] == url and "PRIVATE" not in (adir / "account.json").read_text()

    info = show(cli)
    assert info["account"] == url
    assert info["status"] == "valid"
    assert info["contacts"] == "mailto:a@example.test"
    assert info["key"].startswith("ec256, thumbprint ")
    assert info["server"] == pebble.directory_url

    # registering again finds the stored account instead of making a second one
    again = ok(cli("account", "register", "--agree-tos"))
    assert f"An account for {pebble.directory_url} exists already: {url}" in again.stdout

    r = ok(cli("account", "update", "--email", "b@example.test", "--email", "c@example.test"))
    assert r.stdout.strip() == "Contacts now: mailto:b@example.test, mailto:c@example.test"
    assert show(cli)["contacts"] == "mailto:b@example.test, mailto:c@example.test"

    old_key = spki(adir / "private_key.pem")
    old_thumb = info["key"].split("thumbprint ")[1]
    r = ok(cli("account", "rollover", "--key-type", "ec384"))
    assert r.stdout.startswith("Account key replaced (ec384, thumbprint ")
    assert spki(adir / "private_key.pem") != old_key
    assert stat.S_IMODE((adir / "private_key.pem").stat().st_mode) == 0o600
    info = show(cli)
    assert info["account"] == url  # same account, new key
    assert info["key"].startswith("ec384, thumbprint ")
    assert info["key"].split("thumbprint ")[1] != old_thumb

    # the CA accepts the new key for new work
    name = fresh()
    r = ok(cli.issue("-d", name))
    assert f"Certificate for {name} saved" in r.stdout
    assert "Registered account" not in r.stderr
    verify_chain(cli.live(name), pebble.root_pem(), tmp_path)


def test_deactivate_then_issue_is_refused(cli: Cli) -> None:
    ok(cli("account", "register", "--agree-tos"))
    url = show(cli)["account"]

    # no terminal and no --yes: refused, nothing changed
    line = usage_error(cli("account", "deactivate"))
    assert "--yes" in line
    assert show(cli)["status"] == "valid"

    r = ok(cli("account", "deactivate", "--yes"))
    assert f"Account {url} deactivated" in r.stdout

    name = fresh()
    line = usage_error(cli.issue("-d", name))
    assert f"the account {url} for {cli.pebble.directory_url} was deactivated" in line
    assert not (cli.state / "live").exists()
    usage_error(cli("account", "show"))

    # a new account can be registered afterwards, and it works
    r = ok(cli("account", "register", "--agree-tos"))
    new_url = r.stdout.split()[1]
    assert new_url != url
    ok(cli.issue("-d", name))


def test_register_needs_terms_agreement_without_a_terminal(cli: Cli) -> None:
    line = usage_error(cli("account", "register", "--email", "a@example.test"))
    assert "terms of service" in line
    assert written(cli.state) == []


def test_show_without_account(cli: Cli) -> None:
    r = cli("account", "show")
    line = usage_error(r)
    assert f"no account for {cli.pebble.directory_url}" in line
    assert "account register" in r.stderr


# ---------------------------------------------------------------------------- EAB


def test_eab_register_with_flags_then_issue(eab_pebble: Pebble, tmp_path: Path) -> None:
    cli = Cli(eab_pebble, tmp_path / "state")
    kid, hmac = next(iter(EAB_KEYS.items()))
    r = ok(cli("account", "register", "--agree-tos", "--eab-kid", kid, "--eab-hmac-key", hmac))
    assert r.stdout.startswith("Account https://")
    assert hmac not in (account_dir(cli) / "account.json").read_text()
    name = fresh()
    ok(cli.issue("-d", name))
    verify_chain(cli.live(name), eab_pebble.root_pem(), tmp_path)


def test_eab_hmac_key_from_the_environment(eab_pebble: Pebble, tmp_path: Path) -> None:
    """The HMAC key may come from $ACMEALI_EAB_HMAC_KEY (kept out of the process list),
    also when ``issue`` registers the account on first use."""
    kid, hmac = list(EAB_KEYS.items())[1]
    cli = Cli(eab_pebble, tmp_path / "state")
    r = ok(cli("account", "register", "--agree-tos", "--eab-kid", kid,
               env={"ACMEALI_EAB_HMAC_KEY": hmac}))
    assert r.stdout.startswith("Account https://")

    kid2, hmac2 = list(EAB_KEYS.items())[2]
    cli2 = Cli(eab_pebble, tmp_path / "state2")
    name = fresh()
    r = ok(cli2.issue("-d", name, "--eab-kid", kid2, env={"ACMEALI_EAB_HMAC_KEY": hmac2}))
    assert "Registered account" in r.stderr
    assert (cli2.live(name) / "cert.pem").is_file()


def test_eab_missing_is_a_clear_error(eab_pebble: Pebble, tmp_path: Path) -> None:
    cli = Cli(eab_pebble, tmp_path / "state")
    r = cli("account", "register", "--agree-tos")
    line = usage_error(r)
    assert f"{eab_pebble.directory_url} requires external account binding" in line
    assert "--eab-kid" in r.stderr and "--eab-hmac-key" in r.stderr
    assert not (cli.state / "accounts").exists()

    line = usage_error(cli("account", "register", "--agree-tos", "--eab-kid", "kid-x"))
    assert "needs both --eab-kid and --eab-hmac-key" in line

    r = cli.issue("-d", fresh())
    assert "requires external account binding" in usage_error(r)
    assert not (cli.state / "live").exists()


def test_eab_wrong_hmac_key_shows_the_cas_error(eab_pebble: Pebble, tmp_path: Path) -> None:
    cli = Cli(eab_pebble, tmp_path / "state")
    kid = next(iter(EAB_KEYS))
    _, other_hmac = eab_key()
    r = cli("account", "register", "--agree-tos", "--eab-kid", kid, "--eab-hmac-key", other_hmac)
    assert r.returncode == 1, r.stderr
    assert "error: CA error " in r.stderr
    assert other_hmac not in r.stderr
    assert not (cli.state / "accounts").exists()


# ---------------------------------------------------------------------------- servers


def test_resolve_server_aliases() -> None:
    assert resolve_server("letsencrypt") == LETSENCRYPT
    assert resolve_server("letsencrypt-staging") == LETSENCRYPT_STAGING
    assert LETSENCRYPT == "https://acme-v02.api.letsencrypt.org/directory"
    assert LETSENCRYPT_STAGING == "https://acme-staging-v02.api.letsencrypt.org/directory"
    assert resolve_server("https://ca.example/dir") == "https://ca.example/dir"


@pytest.mark.parametrize(("alias", "url"), [("letsencrypt", LETSENCRYPT),
                                            ("letsencrypt-staging", LETSENCRYPT_STAGING)])
def test_server_alias_on_the_command_line(tmp_path: Path, alias: str, url: str) -> None:
    """Fails before any network use, naming the resolved directory URL."""
    r = run_acmeali("--state-dir", str(tmp_path / "s"), "--server", alias, "account", "show",
                    input="")
    assert f"no account for {url} in " in usage_error(r)


def test_server_must_be_https(tmp_path: Path) -> None:
    r = run_acmeali("--state-dir", str(tmp_path / "s"), "--server", "http://ca.example/dir",
                    "account", "show", input="")
    assert "expected an https:// ACME directory URL" in usage_error(r)


def test_accounts_are_kept_per_server(cli: Cli, tmp_path: Path,
                                      pebble_nonce_reject: Pebble) -> None:
    ok(cli("account", "register", "--agree-tos"))
    other = Cli(pebble_nonce_reject, cli.state)  # same state directory, another CA
    ok(other("account", "register", "--agree-tos"))
    names = sorted(p.name for p in (cli.state / "accounts").iterdir())
    assert names == sorted([f"127.0.0.1_{cli.pebble.port}_dir",
                            f"127.0.0.1_{pebble_nonce_reject.port}_dir"])
    assert show(cli)["account"] != show(other)["account"]


def test_tls_verification_stays_on(pebble: Pebble, tmp_path: Path) -> None:
    """Pebble's listener certificate is not trusted without --ca-bundle: refused in one
    line, nothing registered (the shared SSLContext must never lose CERT_REQUIRED)."""
    state = tmp_path / "state"
    r = run_acmeali("--state-dir", str(state), "--server", pebble.directory_url,
                    "account", "register", "--agree-tos", "--email", "a@example.test")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert "verif" in r.stderr.lower(), r.stderr
    assert not (state / "accounts").exists() or not any((state / "accounts").rglob("*.json"))
