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
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TextIO

from acmeali.errors import ChallengeError, UsageError
from acmeali.solvers.registry import OptionCheck, ProviderEnv, RecordData, TxtRecord

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


class Manual:
    """The ``manual`` DNS provider: every record shown at once, then one Enter for all."""

    name: ClassVar[str] = "manual"
    options: ClassVar[Mapping[str, OptionCheck]] = {}
    follows_cname: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any], env: ProviderEnv, *,
                 max_wait: float = MAX_WAIT) -> None:
        self.ui = env.ui
        self.stdin = env.stdin if env.stdin is not None else sys.stdin
        self.max_wait = max_wait

    def _say(self, text: str) -> None:
        # Straight to stderr even with -q: the user asked to be asked.
        self.ui.done_progress()
        print(text, file=self.ui.err, flush=True)

    def add_txt(self, record: TxtRecord) -> RecordData | None:
        return self.add_all([record])[0]

    def add_all(self, records: Sequence[TxtRecord]) -> list[RecordData | None]:
        refuse_without_terminal(self.stdin)
        if not records:
            return []
        lines = ["Create these DNS TXT records (TTL "
                 f"{records[0].ttl}s or less), then press Enter:"]
        for r in records:
            lines.append(f"  {r.fqdn}.  TXT  \"{r.value}\"   (for {r.identifier})")
        if len({r.fqdn for r in records}) < len(records):
            lines.append("  (a name listed twice needs both values, as two TXT records)")
        self._say("\n".join(lines))
        self._wait_for_enter()
        return [{} for _ in records]

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

    def remove_txt(self, record: TxtRecord, data: Mapping[str, str]) -> None:
        self._say(f"You can delete the TXT record now: {record.fqdn} \"{record.value}\"")
