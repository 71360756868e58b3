"""Shared fixtures: real peers (Pebble, challtestsrv), an isolated environment, a CLI runner.

A missing peer is an error, never a skip: the suite must prove things against real peers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.pebble import Pebble, PebbleOptions

pytest_plugins = ["tests.emulator.fixtures", "tests.peers.pg_fixtures"]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch,
                  tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reads the developer's config, state or cloud credentials."""
    home = tmp_path_factory.mktemp("home")
    for var in list(os.environ):
        if var.startswith(("ACMEALI_", "ALIBABA_CLOUD_", "ALICLOUD_")):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    monkeypatch.setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """One Pebble for the session: no nonce rejection, no authz reuse, no VA sleeps."""
    with Pebble(tmp_path_factory.mktemp("pebble"), PebbleOptions()) as p:
        yield p


@pytest.fixture(scope="session")
def pebble_nonce_reject(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """Pebble rejecting most good nonces, so badNonce retry happens for real."""
    with Pebble(tmp_path_factory.mktemp("pebble-nonce"), PebbleOptions(nonce_reject=60)) as p:
        yield p


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    return d


def run_acmeali(*args: str, env: dict[str, str] | None = None, input: str | None = None,
                timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process, as cron or a user would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "acmeali", *args], capture_output=True,
                          text=True, env=full_env, input=input, timeout=timeout,
                          cwd=cwd or REPO)


@pytest.fixture
def cli() -> object:
    return run_acmeali
