"""Checks of everything that can fail locally, run before the CA is asked for an order.

An order created and then abandoned counts against the CA's rate limits, and a failure
found only after issuance (a deploy target without credentials) leaves a certificate
nobody can use. So before ``newOrder`` (and before an account is registered) we check:
the hooks can be started, the standalone port can be bound, the webroot is writable,
Alibaba Cloud credentials resolve for ``--dns alidns`` and every Alibaba deploy target
(resolved through the credentials chain, no API is called), and a ``--dns manual``
lineage has a person at a terminal. Each failure is one UsageError naming the fix.

Stdlib only at module level; the Alibaba credentials SDK is imported only when a lineage
uses Alibaba Cloud.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from acmeali.errors import AcmealiError, UsageError

if TYPE_CHECKING:
    from acmeali.config import AliyunSettings, CertSettings
    from acmeali.ui import UI

# Shell words that are no file: a hook starting with one of these cannot be checked.
_SHELL_WORDS = frozenset({
    ":", ".", "[", "[[", "!", "{", "(", "alias", "break", "case", "cd", "command",
    "continue", "eval", "exec", "exit", "export", "false", "for", "if", "local", "read",
    "return", "set", "shift", "source", "test", "trap", "true", "type", "ulimit", "umask",
    "unset", "wait", "while", "until", "echo", "printf", "kill", "pwd", "sleep"})


def hook_program_problem(command: str) -> str | None:
    """Why the first program of ``command`` cannot run, or None (also when unsure).

    Only the first word is checked: the rest is the user's shell, which we leave alone.
    A word that is an assignment, a shell keyword or builtin, or an expansion is not
    checked; a false alarm here would refuse a working set-up.
    """
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return None
    while words and "=" in words[0] and not words[0].startswith("="):
        words = words[1:]  # FOO=bar cmd: the command is the next word
    if not words:
        return None
    prog = words[0]
    if prog in _SHELL_WORDS or any(c in prog for c in "$`*?()<>|;&~"):
        return None
    if "/" in prog:
        if not os.path.exists(prog):
            return f"{prog} does not exist"
        if os.path.isdir(prog) or not os.access(prog, os.X_OK):
            return f"{prog} is not executable"
        return None
    if shutil.which(prog) is None:
        return f"{prog!r} is not found on PATH"
    return None


def hooks_of(settings: CertSettings, targets: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(what, command) of every hook a lineage runs, deploy ``hook:`` targets included."""
    hooks = [("--pre-hook", settings.pre_hook), ("--post-hook", settings.post_hook),
             ("--deploy-hook", settings.deploy_hook)]
    if settings.challenge == "dns-01" and settings.dns == "hook":
        from acmeali.solvers.registry import provider_options

        hooks.append(("--dns-hook", provider_options("hook", settings).get("command")))
    for t in targets:
        if t.startswith("hook:"):
            hooks.append((f"deploy target {t!r}", t[len("hook:"):]))
    return [(what, cmd) for what, cmd in hooks if cmd]


def check_hooks(hooks: Sequence[tuple[str, str | None]]) -> None:
    """UsageError for the first hook whose program is missing or not executable."""
    for what, command in hooks:
        if not command:
            continue
        problem = hook_program_problem(command)
        if problem:
            raise UsageError(f"{what} {command!r}: {problem}",
                             hint="fix the command (an absolute path is safest under cron); "
                                  "nothing was requested from the CA")


def alibaba_targets(targets: Iterable[str]) -> list[str]:
    """The targets that call Alibaba Cloud: their class names services (deployers/registry.py)."""
    from acmeali.deployers.registry import TARGETS, target_class

    return [t for t in targets
            if (kind := t.partition(":")[0]) in TARGETS and target_class(kind).services]


def check_alibaba_credentials(settings: AliyunSettings, why: str) -> None:
    """Resolve credentials through the same chain the API clients use; call no API."""
    from acmeali.aliyun.clients import credentials_provider

    try:
        credentials_provider(settings.profile).get_credentials()
    except AcmealiError as exc:
        raise UsageError(f"{why} needs Alibaba Cloud credentials: {exc.message}",
                         hint=exc.hint) from None


def check_standalone_port(settings: CertSettings, ui: UI) -> None:
    """Bind the standalone http-01 port now (and let go), so a busy port stops us early.

    A listener this process already holds (``renew`` validating lineages in parallel) is
    shared, not bound twice. The port may be taken between this check and the
    validation; the check only has to catch the usual case: a web server on port 80.
    """
    from acmeali.solvers.http01 import check_can_listen

    check_can_listen(settings.http_address, settings.http_port, ui)


def check_webroot(webroot: str) -> None:
    """The webroot exists and we may create ``.well-known/acme-challenge`` files in it."""
    if not os.path.isdir(webroot):
        raise UsageError(f"webroot {webroot} is not a directory",
                         hint="give the directory your web server serves for these names")
    probe = webroot
    for part in (".well-known", "acme-challenge"):
        below = os.path.join(probe, part)
        if not os.path.lexists(below):
            break
        if not os.path.isdir(below):
            raise UsageError(f"webroot {webroot}: {below} exists and is not a directory",
                             hint="remove it, so challenge files can be written under it")
        probe = below
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"webroot {webroot}: cannot write in {probe}",
                         hint="run as a user that may write there, or give another --webroot")


def check_manual_terminal(name: str, settings: CertSettings) -> None:
    """A manual dns-01 lineage needs a person; say so before an order is made."""
    from acmeali.solvers.manual import is_terminal

    if not is_terminal():
        raise UsageError(f"{name}: --dns manual needs a terminal: it waits for you to create "
                         "the TXT records and press Enter, so it cannot renew unattended",
                         hint=f"renew it at a terminal (`acmeali renew --name {name}`), or "
                              "switch the lineage to --dns hook --dns-hook CMD or --dns alidns "
                              f"with `acmeali issue --name {name} --force --dns ...`")


def check_before_order(name: str, settings: CertSettings, aliyun: AliyunSettings,
                       targets: Sequence[str], ui: UI) -> None:
    """Everything above that applies to this lineage, cheapest first."""
    check_hooks(hooks_of(settings, targets))
    if settings.challenge == "dns-01" and settings.dns == "manual":
        check_manual_terminal(name, settings)
    if settings.challenge == "http-01":
        if settings.webroot:
            check_webroot(settings.webroot)
        else:
            check_standalone_port(settings, ui)
    if settings.challenge == "dns-01" and settings.dns == "alidns":
        check_alibaba_credentials(aliyun, "--dns alidns")
    if settings.challenge == "dns-01" and settings.dns not in ("manual", "hook"):
        # The provider starts now, offline: a missing option or TSIG secret is told here.
        from acmeali.solvers.dns01 import build_provider
        from acmeali.solvers.registry import ProviderEnv

        build_provider(settings.dns, ProviderEnv(settings=settings, ui=ui, aliyun=aliyun))
    cloud = alibaba_targets(targets)
    if cloud:
        check_alibaba_credentials(aliyun, "deploy target " + ", ".join(cloud))
