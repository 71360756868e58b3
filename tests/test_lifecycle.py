"""A lineage's life as a certbot user lives it, end to end against Pebble (issue 13).

A lineage exists once its first certificate does; re-running `issue` is safe; `delete`
and `revoke` end a lineage; one-off deploy targets stay one-off; everything that can
fail locally fails before Pebble sees a newOrder (counted from Pebble's own log).
"""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.peers.pebble import Pebble, free_port
from tests.test_cli_issue import Cli, fresh, leaf, ok, usage_error


@pytest.fixture
def cli(pebble: Pebble, tmp_path: Path) -> Cli:
    return Cli(pebble, tmp_path / "state")


def orders(pebble: Pebble) -> int:
    """newOrder requests Pebble has seen so far."""
    return sum(1 for method, path in pebble.requests_seen()
               if method == "POST" and path.startswith("/order-plz"))


def leftovers(state: Path, name: str) -> list[str]:
    """Anything stored under ``name``: record, live, archive, lock."""
    paths = [state / "renewal" / f"{name}.json", state / "live" / name,
             state / "archive" / name, state / "locks" / f"{name}.lock"]
    return [str(p.relative_to(state)) for p in paths if os.path.lexists(p)]


def meta(cli: Cli, name: str) -> dict[str, object]:
    return json.loads((cli.state / "renewal" / f"{name}.json").read_text())  # type: ignore[no-any-return]


def version(cli: Cli, name: str) -> str:
    return os.readlink(cli.live(name) / "current").rsplit("/", 1)[1]


# ---------------------------------------------------------------- a lineage exists once...


def test_failed_first_issue_leaves_no_lineage_and_renew_never_retries_it(cli: Cli) -> None:
    name = fresh()
    # Nothing answers on this port: the CA's validation fails after the order.
    r = cli("issue", "-d", name, "--http-address", "127.0.0.1", "--http-port",
            str(free_port()), "--agree-tos", "-m", "ops@example.test")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert leftovers(cli.state, name) == []
    seen = orders(cli.pebble)
    r = ok(cli("renew"))
    assert name not in r.stderr + r.stdout
    assert orders(cli.pebble) == seen
    assert ok(cli("certs", "check", server=False))

    # A profile error inside the lineage lock leaves no lock file either.
    other = fresh()
    usage_error(cli.issue("-d", other, "--profile", "shortlived"))
    assert leftovers(cli.state, other) == []


def test_busy_standalone_port_refused_before_the_order(cli: Cli) -> None:
    name = fresh()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        seen = orders(cli.pebble)
        r = cli("issue", "-d", name, "--http-address", "127.0.0.1", "--http-port", str(port),
                "--agree-tos", "--email", "ops@example.test")
    assert r.returncode != 0 and "already in use" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert orders(cli.pebble) == seen
    assert leftovers(cli.state, name) == []


@pytest.mark.parametrize(("flag", "value", "expect"), [
    ("--deploy-hook", "/nonexistent/reload-nginx", "/nonexistent/reload-nginx does not exist"),
    ("--pre-hook", "no-such-program-xyz --stop", "'no-such-program-xyz' is not found on PATH"),
    ("--post-hook", "{tmp}/not-executable.sh", "not-executable.sh is not executable"),
    ("--deploy", "hook:/nonexistent/hook", "/nonexistent/hook does not exist"),
])
def test_broken_hook_refused_before_anything(cli: Cli, tmp_path: Path, flag: str, value: str,
                                             expect: str) -> None:
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    value = value.format(tmp=tmp_path)
    expect = expect.format(tmp=tmp_path)
    name = fresh()
    seen = orders(cli.pebble)
    line = usage_error(cli.issue("-d", name, flag, value))
    assert expect in line
    assert orders(cli.pebble) == seen
    assert leftovers(cli.state, name) == []


def test_webroot_that_cannot_hold_challenge_files(cli: Cli, tmp_path: Path) -> None:
    webroot = tmp_path / "www"
    webroot.mkdir()
    (webroot / ".well-known").write_text("a file where a directory must go")
    seen = orders(cli.pebble)
    line = usage_error(cli.issue("-d", fresh(), "--webroot", str(webroot)))
    assert ".well-known exists and is not a directory" in line
    assert orders(cli.pebble) == seen


