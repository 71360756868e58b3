"""Challenge solvers behind one small protocol (see ``base.py``), chosen by the settings.

http-01 has two solvers (standalone, webroot); dns-01 has one, ``dns01.Dns01Solver``,
driving whichever DNS provider ``registry.PROVIDERS`` names. Each module is imported only
when chosen: ``http.server``, dnspython and the Alibaba SDK have no business being loaded
for the other ways. This package's ``__init__`` stays import-light: ``config`` reads the
provider table from ``registry`` at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

from acmeali.errors import UsageError
from acmeali.solvers.base import ChallengeTask, HasReadyTimeout, Solver

if TYPE_CHECKING:
    from acmeali.config import AliyunSettings, CertSettings
    from acmeali.solvers.ledger import RecordLedger
    from acmeali.ui import UI

__all__ = ["ChallengeTask", "HasReadyTimeout", "Solver", "check_supported", "make_solver"]


def check_supported(settings: CertSettings, domains: Iterable[str], *,
                    stdin: TextIO | None = None) -> None:
    """Refuse, before any order is made, what the chosen challenge cannot do.

    An order created and then abandoned still counts against the CA's rate limits, so
    everything knowable up front is checked here. ``stdin`` is for tests (default: ours).
    """
    from acmeali.config import CHALLENGES
    from acmeali.names import is_ip
    from acmeali.solvers import registry

    if settings.challenge not in CHALLENGES:
        raise UsageError(f"unknown challenge {settings.challenge!r}; "
                         f"expected one of {', '.join(CHALLENGES)}")
    names = list(domains)
    if settings.challenge == "http-01":
        for name in names:
            if name.startswith("*."):
                raise UsageError(f"{name} needs dns-01; http-01 cannot validate wildcards",
                                 hint="use --challenge dns-01 with --dns "
                                      + ", ".join(registry.PROVIDERS))
        if settings.webroot and not os.path.isdir(settings.webroot):
            raise UsageError(f"webroot {settings.webroot} is not a directory",
                             hint="give the directory your web server serves for these names")
        return
    for name in names:
        if is_ip(name):
            raise UsageError(f"{name}: an IP address can only be validated with http-01 "
                             f"(RFC 8738), not dns-01", hint="use --challenge http-01")
    if settings.dns not in registry.PROVIDERS:
        raise UsageError(f"unknown DNS provider {settings.dns!r}; "
                         f"expected one of {', '.join(registry.PROVIDERS)}")
    try:
        registry.check_complete(settings.dns, registry.provider_options(settings.dns, settings))
    except registry.OptionError as exc:
        raise UsageError(exc.message, hint=f"set it in [dns.{settings.dns}] of the config "
                                           f"file, or choose another --dns") from None
    # Built once now (no network): a provider that cannot start (a TSIG secret missing or
    # not base64) must say so before an order exists.
    from acmeali.solvers.dns01 import build_provider
    from acmeali.ui import UI

    build_provider(settings.dns, registry.ProviderEnv(settings=settings, ui=UI(), stdin=stdin))
    if settings.dns == "manual":
        from acmeali.solvers.manual import refuse_without_terminal

        refuse_without_terminal(stdin)


def make_solver(settings: CertSettings, ui: UI, aliyun: AliyunSettings | None = None, *,
                ledger: RecordLedger | None = None, stdin: TextIO | None = None) -> Solver:
    """The solver for ``settings.challenge`` (and ``settings.dns`` / ``settings.webroot``).

    ``ledger``: where dns-01 keeps the records it published, so that the next run removes
    them when this one is killed (None: not persisted).
    """
    from acmeali.config import CHALLENGES

    if settings.challenge == "http-01":
        from acmeali.solvers.http01 import StandaloneSolver, WebrootSolver

        if settings.webroot:
            return WebrootSolver(settings, ui)
        return StandaloneSolver(settings, ui)
    if settings.challenge == "dns-01":
        from acmeali.solvers.dns01 import Dns01Solver, build_provider
        from acmeali.solvers.registry import ProviderEnv

        provider = build_provider(settings.dns, ProviderEnv(settings=settings, ui=ui,
                                                            aliyun=aliyun, stdin=stdin))
        return Dns01Solver(provider, settings, ui, ledger=ledger)
    raise UsageError(f"unknown challenge {settings.challenge!r}; "
                     f"expected one of {', '.join(CHALLENGES)}")
