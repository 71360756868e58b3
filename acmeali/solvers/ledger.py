"""The record ledger: which TXT records this lineage's run published, kept on disk.

Written *before* any record is added and again once they are, and emptied by cleanup.
A run killed while waiting for propagation (cron's timeout, the OOM killer, a reboot)
leaves its records in the zone; the next run of the lineage reads the ledger and removes
them first (issue 12 item 10). An entry whose add was never confirmed has no provider data:
the provider then removes by value, which is this order's digest and so ours alone.

File: ``<state>/archive/<lineage>/dns-records.json`` (0600), written atomically by the
store, beside the pending key; absent when nothing is outstanding.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acmeali.solvers.registry import TxtRecord

if TYPE_CHECKING:
    from acmeali.store.host import HostStore

log = logging.getLogger(__name__)

FILE_NAME = "dns-records.json"


@dataclass
class LedgerEntry:
    provider: str
    record: TxtRecord
    data: dict[str, str] | None = None  # None: the add was not confirmed (yet)

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "record": asdict(self.record), "data": self.data}

    @classmethod
    def from_json(cls, raw: Any) -> LedgerEntry:
        rec = raw["record"]
        record = TxtRecord(identifier=str(rec["identifier"]), name=str(rec["name"]),
                           fqdn=str(rec["fqdn"]), value=str(rec["value"]), ttl=int(rec["ttl"]))
        data = raw.get("data")
        return cls(provider=str(raw["provider"]), record=record,
                   data={str(k): str(v) for k, v in data.items()} if data is not None else None)


class RecordLedger:
    """One lineage's ledger file; callers hold the lineage lock."""

    def __init__(self, store: HostStore, lineage: str) -> None:
        self.store = store
        self.path: Path = store.root / "archive" / store.safe_name(lineage) / FILE_NAME

    def load(self) -> list[LedgerEntry]:
        try:
            raw = json.loads(self.path.read_text())
            return [LedgerEntry.from_json(e) for e in raw["records"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable DNS record ledger %s: %s", self.path, exc)
            return []

    def save(self, entries: list[LedgerEntry]) -> None:
        if not entries:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            return
        body = {"records": [e.to_json() for e in entries]}
        self.store.atomic_write(self.path, json.dumps(body, indent=1).encode(), mode=0o600)
