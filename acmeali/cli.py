"""argparse front end: builds the parser, maps exceptions to exit codes, nothing else.

Each command group lives in ``acmeali/commands/<group>.py`` with a ``register`` function
that adds its sub-parsers and binds a ``run(ctx) -> int`` handler. Command modules import
their heavy dependencies inside the handlers, so ``acmeali --help`` and a ``renew`` with
nothing due stay cheap.

Global options are accepted before or after the sub-command: they are declared on the
top-level parser and again (with SUPPRESS defaults, so they never overwrite) on every leaf.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from acmeali import __version__
from acmeali.errors import AcmealiError

if TYPE_CHECKING:
    from acmeali.context import Context

# Every top-level command: (name, module that registers it, one-line help), in the order
# --help lists them. Only the module of the command being run is imported and its parser
# built; the others appear as one-line stubs. That keeps `acmeali --help` and cron runs
# from paying for forty sub-parsers and their imports.
COMMANDS = (
    ("issue", "acmeali.commands.issue", "get a certificate and store it as a lineage"),
    ("renew", "acmeali.commands.renew",
     "renew every lineage that is due (for cron / systemd timers)"),
    ("revoke", "acmeali.commands.revoke", "revoke a certificate (by lineage or file)"),
    ("delete", "acmeali.commands.delete", "delete a lineage (its files, renewal record and lock)"),
    ("certs", "acmeali.commands.certs", "list stored certificates or check their health"),
    ("deploy", "acmeali.commands.deploy", "deploy a stored certificate to Alibaba Cloud or a hook"),
    ("account", "acmeali.commands.account", "manage the ACME account of a server"),
    ("key", "acmeali.commands.keys", "generate, inspect and convert private keys"),
    ("csr", "acmeali.commands.keys", "write a certificate signing request for a key and names"),
    ("ca", "acmeali.commands.ca", "local CA for MQTT device authentication"),
    ("mqtt", "acmeali.commands.mqtt",
     "ApsaraMQ for MQTT: register CAs, manage CA/device certificates"),
    ("sync", "acmeali.commands.sync",
     "bring this host's live files to the shared storage's versions"),
    ("storage", "acmeali.commands.storage",
     "shared storage for fleets: init, status, migrate, rotate-key"),
    ("schedule", "acmeali.commands.schedule",
     "install or remove the renewal timer (systemd) or cron entry"),
    ("import", "acmeali.commands.importer", "take over certificates another ACME client issued"),
)
_VALUE_OPTIONS = ("--config", "--state-dir", "--server", "--ca-bundle", "--log-file")


def _add_globals(p: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Declare the global options; on leaves with SUPPRESS so they never overwrite."""
    g = p.add_argument_group("global options")
    none: object = argparse.SUPPRESS if suppress else None
    g.add_argument("--config", metavar="FILE", default=none, help="TOML configuration file")
    g.add_argument("--state-dir", metavar="DIR", default=none,
                   help="where accounts and certificates live")
    g.add_argument("--server", metavar="URL", default=none,
                   help="ACME directory URL, or letsencrypt / letsencrypt-staging")
    g.add_argument("--ca-bundle", metavar="FILE", default=none,
                   help="extra trust roots for the CA's TLS certificate (verification stays on)")
    g.add_argument("--log-file", metavar="FILE", default=none,
                   help="append this run's log here (default <state>/logs/acmeali.log)")
    g.add_argument("--staging", "--test-cert", action="store_true", dest="staging",
                   default=argparse.SUPPRESS if suppress else False,
                   help="certbot's spelling of --server letsencrypt-staging")
    g.add_argument("-n", "--non-interactive", action="store_true", dest="non_interactive",
                   default=argparse.SUPPRESS if suppress else False,
                   help="never ask: act as without a terminal (certbot's spelling)")
    g.add_argument("-v", "--verbose", action="count",
                   default=argparse.SUPPRESS if suppress else 0,
                   help="more detail; -vv for protocol debugging (secrets redacted)")
    g.add_argument("-q", "--quiet", action="store_true",
                   default=argparse.SUPPRESS if suppress else False,
                   help="only errors (and nothing at all when nothing happened)")


class CommandParsers:
    """What a command module gets to add its parsers: leaves get the global options."""

    def __init__(self, sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self._sub = sub

    def add(self, name: str, *, help: str, description: str | None = None,
            leaf: bool = True) -> argparse.ArgumentParser:
        p = self._sub.add_parser(name, help=help, description=description or help,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        if leaf:
            _add_globals(p, suppress=True)
        return p

    @staticmethod
    def group(parent: argparse.ArgumentParser, dest: str) -> CommandParsers:
        sub = parent.add_subparsers(dest=dest, metavar="COMMAND", required=True)
        return CommandParsers(sub)


def chosen_command(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (skipping global options and their values)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _VALUE_OPTIONS:
            skip = True
        elif arg == "--":
            return None
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the named command's sub-parsers are built in full."""
    parser = argparse.ArgumentParser(
        prog="acmeali",
        description="Get, renew and revoke ACME certificates and deploy them to Alibaba Cloud.",
        epilog="Exit codes: 0 success, 1 an operation failed, 2 bad usage or configuration.",
    )
    parser.add_argument("--version", action="version", version=f"acmeali {__version__}")
    _add_globals(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cp = CommandParsers(sub)
    wanted = chosen_command(argv) if argv is not None else None
    full = {m for n, m, _ in COMMANDS if argv is None or n == wanted}
    for module_name in dict.fromkeys(m for _, m, _ in COMMANDS if m in full):
        importlib.import_module(module_name).register(cp)
    for name, module_name, help_text in COMMANDS:
        if module_name not in full:
            sub.add_parser(name, help=help_text, add_help=False)
    # List commands in the table's order whatever order they were registered in.
    order = {name: i for i, (name, _, _) in enumerate(COMMANDS)}
    sub._choices_actions.sort(key=lambda a: order.get(a.dest, len(order)))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    from acmeali.context import Context
    from acmeali.logfile import start as start_log

    ctx = Context(args)
    run_log = start_log(ctx, argv)
    code = 1
    try:
        code = _run(ctx, args)
    except BrokenPipeError:
        # `acmeali certs list | head`: the reader left; no traceback, and no second
        # error when Python flushes stdout at exit.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 1
    finally:
        run_log.finish(code)
    return code


def _run(ctx: Context, args: argparse.Namespace) -> int:
    try:
        code: int = args.handler(ctx)
        return code
    except AcmealiError as exc:
        ctx.ui.error(exc.render())
        if ctx.verbose:
            import traceback

            traceback.print_exc(file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        ctx.ui.error("interrupted; nothing live was changed by the unfinished step")
        return 130
