"""The run log: every run leaves what -v would show in a rotated 0600 file, secrets blanked."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.conftest import run_acmeali
from tests.peers.pebble import Pebble

SECRETS = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tExampleKeyId0001",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "AkSecretValueThatMustNeverBeLogged123",
    "ACMEALI_EAB_HMAC_KEY": "ZWFiLWhtYWMta2V5LWZyb20tdGhlLWVudmlyb25tZW50",
}
ARGV_HMAC = "YXJndi1obWFjLWtleS10aGF0LW11c3Qtbm90LWxlYWs"


def state_in_use(path: Path) -> Path:
    """A state directory that holds lineages (none yet), as after the first issuance."""
    (path / "renewal").mkdir(parents=True)
    return path


def test_quiet_renew_still_logs_what_verbose_would_show(tmp_path: Path) -> None:
    state = state_in_use(tmp_path / "state")
    r = run_acmeali("--state-dir", str(state), "renew", "-q")
    assert r.returncode == 0 and r.stderr == "" and r.stdout == ""
    log = state / "logs" / "acmeali.log"
    text = log.read_text()
    assert "renew -q" in text  # the command line
    assert f"No lineages in {state}" in text  # hidden by -q on the terminal, kept here
    assert text.rstrip().endswith("exit 0")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700


def test_a_fresh_state_directory_gets_no_log_from_a_failed_first_try(tmp_path: Path) -> None:
    state = tmp_path / "state"
    r = run_acmeali("--state-dir", str(state), "issue", "-d", "bad..name", "--agree-tos")
    assert r.returncode == 2
    assert not state.exists()


def test_secrets_in_environment_and_argv_never_reach_the_log(pebble: Pebble,
                                                             tmp_path: Path) -> None:
    state = tmp_path / "state"
    log = tmp_path / "custom" / "run.log"
    r = run_acmeali("--state-dir", str(state), "--server", pebble.directory_url,
                    "--ca-bundle", pebble.ca_bundle, "--log-file", str(log), "-vv",
                    "account", "register", "--agree-tos", "--email", "log@example.test",
                    "--eab-kid", "kid-1", "--eab-hmac-key", ARGV_HMAC,
                    env=SECRETS, input="")
    assert "error:" in r.stderr  # Pebble without EAB refuses the binding: a failure is logged
    text = log.read_text()
    assert "account register" in text and "--eab-hmac-key ***" in text
    assert "DEBUG" in text  # -vv detail went to the file too
    assert "ERROR acmeali.run: " in text and "exit 1" in text
    for secret in (*SECRETS.values(), ARGV_HMAC):
        if secret.startswith("LTAI"):
            continue  # an AccessKey ID is not a secret
        assert secret not in text
    assert not (state / "logs").exists()  # --log-file replaced the default


def test_log_rotates_and_can_be_switched_off(tmp_path: Path) -> None:
    state = state_in_use(tmp_path / "state")
    conf = tmp_path / "acmeali.toml"
    conf.write_text("[logging]\nmax_bytes = 10000\nbackups = 2\n")
    log = state / "logs" / "acmeali.log"
    for _ in range(4):
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as f:
            f.write("x" * 9990 + "\n")  # the next record does not fit: rotate
        r = run_acmeali("--config", str(conf), "--state-dir", str(state), "renew", "-q")
        assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in log.parent.iterdir())
    assert names == ["acmeali.log", "acmeali.log.1", "acmeali.log.2"]
    assert "exit 0" in log.read_text()

    conf.write_text("[logging]\nenabled = false\n")
    off = state_in_use(tmp_path / "off")
    assert run_acmeali("--config", str(conf), "--state-dir", str(off), "renew").returncode == 0
    assert not (off / "logs").exists()

    conf.write_text("[logging]\nrotate = 3\n")
    r = run_acmeali("--config", str(conf), "--state-dir", str(off), "renew")
    assert r.returncode == 2 and "logging.rotate: unknown key" in r.stderr


def test_key_material_is_redacted_before_long_output_is_capped() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from acmeali.logfile import loggable

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    body = pem.splitlines()[5]
    text = loggable("x" * 3900 + "\n" + pem)
    assert body not in text and "BEGIN PRIVATE KEY" not in text
