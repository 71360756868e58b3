"""Run user commands (DNS hooks, pre/post/deploy/failure hooks) safely.

The command string is the user's own, from the config file or the command line, and runs
under ``/bin/sh -c`` exactly as they wrote it, so pipes and ``&&`` work as they expect.
Values that acmeali supplies (domains, TXT values, paths) travel *only* in environment
variables: a domain name or a path is never formatted into the command, so nothing a CA or
a config value contains can turn into shell syntax (DESIGN.md, security rules).

Every hook has a time limit. A hook that overruns is killed together with everything it
started (it runs in its own session/process group), because a forgotten ``sleep`` in a
cron job must not hold the renewal lock forever. Running hooks are also registered, so
that the run's watchdog (``acmeali/watchdog.py``), which ends the process with
``os._exit``, first kills their process groups: otherwise they would run on, orphaned,
holding port 80 or whatever else they hold, after acmeali is gone.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from acmeali.errors import AcmealiError

if TYPE_CHECKING:
    from acmeali.store.base import LivePaths
    from acmeali.ui import UI

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 300.0
"""Seconds a hook may run when the caller gives no limit of its own."""

# acmeali's own secrets, which reach it through its environment: the EAB HMAC key, a TSIG
# secret, a storage key, and Alibaba Cloud credentials (AccessKey pair, STS token, OIDC /
# credentials files). A hook is the user's command, but these were handed to acmeali, not
# to every script it starts (DESIGN.md, security rules). docs/renewal.md lists them.
SECRET_ENV = frozenset({
    "ACMEALI_EAB_HMAC_KEY", "ACMEALI_TSIG_SECRET", "ACMEALI_TSIG_KEY", "ACMEALI_STORAGE_KEY",
    "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN", "ALICLOUD_ACCESS_KEY", "ALICLOUD_SECRET_KEY",
    "ALICLOUD_ACCESS_KEY_ID", "ALICLOUD_ACCESS_KEY_SECRET", "ALICLOUD_SECURITY_TOKEN",
    "PGPASSWORD",  # libpq's password of the [storage] database
})
_SECRET_WORDS = ("SECRET", "HMAC", "TOKEN", "PASSWORD", "PASSPHRASE", "CREDENTIAL", "PRIVATE",
                 "_KEY")
_CLOUD_PREFIXES = ("ALIBABA_CLOUD_", "ALICLOUD_")


def is_secret_env(name: str) -> bool:
    """Whether the inherited variable ``name`` is withheld from hooks: the names above,
    and any ``ACMEALI_*``, ``ALIBABA_CLOUD_*`` or ``ALICLOUD_*`` variable whose name says
    it holds a secret (``SECRET``, ``HMAC``, ``TOKEN``, ``PASSWORD``, ``PASSPHRASE``,
    ``CREDENTIAL``, ``PRIVATE``, ``_KEY``), so a later one is covered without a list edit."""
    upper = name.upper()
    if upper in SECRET_ENV:
        return True
    if upper.startswith(("ACMEALI_", *_CLOUD_PREFIXES)):
        return any(word in upper for word in _SECRET_WORDS)
    return False


def hook_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """What a hook sees: our environment minus acmeali's secrets, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not is_secret_env(k)}
    env.update(extra)
    return env


def deploy_env(name: str, domains: Sequence[str], paths: LivePaths) -> dict[str, str]:
    """What a deploy hook (``deploy_hook`` or a ``hook:`` target) is told about a lineage:
    ours, and certbot's names so that existing certbot deploy hooks work unchanged."""
    return {
        "ACMEALI_LINEAGE": name,
        "ACMEALI_DOMAINS": " ".join(domains),
        "ACMEALI_CERT_PATH": str(paths.cert),
        "ACMEALI_KEY_PATH": str(paths.privkey),
        "ACMEALI_FULLCHAIN_PATH": str(paths.fullchain),
        "ACMEALI_CHAIN_PATH": str(paths.chain),
        "RENEWED_LINEAGE": str(paths.cert.parent),
        "RENEWED_DOMAINS": " ".join(domains),
    }


def show_output(ui: UI, label: str, result: HookResult) -> None:
    """Show what a deploy hook printed at normal verbosity, as certbot does."""
    output = "\n".join(t for t in (result.stdout.rstrip(), result.stderr.rstrip()) if t)
    if output:
        ui.info(f"{label} ran with output:\n"
                + "\n".join("  " + line for line in output.splitlines()))


_TAIL_CHARS = 2000
_TAIL_LINES = 15
_KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL, and for reaping afterwards


