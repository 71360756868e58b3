"""``acmeali schedule install|remove``: the renewal timer (or cron entry) for this install.

The job runs *this* installation's acmeali (``<sys.executable> -m acmeali``, with the
venv's interpreter, so a venv or pipx install needs no link in /usr/local/bin), reads
Alibaba Cloud credentials from ``/etc/acmeali/aliyun.env`` when that file exists, and
carries no sandboxing (``ProtectSystem=`` and friends) that would make ``/etc`` read-only
under the deploy hooks people write (``cat fullchain privkey > /etc/haproxy/...``).
Every file written carries a marker line; ``remove`` deletes only files with it.
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from acmeali import docs_url
from acmeali.cli import CommandParsers
from acmeali.context import Context
from acmeali.errors import AcmealiError, UsageError

MARKER = "# Written by `acmeali schedule install`; `acmeali schedule remove` deletes it."
ENV_FILE = "/etc/acmeali/aliyun.env"
UNIT = "acmeali-renew"
SYSTEMD_DIR = "etc/systemd/system"
CRON_FILE = "etc/cron.d/acmeali"


def register(cp: CommandParsers) -> None:
    p = cp.add("schedule", help="install or remove the renewal timer (systemd) or cron entry",
               leaf=False)
    sub = CommandParsers.group(p, "schedule_command")
    i = sub.add("install", help="run `acmeali renew` twice a day from a systemd timer or cron",
                description="Write a systemd service + timer (or an /etc/cron.d entry) that "
                            "runs this installation's acmeali twice a day, with Alibaba Cloud "
                            f"credentials from {ENV_FILE} when it exists, then enable it.")
    _common(i)
    i.add_argument("--dry-run", action="store_true", help="print what would be written; "
                                                          "change nothing")
    i.set_defaults(handler=run_install)
    r = sub.add("remove", help="disable and delete what `schedule install` wrote")
    _common(r)
    r.add_argument("--dry-run", action="store_true", help="print what would be removed")
    r.set_defaults(handler=run_remove)


def _common(p: object) -> None:
    import argparse

    assert isinstance(p, argparse.ArgumentParser)
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--systemd", dest="kind", action="store_const", const="systemd",
                      help="a systemd timer (default when systemd runs this host)")
    kind.add_argument("--cron", dest="kind", action="store_const", const="cron",
                      help="an /etc/cron.d entry")
    p.add_argument("--root", metavar="DIR",
                   help="write below DIR instead of / and run no systemctl (packaging, tests)")


@dataclass(frozen=True)
class Planned:
    path: Path
    content: str


def acmeali_command(ctx: Context) -> list[str]:
    """argv that runs this very installation, with the global options given to us."""
    argv = [str(Path(sys.executable).absolute()), "-m", "acmeali"]
    for flag, value in (("--config", ctx.arg("config")), ("--state-dir", ctx.arg("state_dir")),
                        ("--log-file", ctx.arg("log_file"))):
        if value:
            argv += [flag, str(Path(value).absolute())]
    return argv


def _kind(ctx: Context) -> str:
    kind: str | None = ctx.arg("kind")
    if kind:
        return kind
    return "systemd" if Path("/run/systemd/system").is_dir() else "cron"


def _root(ctx: Context) -> Path:
    return Path(ctx.arg("root") or "/")


def systemd_units(command: list[str]) -> list[Planned]:
    exec_start = " ".join(_systemd_quote(a) for a in [*command, "renew", "-q"])
    service = f"""{MARKER}
[Unit]
Description=Renew ACME certificates with acmeali
Documentation={docs_url("renewal.md")}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
# Alibaba Cloud credentials (ALIBABA_CLOUD_ACCESS_KEY_ID=... lines, mode 0600), if used.
EnvironmentFile=-{ENV_FILE}
ExecStart={exec_start}
# No ProtectSystem=/ReadOnlyPaths=: deploy hooks commonly write under /etc (haproxy,
# postfix) and reload services; sandboxing here would make them fail.
"""
    timer = f"""{MARKER}
[Unit]
Description=Run acmeali renew twice a day

[Timer]
OnCalendar=*-*-* 00,12:00:00
RandomizedDelaySec=1h
Persistent=true

