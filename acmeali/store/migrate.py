"""Copy everything one storage holds into another, without re-issuing anything.

``acmeali storage migrate --to postgresql`` (and back, ``--to files``) moves an existing
installation between backends: accounts with their keys, every lineage with every stored
version (numbers kept, so ``live/<name>/current`` means the same thing on both sides), the
pending key of an order in flight, and which version is current. It reads and writes only
through the seam, so any pair of backends works.

Repeatable: what the target already holds identically is left alone, so a copy cut short
(a lost connection, a Ctrl-C) is finished by running it again; what the target holds
*differently* is reported and never overwritten. Each lineage is copied under the source's
lineage lock (a ``renew`` working on it is not raced; the lineage is skipped and named),
and its record is written last, so the target never lists a lineage whose versions are
missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from acmeali.errors import LockHeld, StoreError
from acmeali.store.seam import BundleFiles, SharedStorage


@dataclass
class MigrationReport:
    accounts: int = 0
    lineages: int = 0
    versions: int = 0
    skipped: list[str] = field(default_factory=list)  # lineages locked by a running renew
    failed: list[str] = field(default_factory=list)  # one line each: what and why
    warnings: list[str] = field(default_factory=list)


def copy_storage(source: SharedStorage, target: SharedStorage) -> MigrationReport:
    report = MigrationReport()
    for server in source.account_servers():
        try:
            _copy_account(source, target, server)
            report.accounts += 1
        except StoreError as exc:
            report.failed.append(f"account for {server}: {exc.message}")
    for name in source.lineage_names():
        try:
            with source.lock(name):
                report.versions += _copy_lineage(source, target, name, report)
            report.lineages += 1
        except LockHeld as exc:
            report.skipped.append(f"{name}: {exc.message}")
        except StoreError as exc:
            report.failed.append(f"lineage {name}: {exc.message}")
    return report


def _copy_account(source: SharedStorage, target: SharedStorage, server: str) -> None:
    found = source.load_account(server)
    if found is None:
        return
    record, key = found
    existing = target.load_account(server)
    if existing is None:
        target.save_account(server, record, key)
    elif existing[1] != key or existing[0].get("url") != record.get("url"):
        raise StoreError(f"{target.describe()} holds another account for it "
                         f"({existing[0].get('url')}); left as it is")


def _copy_lineage(source: SharedStorage, target: SharedStorage, name: str,
                  report: MigrationReport) -> int:
    meta = source.load_meta(name)
    current = source.current_version(name)
    copied = 0
    for version in source.versions(name):
        try:
            bundle = source.read_version(name, version)
        except StoreError as exc:
            if version == current:
                raise
            report.warnings.append(f"lineage {name}: version {version} not copied "
                                   f"({exc.message})")
            continue
        target.write_version(name, BundleFiles.of(bundle), version=version)
        copied += 1
    pending = source.pending_key(name)
    if pending is not None:
        target.put_pending_key(name, pending)
    if current is not None:
        target.activate(name, current)
    target.save_meta(meta)
    return copied
