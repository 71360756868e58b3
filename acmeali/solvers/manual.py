"""dns-01 by hand: show the TXT records, wait for Enter, then check propagation as usual.

For a one-off certificate at a DNS provider without an API. It needs a person at a
terminal, so it refuses outright when stdin is not one (cron would otherwise hang until
the order expires). After Enter the normal propagation check still runs: people press
Enter as soon as they have clicked "save", long before the record is served.
"""

from __future__ import annotations

import select
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from acmeali.config import CertSettings
from acmeali.errors import ChallengeError, UsageError
from acmeali.solvers.base import ChallengeTask
from acmeali.solvers.dns01 import DnsSolver
from acmeali.ui import UI

MAX_WAIT = 3600.0
"""How long we wait for Enter: bounded, like every wait; an order's authorizations last longer."""


def is_terminal(stream: TextIO | None = None) -> bool:
    stream = stream if stream is not None else sys.stdin
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced stdin
        return False


def refuse_without_terminal(stream: TextIO | None = None) -> None:
    """Raise UsageError unless someone can answer at ``stream`` (default stdin)."""
    if not is_terminal(stream):
        raise UsageError("--dns manual needs a terminal: it waits for you to create the TXT "
                         "records and press Enter",
                         hint="for unattended runs use --dns hook --dns-hook CMD or --dns alidns")


class ManualDnsSolver(DnsSolver):
    """Prints every TXT record at once, then one Enter for all of them."""

    def __init__(self, settings: CertSettings, ui: UI, *, stdin: TextIO | None = None,
                 max_wait: float = MAX_WAIT) -> None:
        super().__init__(settings, ui)
        self.stdin = stdin if stdin is not None else sys.stdin
        self.max_wait = max_wait
        self._shown: list[ChallengeTask] = []

    def _say(self, text: str) -> None:
        # Straight to stderr even with -q: the user asked to be asked.
        self.ui.done_progress()
        print(text, file=self.ui.err, flush=True)

    def present(self, tasks: Sequence[ChallengeTask]) -> None:
        refuse_without_terminal(self.stdin)
        if not tasks:
            return
        lines = ["Create these DNS TXT records (TTL "
                 f"{self.settings.dns_ttl}s or less), then press Enter:"]
        for t in tasks:
            lines.append(f"  {t.txt_name}.  TXT  \"{t.txt_value}\"   (for {t.identifier})")
        if len({t.txt_name for t in tasks}) < len(tasks):
            lines.append("  (a name listed twice needs both values, as two TXT records)")
        self._say("\n".join(lines))
        self._shown.extend(tasks)
        self._wait_for_enter()

    def _wait_for_enter(self) -> None:
        end = time.monotonic() + self.max_wait
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise ChallengeError(f"dns-01 manual: no Enter within {self.max_wait:.0f}s; "
                                     f"giving up")
            ready, _, _ = select.select([self.stdin], [], [], min(left, 60.0))
            if ready:
                break
        if self.stdin.readline() == "":
            raise ChallengeError("dns-01 manual: stdin closed before Enter; giving up")

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        shown = [t for t in tasks if t in self._shown]
        if not shown:
            return
        self._shown = [t for t in self._shown if t not in shown]
        names = sorted({t.txt_name for t in shown})
        try:
            self._say("You can delete the TXT records now: " + ", ".join(names))
        except Exception:  # noqa: S110 - cleanup never raises
            pass