[Install]
WantedBy=timers.target
"""
    return [Planned(Path(SYSTEMD_DIR) / f"{UNIT}.service", service),
            Planned(Path(SYSTEMD_DIR) / f"{UNIT}.timer", timer)]


def cron_entry(command: list[str], minute: int | None = None) -> list[Planned]:
    m = random.SystemRandom().randrange(60) if minute is None else minute
    run = " ".join(shlex.quote(a) for a in [*command, "renew", "-q", "--jitter", "1800"])
    # cron has no EnvironmentFile=: source the file (exporting what it sets) when present.
    body = (f"set -a; [ -r {ENV_FILE} ] && . {ENV_FILE}; set +a; exec {run}")
    text = f"""{MARKER}
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
{m} 0,12 * * * root {body.replace('%', chr(92) + '%')}
"""
    return [Planned(Path(CRON_FILE), text)]


def _systemd_quote(arg: str) -> str:
    """systemd's ExecStart= quoting: double quotes, backslash escapes, no shell."""
    if arg and all(c.isalnum() or c in "/._-=:+," for c in arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def planned(ctx: Context) -> tuple[str, list[Planned]]:
    kind = _kind(ctx)
    command = acmeali_command(ctx)
    return kind, systemd_units(command) if kind == "systemd" else cron_entry(command)


def run_install(ctx: Context) -> int:
    kind, files = planned(ctx)
    root = _root(ctx)
    if ctx.args.dry_run:
        for f in files:
            ctx.ui.result(f"# {root / f.path}\n{f.content}")
        return 0
    _need_root(ctx)
    for f in files:
        target = root / f.path
        if target.exists() and MARKER not in _read(target):
            raise UsageError(f"{target} exists and was not written by acmeali; left alone",
                             hint="move it away, or keep using it instead of this command")
    from acmeali.store.files import write_file_atomic

    for f in files:
        target = root / f.path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_file_atomic(target, f.content.encode(), mode=0o644)
        except OSError as exc:
            raise AcmealiError(f"cannot write {target}: {exc.strerror}") from None
        ctx.ui.result(f"wrote {target}")
    if kind == "systemd":
        if ctx.arg("root"):
            ctx.ui.info(f"enable it on the target system: systemctl daemon-reload && "
                        f"systemctl enable --now {UNIT}.timer")
        else:
            _systemctl("daemon-reload")
            _systemctl("enable", "--now", f"{UNIT}.timer")
            ctx.ui.result(f"enabled {UNIT}.timer; see `systemctl list-timers {UNIT}.timer`, "
                          f"logs with `journalctl -u {UNIT}`")
    ctx.ui.info(f"Alibaba Cloud credentials for the job, if needed: {ENV_FILE} (mode 0600), "
                "lines like ALIBABA_CLOUD_ACCESS_KEY_ID=...")
    return 0


def run_remove(ctx: Context) -> int:
    root = _root(ctx)
    kinds = [ctx.arg("kind")] if ctx.arg("kind") else ["systemd", "cron"]
    targets = []
    for kind in kinds:
        files = (systemd_units([]) if kind == "systemd" else cron_entry([], 0))
        targets += [(kind, root / f.path) for f in files]
    present = [(k, t) for k, t in targets if t.exists()]
    foreign = [t for _, t in present if MARKER not in _read(t)]
    if foreign:
        raise UsageError(f"{', '.join(map(str, foreign))} not written by acmeali; left alone")
    if not present:
        ctx.ui.result("nothing to remove: no acmeali timer or cron entry found under "
                      f"{root}")
        return 0
    if ctx.args.dry_run:
        for _, t in present:
            ctx.ui.result(f"would remove {t}")
        return 0
    _need_root(ctx)
    if any(k == "systemd" for k, _ in present) and not ctx.arg("root"):
        _systemctl("disable", "--now", f"{UNIT}.timer", check=False)
    for _, t in present:
        try:
            t.unlink()
        except OSError as exc:
            raise AcmealiError(f"cannot remove {t}: {exc.strerror}") from None
        ctx.ui.result(f"removed {t}")
    if any(k == "systemd" for k, _ in present) and not ctx.arg("root"):
        _systemctl("daemon-reload", check=False)
    return 0


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _need_root(ctx: Context) -> None:
    if ctx.arg("root") or not hasattr(os, "geteuid") or os.geteuid() == 0:
        return
    raise UsageError("writing system timers and cron entries needs root",
                     hint="run it with sudo, or see the files first with --dry-run")


def _systemctl(*args: str, check: bool = True) -> None:
    exe = shutil.which("systemctl")
    if exe is None:
        if check:
            raise UsageError("systemctl not found; this host does not run systemd",
                             hint="use --cron")
        return
    r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 and check:
        detail = (r.stderr or r.stdout).strip().splitlines()
        raise AcmealiError(f"systemctl {' '.join(args)} failed: "
                           f"{detail[-1] if detail else f'exit {r.returncode}'}")


def print_next_step(ctx: Context) -> None:
    """After a successful ``issue``: say how to keep it renewed, until a job exists."""
    if any(Path("/", p).exists() for p in (Path(SYSTEMD_DIR) / f"{UNIT}.timer", CRON_FILE)):
        return
    ctx.ui.info("Next: keep it renewed with `sudo acmeali schedule install` (a systemd timer, "
                f"or --cron); see {docs_url('renewal.md')}")
