"""`acmeali import certbot` on lineages certbot itself issued from the local Pebble.

certbot is installed from PyPI into bench/.peers/certbot-venv (as `make bench` does) the
first time and reused afterwards. The import is offline; the renewal afterwards is real:
it must reuse certbot's account (no newAccount request reaches Pebble) and keep the
certbot paths a web server names working.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from acmeali.certbot_import import CertbotLineage, map_settings, parse_renewal_conf
from tests.certbot_peer import Certbot
from tests.conftest import run_acmeali
from tests.peers.pebble import Pebble


@pytest.fixture(scope="module")
def certbot_dir(pebble: Pebble, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A certbot config dir with two lineages certbot issued from Pebble."""
    home = tmp_path_factory.mktemp("certbot")
    Certbot.install(home / "install.log")
    cb = Certbot(pebble, home)
    marker = home / "deployed"
    cb.certonly("-d", "cb1.example.test", "-d", "www.cb1.example.test", "--key-type", "rsa",
                "--reuse-key", "--pre-hook", "true",
                "--deploy-hook", f'echo "$RENEWED_LINEAGE" >> {marker}')
    cb.certonly("-d", "cb2.example.test", "--key-type", "ecdsa")
    (cb.config_dir / "renewal-hooks" / "deploy" / "reload.sh").write_text("#!/bin/sh\n")
    yield cb.config_dir