@pytest.mark.parametrize("how", [["--dns", "alidns"], ["--deploy", "cas"],
                                 ["--deploy", "cdn:static.example.test"]])
def test_missing_alibaba_credentials_refused_before_the_order(cli: Cli, how: list[str]
                                                              ) -> None:
    name = fresh()
    seen = orders(cli.pebble)
    line = usage_error(cli.issue("-d", name, *how))
    assert "needs Alibaba Cloud credentials" in line and "no Alibaba Cloud credentials" in line
    assert orders(cli.pebble) == seen
    assert leftovers(cli.state, name) == []
    assert not (cli.state / "accounts").exists()  # nor was an account registered


def test_manual_lineage_under_renew_without_a_terminal(cli: Cli) -> None:
    name = fresh()
    ok(cli.issue("-d", name))
    # The lineage as `issue --dns manual` at a terminal records it.
    path = cli.state / "renewal" / f"{name}.json"
    data = json.loads(path.read_text())
    data["settings"].update(challenge="dns-01", dns="manual")
    data["flag_keys"] = sorted({*data["flag_keys"], "challenge", "dns"})
    path.write_text(json.dumps(data))
    seen = orders(cli.pebble)
    r = cli("renew", "--force")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "--dns manual needs a terminal" in r.stderr and "cannot renew unattended" in r.stderr
    assert orders(cli.pebble) == seen


def _pty_run(args: list[str], on_output: object, timeout: float = 90) -> tuple[int, str]:
    """Run the CLI with a terminal as stdin/stderr; ``on_output(text, write)`` reacts."""
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "acmeali", *args], stdin=slave,
                            stdout=slave, stderr=slave, env=env, cwd=REPO, close_fds=True)
    os.close(slave)
    text = ""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                text += chunk.decode(errors="replace")
                on_output(text, lambda s: os.write(master, s.encode()))  # type: ignore[operator]
            elif proc.poll() is not None:
                break
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return rc, text


def test_manual_dns_at_a_terminal_warns_it_will_not_renew_unattended(cli: Cli,
                                                                     pebble: Pebble) -> None:
    name = fresh()
    answered: list[str] = []

    def react(text: str, write: object) -> None:
        if "(for " in text and not answered:
            line = next(ln for ln in text.splitlines() if "(for " in ln)
            fqdn, value = line.split()[0].rstrip("."), line.split('"')[1]
            pebble.challtestsrv.set_txt(fqdn, value)
            answered.append(fqdn)
            write("\n")  # type: ignore[operator]

    glob = ["--state-dir", str(cli.state), "--server", pebble.directory_url,
            "--ca-bundle", pebble.ca_bundle]
    rc, text = _pty_run([*glob, "issue", "-d", name, "--dns", "manual", "--dns-resolver",
                         pebble.challtestsrv.dns_address, "--dns-timeout", "20",
                         "--agree-tos", "-m", "ops@example.test"], react)
    assert rc == 0, text
    assert answered
    assert "cannot renew it unattended" in text
    assert text.index("cannot renew it unattended") < text.index("press Enter")
    # -n (certbot's --non-interactive): as without a terminal, refused before any order.
    seen = orders(pebble)
    rc, text = _pty_run([*glob, "-n", "issue", "-d", fresh(), "--dns", "manual"],
                        lambda t, w: None)
    assert rc == 2 and "needs a terminal" in text, text
    assert orders(pebble) == seen


# ---------------------------------------------------------------- re-running issue


def test_rerun_is_safe_same_names_any_order(cli: Cli) -> None:
    a, b = fresh(), fresh()
    ok(cli.issue("-d", a, "-d", b))
    seen = orders(cli.pebble)
    for args in (["-d", a, "-d", b], ["-d", b.upper(), "-d", a], ["-d", b, "-d", a,
                                                                  "--keep-until-expiring"]):
        r = ok(cli.issue(*args))
        assert f"{a}: not due yet, nothing done" in r.stdout, r.stdout + r.stderr
    assert orders(cli.pebble) == seen
    assert sorted(os.listdir(cli.state / "renewal")) == [f"{a}.json"]
    assert version(cli, a) == "v1"
    for force in ("--force", "--force-renewal", "--renew-by-default"):
        ok(cli.issue("-d", b, "-d", a, force))
    assert version(cli, a) == "v4"
    assert sorted(os.listdir(cli.state / "renewal")) == [f"{a}.json"]


