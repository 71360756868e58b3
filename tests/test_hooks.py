"""run_hook against real /bin/sh: values by environment only, failures explained, time bounded."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from acmeali.hooks import HookError, run_hook
from tests.conftest import run_acmeali
from tests.peers.pebble import Pebble


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "hook.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_values_arrive_in_the_environment_and_never_in_the_shell(tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    script = _script(tmp_path,
                     f'printf "%s\\n%s\\n" "$ACMEALI_DOMAIN" "$ACMEALI_TXT_VALUE" > {out}\n')
    canary = tmp_path / "pwned"
    hostile = f"$(touch {canary}); `touch {canary}` ' \" *"
    result = run_hook(str(script), {"ACMEALI_DOMAIN": "example.com", "ACMEALI_TXT_VALUE": hostile},
                      what="test hook")
    assert result.returncode == 0
    assert out.read_text().splitlines() == ["example.com", hostile]
    assert not canary.exists()


def test_command_string_is_the_users_shell_line(tmp_path: Path) -> None:
    # Pipes and && are the user's to use: the command runs under /bin/sh -c.
    result = run_hook("echo one | tr a-z A-Z && echo two >&2", {}, what="test hook")
    assert result.stdout == "ONE\n"
    assert result.stderr == "two\n"


def test_output_is_captured_not_printed(capfd: pytest.CaptureFixture[str]) -> None:
    run_hook("echo to-stdout; echo to-stderr >&2", {}, what="test hook")
    captured = capfd.readouterr()
    assert "to-stdout" not in captured.out + captured.err
    assert "to-stderr" not in captured.out + captured.err


def test_failure_carries_exit_code_and_stderr_tail() -> None:
    with pytest.raises(HookError) as info:
        run_hook("echo noise; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; "
                 "do echo line$i >&2; done; echo 'zone example.com: permission denied' >&2; "
                 "exit 3", {}, what="DNS hook (present x)")
    err = info.value
    assert err.returncode == 3
    assert "exited with status 3" in err.message
    assert err.message.startswith("DNS hook (present x)")
    assert "zone example.com: permission denied" in err.stderr_tail
    assert "line1\n" not in err.stderr_tail  # only the tail
    assert "permission denied" in err.render()


def test_command_not_found_gets_a_hint() -> None:
    with pytest.raises(HookError) as info:
        run_hook("/nonexistent/acmeali-hook", {}, what="test hook")
    assert info.value.returncode == 127
    assert info.value.hint and "absolute path" in info.value.hint


def test_timeout_kills_the_hook_and_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    start = time.monotonic()
    with pytest.raises(HookError) as info:
        run_hook(f"sleep 60 & echo $! > {pidfile}; echo started >&2; wait", {}, timeout=0.5,
                 what="slow hook")
    assert time.monotonic() - start < 10
    assert info.value.timed_out
    assert "did not finish within 0.5s" in info.value.message
    assert "started" in info.value.stderr_tail
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the hook's child process survived the timeout")


def test_environment_is_added_to_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACMEALI_TEST_INHERITED", "yes")
    result = run_hook('echo "$ACMEALI_TEST_INHERITED $PATH_EXTRA"', {"PATH_EXTRA": "added"},
                      what="test hook")
    assert result.stdout == "yes added\n"


SECRETS = {
    "ACMEALI_EAB_HMAC_KEY": "eab-hmac-secret-value",
    "ACMEALI_TSIG_SECRET": "tsig-secret-value",
    "ACMEALI_STORAGE_KEY": "storage-key-value",
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-id-value",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "ak-secret-value",
    "ALIBABA_CLOUD_SECURITY_TOKEN": "sts-token-value",
    "ALICLOUD_SECRET_KEY": "alicloud-secret-value",
    "ACMEALI_SOME_FUTURE_PASSWORD": "future-secret-value",
    "PGPASSWORD": "database-password-value",
}


def test_hooks_never_receive_acmealis_secrets(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("MY_OWN_SETTING", "kept")
    monkeypatch.setenv("ACMEALI_CONFIG", "/etc/acmeali/config.toml")
    out = run_hook("env", {"ACMEALI_KEY_PATH": "/live/privkey.pem"}, what="test hook").stdout
    for k, v in SECRETS.items():
        assert k not in out and v not in out
    assert "MY_OWN_SETTING=kept" in out  # the user's own environment is the hook's
    assert "ACMEALI_CONFIG=/etc/acmeali/config.toml" in out
    assert "ACMEALI_KEY_PATH=/live/privkey.pem" in out  # what acmeali hands over


def test_issue_hooks_through_the_cli_see_no_secrets(tmp_path: Path, pebble: Pebble) -> None:
    """Pre-, post- and deploy hooks and a hook: deploy target of a real issuance."""
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    cmd = f"env > {dumps}/$$.env"
    name = "hook-secrets.example.test"
    r = run_acmeali("--state-dir", str(tmp_path / "state"), "--server", pebble.directory_url,
                    "--ca-bundle", pebble.ca_bundle, "issue", "-d", name,
                    "--http-port", str(pebble.http_port), "--http-address", "127.0.0.1",
                    "--agree-tos", "--email", "ops@example.test", "--pre-hook", cmd,
                    "--post-hook", cmd, "--deploy-hook", cmd, "--deploy", f"hook:{cmd}",
                    # An EAB key without a kid is not used (Pebble needs none); it is set
                    # only to prove it does not reach a hook.
                    env={**SECRETS, "ACMEALI_EAB_HMAC_KEY": ""},
                    input="")
    assert r.returncode == 0, r.stderr
    files = list(dumps.iterdir())
    assert len(files) == 4, files
    for f in files:
        text = f.read_text()
        for k, v in SECRETS.items():
            assert k not in text and (not v or v not in text), (f, k)
    assert any("ACMEALI_FINGERPRINT=" in f.read_text() for f in files)
