"""Challenge solvers behind one small protocol (see ``base.py``), chosen by the settings.

Each solver module is imported only when chosen: ``http.server`` and the Alibaba SDK
behind ``alidns`` have no business being loaded for the other ways.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO, cast

from acmeali.config import CHALLENGES, DNS_PROVIDERS, AliyunSettings, CertSettings
from acmeali.errors import UsageError
from acmeali.solvers.base import ChallengeTask, HasReadyTimeout, Solver

if TYPE_CHECKING:
    from acmeali.ui import UI

__all__ = ["ChallengeTask", "HasReadyTimeout", "Solver", "check_supported", "make_solver"]


def check_supported(settings: CertSettings, domains: Iterable[str], *,
                    stdin: TextIO | None = None) -> None:
    """Refuse, before any order is made, what the chosen challenge cannot do.

    An order created and then abandoned still counts against the CA's rate limits, so
    everything knowable up front is checked here. ``stdin`` is for tests (default: ours).
    """
    from acmeali.names import is_ip

    if settings.challenge not in CHALLENGES:
        raise UsageError(f"unknown challenge {settings.challenge!r}; "
                         f"expected one of {', '.join(CHALLENGES)}")
    names = list(domains)
    if settings.challenge == "http-01":
        for name in names:
            if name.startswith("*."):
                raise UsageError(f"{name} needs dns-01; http-01 cannot validate wildcards",
                                 hint="use --challenge dns-01 with --dns hook, manual or alidns")
        if settings.webroot and not os.path.isdir(settings.webroot):
            raise UsageError(f"webroot {settings.webroot} is not a directory",
                             hint="give the directory your web server serves for these names")
        return
    for name in names:
        if is_ip(name):
            raise UsageError(f"{name}: an IP address can only be validated with http-01 "
                             f"(RFC 8738), not dns-01", hint="use --challenge http-01")
    if settings.dns not in DNS_PROVIDERS:
        raise UsageError(f"unknown DNS provider {settings.dns!r}; "
                         f"expected one of {', '.join(DNS_PROVIDERS)}")
    if settings.dns == "hook" and not settings.dns_hook:
        raise UsageError("--dns hook needs --dns-hook CMD (or dns_hook in the config)",
                         hint="or choose --dns manual / --dns alidns")
    if settings.dns == "manual":
        from acmeali.solvers.manual import refuse_without_terminal

        refuse_without_terminal(stdin)


def make_solver(settings: CertSettings, ui: UI, aliyun: AliyunSettings | None = None) -> Solver:
    """The solver for ``settings.challenge`` (and ``settings.dns`` / ``settings.webroot``)."""
    if settings.challenge == "http-01":
        from acmeali.solvers.http01 import StandaloneSolver, WebrootSolver

        if settings.webroot:
            return WebrootSolver(settings, ui)
        return StandaloneSolver(settings, ui)
    if settings.challenge == "dns-01":
        if settings.dns == "hook":
            from acmeali.solvers.dns01 import HookDnsSolver

            return HookDnsSolver(settings, ui)
        if settings.dns == "manual":
            from acmeali.solvers.manual import ManualDnsSolver

            return ManualDnsSolver(settings, ui)
        if settings.dns == "alidns":
            # Written separately and pulling in the Alibaba SDK: loaded only when chosen.
            module = importlib.import_module("acmeali.solvers.alidns")
            return cast(Solver, module.AlidnsSolver(settings, ui, aliyun or AliyunSettings()))
        raise UsageError(f"unknown DNS provider {settings.dns!r}; "
                         f"expected one of {', '.join(DNS_PROVIDERS)}")
    raise UsageError(f"unknown challenge {settings.challenge!r}; "
                     f"expected one of {', '.join(CHALLENGES)}")