def test_rerun_not_due_still_adds_new_deploy_targets_and_a_new_server_reissues(
        cli: Cli, pebble_nonce_reject: Pebble, tmp_path: Path) -> None:
    name = fresh()
    ok(cli.issue("-d", name))
    log = tmp_path / "deployed"
    target = f"hook:echo added >> {shlex.quote(str(log))}"
    seen = orders(cli.pebble)
    r = ok(cli.issue("-d", name, "--deploy", target))
    assert "not due yet, nothing done" in r.stdout
    assert log.read_text().split() == ["added"]
    assert meta(cli, name)["deploy"] == [target]
    assert orders(cli.pebble) == seen and version(cli, name) == "v1"
    # Moving the lineage to another CA (staging -> production, say) is not "not due".
    other = Cli(pebble_nonce_reject, cli.state)
    r = ok(other.issue("-d", name))
    assert f"lineage {name} moves from {cli.pebble.directory_url}" in r.stderr
    assert version(cli, name) == "v2"
    assert meta(cli, name)["server"] == pebble_nonce_reject.directory_url


def test_expand_allowed_removal_needs_force_other_lineage_warned(cli: Cli) -> None:
    a, c = fresh(), fresh()
    ok(cli.issue("-d", a))
    r = ok(cli.issue("-d", a, "-d", c, "--expand"))
    assert f"Expanding lineage {a} with {c}" in r.stderr
    assert meta(cli, a)["domains"] == [a, c]
    # Dropping c by accident is refused; --force (or --name) does it.
    line = usage_error(cli.issue("-d", a))
    assert f"lineage {a} also covers {c}" in line
    assert meta(cli, a)["domains"] == [a, c]
    r = ok(cli.issue("--cert-name", "second", "-d", c))
    assert f"lineage {a} already covers {c}" in r.stderr
    r = ok(cli.issue("-d", a, "--force"))
    assert meta(cli, a)["domains"] == [a]
    ok(cli.issue("-d", a, "-d", c))
    ok(cli.issue("--name", a, "-d", c))  # an explicit --name also says "these names now"
    assert meta(cli, a)["domains"] == [c]


def test_name_without_domains_reuses_the_stored_names_and_settings(cli: Cli,
                                                                   tmp_path: Path) -> None:
    a, b = fresh(), fresh()
    log = tmp_path / "hook.log"
    ok(cli.issue("-d", a, "-d", b, "--name", "site",
                 "--deploy-hook", f"echo deployed >> {shlex.quote(str(log))}"))
    r = ok(cli.issue("--name", "site"))
    assert "site: not due yet, nothing done" in r.stdout
    # No -d, no challenge flags, no --server (nor --ca-bundle): the lineage's own CA.
    r = ok(cli("issue", "--cert-name", "site", "--force", server=False))
    assert "version 2" in r.stdout
    assert meta(cli, "site")["domains"] == [a, b]
    assert log.read_text().split() == ["deployed", "deployed"]


def test_ca_bundle_given_at_issue_is_recorded_for_renew(cli: Cli) -> None:
    name = fresh()
    ok(cli.issue("-d", name))
    assert meta(cli, name)["ca_bundle"] == str(Path(cli.pebble.ca_bundle).resolve())
    # cron: no --server, no --ca-bundle
    r = ok(cli("renew", "--force", server=False))
    assert f"{name}: renewed" in r.stderr
    assert version(cli, name) == "v2"


def test_certs_list_says_due_now_when_the_config_names_changed(cli: Cli, tmp_path: Path
                                                               ) -> None:
    a, b = fresh(), fresh()
    ok(cli.issue("-d", a))
    cfg = tmp_path / "acmeali.toml"
    cfg.write_text(f'[[certificates]]\nname = "{a}"\ndomains = ["{a}", "{b}"]\n')
    r = ok(cli("--config", str(cfg), "certs", "list", "--json", server=False))
    row = json.loads(r.stdout)["certificates"][0]
    assert row["renewal_reason"] == "its names changed in the config file"
    assert row["next_renewal"] <= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---------------------------------------------------------------- delete


