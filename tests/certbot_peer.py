"""certbot as a test peer: installed from PyPI into bench/.peers (as `make bench` does).

The venv is kept between runs (bench/.peers is git-ignored), so only the first run on a
fresh clone pays for the install. A failed install is an error, never a skip.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

from bench.clients import CERTBOT, certbot_install
from tests.peers.pebble import Pebble

EMAIL = "certbot-user@example.test"


class Certbot:
    """One certbot configuration directory driven against a Pebble."""

    def __init__(self, pebble: Pebble, home: Path) -> None:
        self.pebble = pebble
        self.home = home
        self.config_dir = home / "letsencrypt"

    @staticmethod
    def install(log: Path) -> None:
        """Install once per machine; xdist workers (and `make bench`) wait on one lock."""
        lock = CERTBOT.parent.parent.parent / "certbot-install.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            error = certbot_install(log)
        if error:
            raise RuntimeError(error)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        argv = [str(CERTBOT), "--config-dir", str(self.config_dir),
                "--work-dir", str(self.home / "work"), "--logs-dir", str(self.home / "logs"),
                "--non-interactive", *args]
        env = {**os.environ, "REQUESTS_CA_BUNDLE": self.pebble.ca_bundle}
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"certbot {' '.join(args)} failed ({r.returncode}):\n"
                               f"{r.stdout}\n{r.stderr}")
        return r

    def certonly(self, *args: str) -> None:
        self.run("certonly", "--server", self.pebble.directory_url, "--agree-tos", "-m", EMAIL,
                 "--standalone", "--http-01-port", str(self.pebble.http_port),
                 "--http-01-address", "127.0.0.1", *args)