def acmeali(pebble: Pebble, state: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_acmeali("--state-dir", str(state), "--server", pebble.directory_url,
                       "--ca-bundle", pebble.ca_bundle, *args, input="")


def ok(r):  # type: ignore[no-untyped-def]
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr
    return r


def test_import_in_place_keeps_paths_and_renews_with_certbots_account(
        pebble: Pebble, certbot_dir: Path, tmp_path: Path) -> None:
    le = tmp_path / "letsencrypt"
    shutil.copytree(certbot_dir, le, symlinks=True)
    before = (le / "live" / "cb1.example.test" / "fullchain.pem").read_bytes()
    key_before = (le / "live" / "cb1.example.test" / "privkey.pem").read_bytes()

    # Pointed at certbot's directory before importing, acmeali says what to do.
    r = ok(acmeali(pebble, le, "certs", "list"))
    assert "No certificates" in r.stdout and "acmeali import certbot" in r.stderr
    r = ok(acmeali(pebble, le, "import", "certbot", "--config-dir", str(le)))
    assert "Imported 2 of 2 certbot lineages" in r.stdout
    assert "renewal-hooks/deploy: reload.sh" in r.stderr  # reported, not silently dropped
    # The same paths, the same bytes, now acmeali's layout; certbot's conf is parked.
    live = le / "live" / "cb1.example.test"
    assert (live / "fullchain.pem").read_bytes() == before
    assert os.readlink(live / "fullchain.pem") == "current/fullchain.pem"
    assert stat.S_IMODE((live / "privkey.pem").stat().st_mode) == 0o600
    assert not (le / "renewal" / "cb1.example.test.conf").exists()
    assert (le / "renewal" / "cb1.example.test.conf.imported").exists()

    certs = {c["name"]: c for c in json.loads(
        ok(acmeali(pebble, le, "certs", "list", "--json")).stdout)["certificates"]}
    assert set(certs) == {"cb1.example.test", "cb2.example.test"}
    assert certs["cb1.example.test"]["domains"] == ["cb1.example.test", "www.cb1.example.test"]
    assert certs["cb1.example.test"]["key_type"] == "rsa2048"
    assert certs["cb2.example.test"]["key_type"] == "ec256"
    assert certs["cb1.example.test"]["status"] == "valid"
    meta = json.loads((le / "renewal" / "cb1.example.test.json").read_text())
    assert meta["settings"]["http_port"] == pebble.http_port
    assert meta["settings"]["reuse_key"] is True
    assert meta["settings"]["deploy_hook"].startswith("echo")

    seen = len(pebble.requests_seen())
    r = ok(acmeali(pebble, le, "renew", "--force", "--name", "cb1.example.test"))
    assert "1 done, 0 failed" in r.stderr
    new_accounts = [p for m, p in pebble.requests_seen()[seen:] if "sign-me-up" in p]
    assert new_accounts == []  # certbot's account was reused
    after = (live / "fullchain.pem").read_bytes()
    assert after != before
    assert (live / "privkey.pem").read_bytes() == key_before  # certbot's reuse_key carried over
    assert (le / "archive" / "cb1.example.test" / "v2").is_dir()
    # Running the import again changes nothing.
    r = ok(acmeali(pebble, le, "import", "certbot", "--config-dir", str(le)))
    assert "Imported 0 of 0" in r.stdout or "No certbot lineages" in r.stdout


def test_import_into_separate_state_dir_leaves_certbot_alone(
        pebble: Pebble, certbot_dir: Path, tmp_path: Path) -> None:
    le = tmp_path / "letsencrypt"
    shutil.copytree(certbot_dir, le, symlinks=True)
    state = tmp_path / "state"
    r = ok(acmeali(pebble, state, "import", "certbot", "--config-dir", str(le),
                   "--cert-name", "cb2.example.test", "--dry-run"))
    assert "would import cb2.example.test" in r.stdout
    assert not (state / "renewal").exists()
    ok(acmeali(pebble, state, "import", "certbot", "--config-dir", str(le),
               "--cert-name", "cb2.example.test"))
    assert (le / "renewal" / "cb2.example.test.conf").exists()  # certbot's files untouched
    assert os.readlink(le / "live" / "cb2.example.test" / "cert.pem").endswith("cert1.pem")
    assert (state / "live" / "cb2.example.test" / "fullchain.pem").read_bytes() == \
        (le / "live" / "cb2.example.test" / "fullchain.pem").read_bytes()
    accounts = list((state / "accounts").rglob("account.json"))
    assert len(accounts) == 1
    assert json.loads(accounts[0].read_text())["imported_from"] == "certbot"


def test_import_bad_config_dir_is_one_clear_line(tmp_path: Path, pebble: Pebble) -> None:
    r = acmeali(pebble, tmp_path / "s", "import", "certbot", "--config-dir", str(tmp_path))
    assert r.returncode == 2
    assert "not a certbot configuration directory" in r.stderr
    assert "Traceback" not in r.stderr


CONF = """\
version = 2.11.0
archive_dir = /etc/letsencrypt/archive/example.com
cert = /etc/letsencrypt/live/example.com/cert.pem
renew_before_expiry = 20 days
# Options used in the renewal process
[renewalparams]
account = abc
authenticator = {auth}
installer = nginx
server = https://acme-v02.api.letsencrypt.org/directory
key_type = ecdsa
webroot_path = /var/www/a,
must_staple = True
preferred_chain = ISRG Root X1
rsa_key_size = 4096
[[webroot_map]]
example.com = /var/www/a
{extra}
"""


@pytest.mark.parametrize(("auth", "extra", "expect_setting", "expect_unmapped"), [
    ("webroot", "", {"webroot": "/var/www/a", "challenge": "http-01"}, ["installer nginx"]),
    ("webroot", "www.example.com = /var/www/b", {}, ["one webroot per lineage"]),
    ("nginx", "", {}, ["authenticator nginx"]),
    ("dns-cloudflare", "", {}, ["authenticator dns-cloudflare"]),
    ("manual", "", {}, ["CERTBOT_*"]),
])
def test_settings_map_where_clean_and_report_the_rest(
        auth: str, extra: str, expect_setting: dict[str, str],
        expect_unmapped: list[str]) -> None:
    top, params, wmap = parse_renewal_conf(CONF.format(auth=auth, extra=extra))
    assert params["preferred_chain"] == "ISRG Root X1"
    m = map_settings(CertbotLineage("example.com", Path("x.conf"), top, params, wmap),
                     Path("/etc/letsencrypt"))
    for k, v in expect_setting.items():
        assert m.settings[k] == v
    assert m.settings["must_staple"] is True
    text = "\n".join(m.unmapped)
    for needle in [*expect_unmapped, "renew_before_expiry"]:
        assert needle in text
