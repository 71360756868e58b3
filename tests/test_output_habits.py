"""Small output defects from the UX review (ux-review.md, "CLI defects outside the docs").

Each test failed on the code the review was made with (879409e).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from acmeali import PROJECT_URL
from tests.conftest import REPO, run_acmeali
from tests.emulator import AliyunEmulator
from tests.peers.pebble import Pebble
from tests.test_cli_issue import Cli, fresh, ok


@pytest.fixture(scope="module")
def issued(pebble: Pebble, tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, str, str]:
    """One lineage issued from Pebble, shared by the read-only tests below."""
    cli = Cli(pebble, tmp_path_factory.mktemp("habits") / "state")
    name = fresh()
    r = ok(cli.issue("-d", name))
    return cli, name, r.stderr


def test_issue_says_how_to_keep_it_renewed(issued: tuple[Cli, str, str]) -> None:
    """certbot prints NEXT STEPS; acmeali's first issuance names `schedule install`."""
    assert "Next: keep it renewed with `sudo acmeali schedule install`" in issued[2]


def test_renew_summary_counts_each_lineage_once(issued: tuple[Cli, str, str]) -> None:
    cli, name, _ = issued
    r = cli("renew", "--force", "--name", name, "--deploy-hook", "exit 3")
    assert r.returncode == 1
    assert "0 done, 1 failed, 0 not due (of 1)" in r.stderr, r.stderr
    # An unknown --name is a usage error (issue 12, item 15): no summary at all.
    r = cli("renew", "--name", "nosuch.example.test")
    assert r.returncode == 2
    assert "--name nosuch.example.test: no such lineage" in r.stderr, r.stderr
    assert "done," not in r.stderr and "-1" not in r.stderr


def test_nothing_due_says_lineage_in_the_singular(issued: tuple[Cli, str, str]) -> None:
    cli, _, _ = issued
    r = ok(cli("renew", server=False))
    assert "No renewals due (1 lineage;" in r.stderr, r.stderr
    r = ok(cli("certs", "check", server=False))
    assert "1 lineage healthy" in r.stderr and "lineages" not in r.stderr


def test_certs_table_times_name_their_zone(issued: tuple[Cli, str, str]) -> None:
    cli, name, _ = issued
    r = ok(cli("certs", "list", server=False))
    row = next(line for line in r.stdout.splitlines() if line.startswith(name))
    expires = json.loads(ok(cli("certs", "list", "--json", server=False)).stdout)[
        "certificates"][0]["not_after"]
    assert f"{expires[:10]} {expires[11:16]}Z" in row


def test_closed_pipe_is_no_traceback(tmp_path: Path) -> None:
    """`acmeali certs list | head -1`: the reader may be gone before acmeali writes."""
    env = {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "acmeali", "--state-dir", str(tmp_path),
                             "certs", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**__import__("os").environ, **env}, cwd=REPO)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `head` exiting early
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_account_hint_keeps_the_server(pebble: Pebble, tmp_path: Path) -> None:
    r = run_acmeali("--state-dir", str(tmp_path), "--server", pebble.directory_url,
                    "--ca-bundle", pebble.ca_bundle, "account", "show")
    assert r.returncode == 2
    assert f"acmeali account register --server {pebble.directory_url}" in r.stderr, r.stderr


def test_hints_name_web_pages_not_repository_paths(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    from acmeali.aliyun import clients
    from acmeali.aliyun.errors import hint_for

    monkeypatch.setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", str(tmp_path / "credentials.ini"))
    (tmp_path / "credentials.ini").write_text("[default]\ntype = access_key\n")
    provider = clients.credentials_provider(None)
    with pytest.raises(clients.NoCredentials) as info:
        provider.get_credentials()
    text = info.value.render()
    assert f"{PROJECT_URL}/blob/main/docs/alibaba-cloud.md" in text
    assert "see docs/" not in text
    assert ": $/" not in text and "$" not in text  # the SDK's stray "$" before the path
    hint = hint_for("Forbidden.RAM", "cas", "UploadUserCertificate") or ""
    assert PROJECT_URL in hint and "(docs/" not in hint


def test_wrong_secret_is_not_blamed_on_the_zone(emu: AliyunEmulator, pebble: Pebble,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import secrets

    from acmeali.aliyun import clear_clients
    from acmeali.config import CertSettings
    from acmeali.errors import AcmealiError
    from acmeali.solvers import make_solver
    from acmeali.solvers.base import ChallengeTask
    from tests.test_deploy_helpers import make_ui, settings_for

    zone = fresh("test")
    emu.add_dns_zone(zone)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "a-mistyped-secret")
    clear_clients()
    settings = CertSettings(challenge="dns-01", dns="alidns",
                            dns_resolvers=(pebble.challtestsrv.dns_address,), dns_timeout=5.0)
    solver = make_solver(settings, make_ui(), settings_for(emu))
    task = ChallengeTask(identifier=zone, token="t", key_authorization="x",
                         txt_name=f"_acme-challenge.{zone}",
                         txt_value=secrets.token_urlsafe(32))
    with pytest.raises(AcmealiError) as info:
        solver.present([task])
    text = info.value.render()
    assert "SignatureDoesNotMatch" in text
    assert "cannot tell the zone" not in text


def test_demo_shows_lines_in_the_order_written(issued: tuple[Cli, str, str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from tests import demo

    cli, _, _ = issued
    monkeypatch.setattr(demo, "WORK", tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    demo.acmeali("--state-dir", str(tmp_path / "s"), "--server", cli.pebble.directory_url,
                 "--ca-bundle", cli.pebble.ca_bundle, "issue", "-d", fresh(), "--agree-tos",
                 "--http-port", str(cli.pebble.http_port), "--http-address", "127.0.0.1",
                 env=env)
    out = capsys.readouterr().out
    assert out.index("Requesting a certificate") < out.index("saved (lineage")
