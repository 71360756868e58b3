"""`acmeali certs` (being built)."""

from __future__ import annotations

from acmeali.cli import CommandParsers
from acmeali.context import Context
from acmeali.errors import AcmealiError


def register(cp: CommandParsers) -> None:
    p = cp.add("certs", help="(certs: being built)")
    p.set_defaults(handler=run)


def run(ctx: Context) -> int:
    raise AcmealiError("'certs' is not built yet")