class HookError(AcmealiError):
    """A hook command failed: non-zero exit, killed by a signal, timed out, or not startable.

    Carries the exit code (``None`` when it never exited on its own) and the tail of its
    stderr, so callers can put the command's own words in front of the user.
    """

    def __init__(self, message: str, *, what: str, command: str, returncode: int | None,
                 stderr_tail: str, timed_out: bool = False, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.what = what
        self.command = command
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.timed_out = timed_out


@dataclass(frozen=True)
class HookResult:
    """What a successful hook run produced (output decoded leniently: it is only shown)."""

    command: str
    returncode: int
    stdout: str
    stderr: str
    duration: float


def tail(text: str, *, lines: int = _TAIL_LINES, chars: int = _TAIL_CHARS) -> str:
    """The last few lines of a command's output: the error is almost always at the end."""
    text = text.rstrip()
    kept = "\n".join(text.splitlines()[-lines:])
    if len(kept) > chars:
        kept = "…" + kept[-chars:]
    return kept


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the hook and its children: TERM first, KILL if it ignores that."""
    for sig, wait in ((signal.SIGTERM, _KILL_GRACE), (signal.SIGKILL, _KILL_GRACE)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# Hooks running now (process group id -> ``what``), for kill_running_hooks. The group id
# is the shell's PID: Linux does not reuse it while any process of the group is alive.
_running: dict[int, str] = {}
_running_lock = threading.Lock()
_closed = False  # set by kill_running_hooks: the process is ending, start no more hooks
_PARK = 30.0  # how long a killed hook's thread waits for the process to end (see run_hook)


def kill_running_hooks(grace: float = 2.0) -> list[str]:
    """Kill every running hook with all it started (SIGTERM, then SIGKILL to whatever is
    left after ``grace`` seconds) and refuse to start new ones; return their ``what``.

    Only for the run watchdog, just before it ends the process: it is bounded (``grace``
    plus a moment), reaps nothing (the hooks' own threads, or PID 1 after our exit, do)
    and never raises. The threads whose hook it killed do not go on with the run (a
    "hook failed" report, the next hook) but wait for the process to end.
    """
    global _closed
    with _running_lock:
        _closed = True
        groups = dict(_running)
    for pgid in groups:
        _signal_group(pgid, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end and any(_group_exists(g) for g in groups):
        time.sleep(0.05)
    for pgid in groups:
        _signal_group(pgid, signal.SIGKILL)
    return list(groups.values())


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError:  # gone already (ESRCH), or nothing we may signal any more
        pass


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    return True


def run_hook(command: str, env: Mapping[str, str], *, timeout: float | None = DEFAULT_TIMEOUT,
             what: str) -> HookResult:
    """Run ``/bin/sh -c command`` with ``env`` added to our environment (minus acmeali's
    own secrets, see :func:`is_secret_env`); raise on failure.

    ``what`` names the hook in messages ("DNS hook (present _acme-challenge.example.com)").
    ``timeout=None`` means the default limit, never "wait forever": every wait is bounded.
    Output is captured (a hook chattering on our stderr would break ``-q``) and logged at
    debug level; on failure the stderr tail goes into the raised :class:`HookError`.
    """
    limit = DEFAULT_TIMEOUT if timeout is None else timeout
    full_env = hook_environment(env)
    # Only the names are logged: values may be long, and a hook's env is the user's to see.
    log.debug("%s: running %r with %s", what, command, ", ".join(sorted(env)) or "no extra env")
    start = time.monotonic()
    # Started and registered under the lock, so kill_running_hooks never misses one.
    with _running_lock:
        stopping = _closed
        if not stopping:
            try:
                proc = subprocess.Popen(["/bin/sh", "-c", command], env=full_env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True)
            except OSError as exc:
                raise HookError(f"{what}: cannot start /bin/sh: {exc.strerror or exc}",
                                what=what, command=command, returncode=None,
                                stderr_tail="") from None
            _running[proc.pid] = what
    if stopping:  # the watchdog is ending the process: no new hook, no going on either
        threading.Event().wait(_PARK)
        raise HookError(f"{what}: not started: the run is being stopped (time limit)",
                        what=what, command=command, returncode=None, stderr_tail="")
    timed_out = False
    try:
        out_b, err_b = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        try:
            # Grandchildren that escaped the group could hold the pipes open: bounded too.
            out_b, err_b = proc.communicate(timeout=_KILL_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            out_b, err_b = b"", b""
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        with _running_lock:
            _running.pop(proc.pid, None)
            stopping = _closed
        if stopping:  # killed by the watchdog, which ends the process in a moment
            threading.Event().wait(_PARK)
    duration = time.monotonic() - start
    out = out_b.decode("utf-8", "replace")
    err = err_b.decode("utf-8", "replace")
    rc = proc.returncode
    log.debug("%s: exit %s after %.2fs", what, rc, duration)
    if out.strip():
        log.debug("%s stdout:\n%s", what, tail(out))
    if err.strip():
        log.debug("%s stderr:\n%s", what, tail(err))

    err_tail = tail(err) or tail(out)
    if timed_out:
        raise HookError(f"{what}: {command!r} did not finish within {limit:g}s and was killed"
                        + (f":\n{_indent(err_tail)}" if err_tail else ""),
                        what=what, command=command, returncode=None, stderr_tail=err_tail,
                        timed_out=True)
    if rc != 0:
        how = f"was killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
        hint = None
        if rc == 127:
            hint = "the shell could not find the command; use an absolute path"
        elif rc == 126:
            hint = "the command is not executable; check its permissions"
        raise HookError(f"{what}: {command!r} {how}"
                        + (f":\n{_indent(err_tail)}" if err_tail else " (no output)"),
                        what=what, command=command, returncode=rc, stderr_tail=err_tail,
                        hint=hint)
    return HookResult(command=command, returncode=rc, stdout=out, stderr=err, duration=duration)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