def test_delete_asks_refuses_without_yes_and_removes_everything(cli: Cli) -> None:
    a, b = fresh(), fresh()
    ok(cli.issue("-d", a))
    ok(cli.issue("-d", b))
    r = cli("delete", "--name", a, server=False)
    assert "refusing without a terminal" in usage_error(r) and "add --yes" in r.stderr
    assert (cli.state / "renewal" / f"{a}.json").exists()
    assert usage_error(cli("delete", "--name", "nope.example.test", "--yes", server=False))

    r = ok(cli("delete", "--cert-name", a, "--yes", server=False))
    assert r.stdout.strip() == f"Deleted lineage {a}"
    assert leftovers(cli.state, a) == []
    assert set(cli.certs()) == {b}
    seen = orders(cli.pebble)
    ok(cli("renew", "--force", server=False))
    assert orders(cli.pebble) == seen + 1  # b only

    r = ok(cli("delete", "--name", b, "--yes", "--keep-files", server=False))
    assert "PEM files kept" in r.stdout
    assert not (cli.state / "renewal" / f"{b}.json").exists()
    assert leaf(cli.live(b))  # the files a server may read stay
    assert cli.certs() == {}


def test_delete_at_a_terminal_asks(cli: Cli) -> None:
    name = fresh()
    ok(cli.issue("-d", name))
    glob = ["--state-dir", str(cli.state)]

    def answer(reply: str) -> object:
        sent: list[bool] = []

        def react(text: str, write: object) -> None:
            if "[y/N]" in text and not sent:
                sent.append(True)
                write(reply)  # type: ignore[operator]
        return react

    rc, text = _pty_run([*glob, "delete", "--name", name], answer("n\n"))
    assert rc == 1 and "nothing deleted" in text
    assert (cli.state / "renewal" / f"{name}.json").exists()
    rc, text = _pty_run([*glob, "delete", "--name", name], answer("y\n"))
    assert rc == 0 and f"Deleted lineage {name}" in text
    assert leftovers(cli.state, name) == []


# ---------------------------------------------------------------- revoke


def test_revoke_deletes_by_default_so_renew_never_reissues(cli: Cli) -> None:
    name = fresh()
    ok(cli.issue("-d", name))
    serial = format(leaf(cli.live(name)).serial_number, "x")
    r = ok(cli("revoke", "--name", name))
    assert f"Deleted lineage {name}" in r.stderr
    assert cli.pebble.cert_status(serial)["Status"] == "Revoked"
    assert leftovers(cli.state, name) == []
    seen = orders(cli.pebble)
    ok(cli("renew", "--force"))
    assert orders(cli.pebble) == seen


def test_revoke_no_delete_is_skipped_by_renew_until_issue_force(cli: Cli) -> None:
    name = fresh()
    ok(cli.issue("-d", name))
    ok(cli("revoke", "--name", name, "--no-delete"))
    seen = orders(cli.pebble)
    for args in (["renew"], ["renew", "--force"], ["renew", "--name", name]):
        ok(cli(*args))
    assert orders(cli.pebble) == seen
    assert version(cli, name) == "v1"
    r = cli.issue("-d", name)  # neither silently "not due" nor re-issued
    assert "was revoked" in usage_error(r) and "--force" in r.stderr
    ok(cli.issue("-d", name, "--force"))
    assert version(cli, name) == "v2"
    assert cli.certs()[name]["status"] == "valid"


def test_reissue_of_a_cert_that_is_no_lineage_is_refused_before_revoking(
        cli: Cli, pebble: Pebble, tmp_path: Path) -> None:
    other = Cli(pebble, tmp_path / "other-state")
    name = fresh()
    ok(other.issue("-d", name))
    cert, key = other.live(name) / "cert.pem", other.live(name) / "privkey.pem"
    serial = format(leaf(other.live(name)).serial_number, "x")
    line = usage_error(cli("revoke", "--cert", str(cert), "--key", str(key), "--reissue"))
    assert "--reissue needs a lineage" in line
    assert pebble.cert_status(serial)["Status"] == "Valid"
    # --use-cert-key names a lineage's key: without --name it is refused (docs/revoking.md),
    # even for a --cert that is some lineage's live certificate.
    line = usage_error(other("revoke", "--cert", str(cert), "--use-cert-key"))
    assert "--use-cert-key needs --name" in line
    assert pebble.cert_status(serial)["Status"] == "Valid"


# ---------------------------------------------------------------- deploy targets


