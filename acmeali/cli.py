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

from acmeali import __version__
from acmeali.errors import AcmealiError

# (module, help) in the order --help lists them.
COMMAND_MODULES = (
    "acmeali.commands.keys",
    "acmeali.commands.account",
    "acmeali.commands.issue",
    "acmeali.commands.renew",
    "acmeali.commands.revoke",
    "acmeali.commands.certs",
    "acmeali.commands.deploy",
    "acmeali.commands.ca",
    "acmeali.commands.mqtt",
)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acmeali",
        description="Get, renew and revoke ACME certificates and deploy them to Alibaba Cloud.",
        epilog="Exit codes: 0 success, 1 an operation failed, 2 bad usage or configuration.",
    )
    parser.add_argument("--version", action="version", version=f"acmeali {__version__}")
    _add_globals(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cp = CommandParsers(sub)
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        module.register(cp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from acmeali.context import Context

    ctx = Context(args)
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
