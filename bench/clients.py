"""The three clients (and the bare-interpreter baseline), as commands the scenarios run.

Each client lives in its own directory under the run's work dir. ``prepare`` does the
untimed set-up (register the account, one warm-up issuance so first-run costs such as
byte-compiling are not billed to scenario 1); the other methods only build commands.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench import measure, synth

if TYPE_CHECKING:
    from tests.peers.pebble import Pebble

REPO = Path(__file__).resolve().parent.parent
HOOKS = REPO / "bench" / "hooks"
PEERS = REPO / "bench" / ".peers"
EMAIL = "bench@example.test"


@dataclass
class Cmd:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Bed:
    """What every client needs to know about the test bed."""

    pebble: Pebble
    work: Path
    ca: synth.LocalCA = field(default_factory=synth.LocalCA)

    @property
    def hook_env(self) -> dict[str, str]:
        return {"BENCH_CHALLTESTSRV": self.pebble.challtestsrv.mgmt_url}

    def run(self, cmd: Cmd, log: Path, timeout: float = 120.0) -> measure.Sample:
        return measure.run(cmd.argv, env=cmd.env, log=log, timeout=timeout)


class Client:
    name = "?"
    home: Path

    def missing(self) -> str | None:
        """Why this client cannot run here (None when it can)."""
        return None

    def version(self) -> str:
        return "?"

    def attach(self, bed: Bed) -> None:
        self.bed = bed
        self.home = bed.work / self.name
        self.home.mkdir(parents=True, exist_ok=True)
        self.log = self.home / "commands.log"

    def prepare(self) -> None: ...
    def issue_http(self, domain: str) -> Cmd: raise NotImplementedError
    def issue_dns(self, domain: str) -> Cmd: raise NotImplementedError
    def batch_prepare(self, domains: Sequence[str]) -> None: ...
    def batch(self, domains: Sequence[str]) -> list[Cmd]:
        return [self.issue_http(d) for d in domains]
    def batch_serving(self) -> contextlib.AbstractContextManager[None]:
        """Held around each timed batch run (acmeali's webroot mode serves files here)."""
        return contextlib.nullcontext()
    def idle_prepare(self, domains: Sequence[str]) -> None: ...
    def idle(self, domains: Sequence[str]) -> list[Cmd]: raise NotImplementedError
    def help(self) -> Cmd: raise NotImplementedError


# ----------------------------------------------------------------------------- acmeali
class Acmeali(Client):
    name = "acmeali"

    def __init__(self, batch_http: str = "standalone") -> None:
        self.batch_http = batch_http  # "standalone" | "webroot" (scenario 3)
        script = Path(sys.executable).parent / "acmeali"
        # The console script, as a user runs it; `python -m acmeali` when not installed.
        self.argv0 = [str(script)] if script.exists() else [sys.executable, "-m", "acmeali"]

    def version(self) -> str:
        try:
            from acmeali import __version__
            return str(__version__)
        except ImportError:
            return "?"

    def attach(self, bed: Bed) -> None:
        super().attach(bed)
        self.state = self.home / "state"
        self.batch_dir = self.home / "batch"
        self.idle_dir = self.home / "idle"

    def _base(self, state: Path) -> list[str]:
        p = self.bed.pebble
        return [*self.argv0, "--state-dir", str(state), "--server", p.directory_url,
                "--ca-bundle", p.ca_bundle]

    def prepare(self) -> None:
        self.bed.run(Cmd([*self._base(self.state), "account", "register", "--agree-tos",
                          "--email", EMAIL]), self.log)
        self.bed.run(self.issue_http(f"warmup.{self.name}.example.test"), self.log)

    def issue_http(self, domain: str) -> Cmd:
        return Cmd([*self._base(self.state), "issue", "-d", domain, "--http-port",
                    str(self.bed.pebble.http_port), "--http-address", "127.0.0.1",
                    "--agree-tos", "--email", EMAIL])

    def issue_dns(self, domain: str) -> Cmd:
        return Cmd([*self._base(self.state), "issue", "-d", domain, "--challenge", "dns-01",
                    "--dns", "hook", "--dns-hook", str(HOOKS / "dns_acmeali.sh"),
                    "--dns-resolver", self.bed.pebble.challtestsrv.dns_address,
                    "--agree-tos", "--email", EMAIL], dict(self.bed.hook_env))

    def _with_account(self, state: Path) -> None:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        synth.copy_accounts(self.state / "accounts", state / "accounts")

    def batch_prepare(self, domains: Sequence[str]) -> None:
        self._with_account(self.batch_dir)
        settings: dict[str, object] = {"challenge": "http-01",
                                       "http_port": self.bed.pebble.http_port,
                                       "http_address": "127.0.0.1"}
        if self.batch_http == "webroot":
            self.webroot = self.home / "webroot"
            self.webroot.mkdir(exist_ok=True)
            settings["webroot"] = str(self.webroot)
        synth.acmeali_lineages(self.bed.ca, self.batch_dir, list(domains),
                               self.bed.pebble.directory_url, settings)

    @contextlib.contextmanager
    def batch_serving(self) -> Iterator[None]:
        if self.batch_http != "webroot":
            yield
            return
        # The web server a webroot user already runs; not part of acmeali's measurement.
        with open(self.home / "webroot-server.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory",
                 str(self.webroot), str(self.bed.pebble.http_port)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_listening(self.bed.pebble.http_port, proc)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def batch(self, domains: Sequence[str]) -> list[Cmd]:
        return [Cmd([*self._base(self.batch_dir), "renew", "--force", "--concurrency", "8",
                     "-q"])]

    def idle_prepare(self, domains: Sequence[str]) -> None:
        self._with_account(self.idle_dir)
        synth.acmeali_lineages(self.bed.ca, self.idle_dir, list(domains),
                               self.bed.pebble.directory_url)

    def idle(self, domains: Sequence[str]) -> list[Cmd]:
        return [Cmd([*self._base(self.idle_dir), "renew", "-q"])]

    def help(self) -> Cmd:
        return Cmd([*self.argv0, "--help"])


# ----------------------------------------------------------------------------- certbot
CERTBOT = PEERS / "certbot-venv" / "bin" / "certbot"


class Certbot(Client):
    name = "certbot"

    def missing(self) -> str | None:
        return None if CERTBOT.exists() else f"{CERTBOT} not installed"

    def version(self) -> str:
        return _output([str(CERTBOT), "--version"]).replace("certbot", "").strip()

    def attach(self, bed: Bed) -> None:
        super().attach(bed)
        self.config = self.home / "config"
        self.idle_config = self.home / "idle-config"

    def _common(self, config: Path) -> list[str]:
        return [str(CERTBOT), "--config-dir", str(config), "--work-dir", str(self.home / "work"),
                "--logs-dir", str(self.home / "logs"), "--non-interactive"]

    def _env(self) -> dict[str, str]:
        return {"REQUESTS_CA_BUNDLE": self.bed.pebble.ca_bundle}

    def prepare(self) -> None:
        self.bed.run(Cmd([*self._common(self.config), "register", "--server",
                          self.bed.pebble.directory_url, "--agree-tos", "-m", EMAIL],
                         self._env()), self.log)
        self.bed.run(self.issue_http(f"warmup.{self.name}.example.test"), self.log)

    def _certonly(self) -> list[str]:
        return [*self._common(self.config), "certonly", "--server",
                self.bed.pebble.directory_url, "--agree-tos", "-m", EMAIL]

    def issue_http(self, domain: str) -> Cmd:
        return Cmd([*self._certonly(), "--standalone", "--http-01-port",
                    str(self.bed.pebble.http_port), "--http-01-address", "127.0.0.1",
                    "-d", domain], self._env())

    def issue_dns(self, domain: str) -> Cmd:
        hook = HOOKS / "dns_certbot.sh"
        return Cmd([*self._certonly(), "--manual", "--preferred-challenges", "dns",
                    "--manual-auth-hook", f"{hook} present",
                    "--manual-cleanup-hook", f"{hook} cleanup", "-d", domain],
                   {**self._env(), **self.bed.hook_env})

    def idle_prepare(self, domains: Sequence[str]) -> None:
        self.idle_config.mkdir(parents=True, exist_ok=True, mode=0o700)
        synth.copy_accounts(self.config / "accounts", self.idle_config / "accounts")
        regr = next((self.idle_config / "accounts").rglob("regr.json"))
        synth.certbot_lineages(self.bed.ca, self.idle_config, list(domains),
                               server=self.bed.pebble.directory_url, account=regr.parent.name,
                               http_port=self.bed.pebble.http_port)

    def idle(self, domains: Sequence[str]) -> list[Cmd]:
        return [Cmd([*self._common(self.idle_config), "renew"], self._env())]

    def help(self) -> Cmd:
        return Cmd([str(CERTBOT), "--help"])


# ----------------------------------------------------------------------------- lego
class Lego(Client):
    name = "lego"

    def missing(self) -> str | None:
        return None if shutil.which("lego") else "lego not installed (apt-get install lego)"

    def version(self) -> str:
        deb = _output(["dpkg-query", "-W", "-f", "${Version}", "lego"])
        return deb or _output(["lego", "--version"])

    def attach(self, bed: Bed) -> None:
        super().attach(bed)
        self.path = self.home / "lego"
        self.idle_path = self.home / "idle"

    def _base(self, path: Path) -> list[str]:
        return ["lego", "--server", self.bed.pebble.directory_url, "--accept-tos",
                "--email", EMAIL, "--path", str(path)]

    def _env(self) -> dict[str, str]:
        return {"LEGO_CA_CERTIFICATES": self.bed.pebble.ca_bundle}

    def prepare(self) -> None:
        # lego has no separate register command: its first run registers the account.
        self.bed.run(self.issue_http(f"warmup.{self.name}.example.test"), self.log)

    def issue_http(self, domain: str) -> Cmd:
        return Cmd([*self._base(self.path), "--http", "--http.port",
                    f"127.0.0.1:{self.bed.pebble.http_port}", "-d", domain, "run"], self._env())

    def issue_dns(self, domain: str) -> Cmd:
        # --dns.disable-cp: challtestsrv answers no SOA queries, so lego cannot find the
        # zone's authoritative servers; it checks the TXT on --dns.resolvers only.
        return Cmd([*self._base(self.path), "--dns", "exec", "--dns.disable-cp",
                    "--dns.resolvers", self.bed.pebble.challtestsrv.dns_address,
                    "-d", domain, "run"],
                   {**self._env(), **self.bed.hook_env,
                    "EXEC_PATH": str(HOOKS / "dns_lego.sh"), "EXEC_PROPAGATION_TIMEOUT": "60"})

    def idle_prepare(self, domains: Sequence[str]) -> None:
        self.idle_path.mkdir(parents=True, exist_ok=True, mode=0o700)
        synth.copy_accounts(self.path / "accounts", self.idle_path / "accounts")
        synth.lego_certificates(self.bed.ca, self.idle_path, list(domains))

    def idle(self, domains: Sequence[str]) -> list[Cmd]:
        # lego renews one certificate per invocation: a cron job loops over its domains.
        return [Cmd([*self._base(self.idle_path), "--http", "--http.port",
                     f"127.0.0.1:{self.bed.pebble.http_port}", "-d", d, "renew", "--days", "30"],
                    self._env()) for d in domains]

    def help(self) -> Cmd:
        return Cmd(["lego", "--help"])


class Python(Client):
    """The floor for scenario 5: the interpreter acmeali runs on, doing nothing."""

    name = "python -c pass"

    def version(self) -> str:
        return sys.version.split()[0]

    def help(self) -> Cmd:
        return Cmd([sys.executable, "-c", "pass"])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for port {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


def _output(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30,
                              check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


ALL = {"acmeali": Acmeali, "certbot": Certbot, "lego": Lego}


def certbot_install(log: Path) -> str | None:
    """Install certbot from PyPI into bench/.peers/certbot-venv when missing; error or None."""
    if CERTBOT.exists():
        return None
    venv = CERTBOT.parent.parent
    try:
        with open(log, "ab") as out:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, stdout=out,
                           stderr=subprocess.STDOUT, timeout=120)
            subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "certbot"],
                           check=True, stdout=out, stderr=subprocess.STDOUT, timeout=600,
                           env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not install certbot into {venv}: {exc} (see {log})"
    return None