def test_deploy_target_is_one_off_unless_saved_and_can_be_removed(cli: Cli,
                                                                  tmp_path: Path) -> None:
    name = fresh()
    ok(cli.issue("-d", name))
    marker = tmp_path / "ran"
    once = f"hook:echo once >> {shlex.quote(str(marker))}"
    r = ok(cli("deploy", "--name", name, "--target", once, server=False))
    assert "add --save" in r.stderr
    assert marker.read_text().split() == ["once"]
    assert meta(cli, name)["deploy"] == []
    broken = "hook:echo cannot reload >&2; exit 3"
    r = cli("deploy", "--name", name, "--target", broken, "--save", server=False)
    assert r.returncode == 1
    assert meta(cli, name)["deploy"] == [broken]
    r = cli("certs", "check", server=False)
    assert r.returncode == 1 and "deploy-failed" in r.stdout
    assert cli("renew", server=False).returncode == 1  # retried, fails again

    r = ok(cli("deploy", "--name", name, "--remove-target", broken, server=False))
    assert f"removed deploy target {broken}" in r.stdout
    assert meta(cli, name)["deploy"] == []
    ok(cli("certs", "check", server=False))
    r = ok(cli("renew", server=False))
    assert "No renewals due" in r.stderr
    line = usage_error(cli("deploy", "--name", name, "--remove-target", "cas", server=False))
    assert "has no deploy target 'cas'" in line


# ---------------------------------------------------------------- certbot habits


def test_deploy_hook_gets_certbot_variables_and_its_output_is_shown(cli: Cli) -> None:
    a, b = fresh(), fresh()
    hook = 'echo "lineage=$RENEWED_LINEAGE domains=$RENEWED_DOMAINS"'
    r = ok(cli.issue("-d", a, "-d", b, "--deploy-hook", hook))
    assert "hook 'deploy-hook' ran with output:" in r.stderr
    assert f"lineage={cli.live(a)} domains={a} {b}" in r.stderr
    r = ok(cli("renew", "--force", server=False))
    assert f"lineage={cli.live(a)} domains={a} {b}" in r.stderr


def test_certbot_spellings(cli: Cli, pebble: Pebble) -> None:
    line = usage_error(cli("--staging", "issue", "-d", fresh()))  # with --server pebble
    assert "--staging and --server name different CAs" in line
    # Alone it means Let's Encrypt staging (shown offline: no account stored for it).
    for flag in ("--staging", "--test-cert"):
        r = cli("account", "show", flag, server=False)
        assert r.returncode == 2
        assert "no account for https://acme-staging-v02.api.letsencrypt.org/directory" in (
            r.stderr)
    r = run_help("issue")
    for flag in ("--cert-name", "--force-renewal", "--renew-by-default",
                 "--keep-until-expiring", "--expand", "-m", "--staging", "--test-cert",
                 "--non-interactive"):
        assert flag in r, flag
    for command, flags in (("renew", ("--cert-name", "--force-renewal")),
                           ("revoke", ("--cert-name", "--delete", "--no-delete")),
                           ("delete", ("--cert-name", "--yes", "--keep-files",
                                       "--cleanup-cloud")),
                           ("deploy", ("--save", "--remove-target"))):
        text = run_help(command)
        for flag in flags:
            assert flag in text, (command, flag)


def run_help(command: str) -> str:
    from tests.conftest import run_acmeali

    r = run_acmeali(command, "--help")
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_post_hook_runs_when_the_pre_hook_failed(cli: Cli, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    seen = orders(cli.pebble)
    name = fresh()
    r = cli.issue("-d", name, "--pre-hook", f"echo pre >> {log}; exit 4",
                  "--post-hook", f"echo post >> {log}")
    assert r.returncode == 1 and "pre hook" in r.stderr
    assert log.read_text().split() == ["pre", "post"]
    assert orders(cli.pebble) == seen
    assert leftovers(cli.state, name) == []


def test_renew_checks_its_own_hooks_first(cli: Cli) -> None:
    name = fresh()
    ok(cli.issue("-d", name))
    seen = orders(cli.pebble)
    line = usage_error(cli("renew", "--force", "--deploy-hook", "/nonexistent/reload",
                           server=False))
    assert "--deploy-hook '/nonexistent/reload': /nonexistent/reload does not exist" in line
    assert orders(cli.pebble) == seen and version(cli, name) == "v1"
