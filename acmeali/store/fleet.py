"""``FleetStore``: a shared storage (PostgreSQL) as one host of a fleet uses it.

The shared storage holds accounts, records, versions and the lineage locks; this host's
``live/`` files follow it (``livefiles.LocalLiveFiles``, certbot's layout, one-rename
switch). Run-level locks (``renew-run``) stay on this host: three hosts run ``renew`` at
once, each skipping the lineages another one holds.

A session advisory lock is lost with its session, and its holder is not told (a database
restart, a failover). So before a renewed version is written or made current the lock is
checked on its own connection, and taken again on a new one if that session is gone; if
another host took it in between, or wrote a version meanwhile, this host writes nothing
and says so (the next run finishes the lineage).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from acmeali.errors import StoreError
from acmeali.lineage import LineageMeta
from acmeali.store.base import LiveBundle, LivePaths
from acmeali.store.host import HOST_LOCKS, HostStore, remove_lineage_files
from acmeali.store.livefiles import FollowReport, LocalLiveFiles, follow
from acmeali.store.seam import BundleFiles, Listed, SharedStorage


class FleetStore:
    """``HostStore`` over a ``SharedStorage`` plus this host's live files."""

    shared = True

    def __init__(self, storage: SharedStorage, state_dir: Path | str) -> None:
        self.storage = storage
        self.live = LocalLiveFiles(state_dir)
        self.root = self.live.root
        self._mu = threading.Lock()
        self._seen: dict[str, int | None] = {}  # lineage -> newest version when locked
        self._written: dict[tuple[str, int], LiveBundle] = {}

    def describe(self) -> str:
        return self.storage.describe()

    def safe_name(self, name: str) -> str:
        return self.live.files.safe_name(name)

    def atomic_write(self, path: Path, data: bytes, *, mode: int = 0o644) -> None:
        self.live.files.atomic_write(path, data, mode=mode)

    def close(self) -> None:
        self.storage.close()

    # ------------------------------------------------------------------ locks
    @contextlib.contextmanager
    def lock(self, name: str, *, wait: float | None = 0.0) -> Iterator[None]:
        if name in HOST_LOCKS:
            with self.live.files.lock(name, wait=wait):
                yield
            return
        with self.storage.lock(name, wait=wait):
            newest = self._newest(name)
            with self._mu:
                self._seen[name] = newest
            try:
                yield
            finally:
                with self._mu:
                    self._seen.pop(name, None)

    def join_run(self, kind: str) -> contextlib.AbstractContextManager[str]:
        return self.storage.join_run(kind)

    def _newest(self, name: str) -> int | None:
        versions = self.storage.versions(name)
        return max(versions) if versions else None

    def _check_lock(self, name: str) -> None:
        """StoreError unless this host still holds ``name``'s lock and nothing changed."""
        with self._mu:
            if name not in self._seen:
                return  # not taken through this store (a command working unlocked)
            seen = self._seen[name]
        reassert = getattr(self.storage, "reassert_lock", None)
        if reassert is None:
            return  # a backend whose locks cannot be lost behind the holder's back
        if not reassert(name):
            raise StoreError(f"lineage {name!r}: lost its lock on {self.describe()} (the "
                             "database restarted?) and another session holds it now; "
                             "nothing was written", hint="run again: the next run "
                             "finishes this lineage")
        if self._newest(name) != seen:
            raise StoreError(f"lineage {name!r}: another host wrote a version while this "
                             "one had lost its lock (the database restarted?); nothing was "
                             "written", hint="run again to check it")

    # ------------------------------------------------------------------ data
    def load_account(self, server: str) -> tuple[dict[str, Any], bytes] | None:
        return self.storage.load_account(server)

    def save_account(self, server: str, record: dict[str, Any], key_pem: bytes | None) -> None:
        self.storage.save_account(server, record, key_pem)

    def lineage_names(self) -> list[str]:
        return self.storage.lineage_names()

    def load_meta(self, name: str) -> LineageMeta:
        return self.storage.load_meta(name)

    def lineage_records(self) -> dict[str, Listed]:
        return self.storage.lineage_records()  # the storage's current version is "live"

    def save_meta(self, meta: LineageMeta) -> None:
        # Under a lost lock the record may be another host's newer one: never overwrite it.
        self._check_lock(meta.name)
        self.storage.save_meta(meta)

    def versions(self, name: str) -> list[int]:
        return self.storage.versions(name)

    def write_version(self, name: str, *, privkey_pem: bytes | None, cert_pem: bytes,
                      chain_pem: bytes, fullchain_pem: bytes) -> int:
        self._check_lock(name)
        files = BundleFiles(privkey=privkey_pem or b"", cert=cert_pem, chain=chain_pem,
                            fullchain=fullchain_pem)
        version = self.storage.write_version(name, files)
        with self._mu:
            self._written[(name, version)] = files.at(version)
            if name in self._seen:
                self._seen[name] = version  # ours: the check before activating expects it
        return version

    def activate(self, name: str, version: int) -> None:
        self._check_lock(name)
        self.storage.activate(name, version)
        with self._mu:
            bundle = self._written.pop((name, version), None)
        if bundle is None:
            bundle = self.storage.read_version(name, version)
        self.live.sync(name, bundle)

    def live_paths(self, name: str) -> LivePaths:
        return self.live.paths(name)

    def live_version(self, name: str) -> int | None:
        return self.storage.current_version(name)

    def check_live_files(self, name: str) -> None:
        self.live.files.check_live_files(name)

    def read_live(self, name: str) -> LiveBundle:
        return self.storage.read_current(name)

    def prune(self, name: str, keep: int) -> None:
        self.storage.prune(name, keep)
        self.live.files.prune(name, keep)

    def put_pending_key(self, name: str, key_pem: bytes) -> None:
        self.storage.put_pending_key(name, key_pem)

    def pending_key(self, name: str) -> bytes | None:
        return self.storage.pending_key(name)

    def drop_pending_key(self, name: str) -> None:
        self.storage.drop_pending_key(name)

    def forget_lineage(self, name: str) -> None:
        if not self.storage.versions(name):
            self.storage.delete_lineage(name)
            safe = self.live.files.safe_name(name)
            remove_lineage_files(self.root, safe, name, record=False, keep_files=False)

    def drop_lock_file(self, name: str) -> None:
        pass  # advisory locks leave nothing behind

    def delete_lineage(self, name: str, *, keep_files: bool = False) -> None:
        """The shared record and versions (every host), then this host's files."""
        self.storage.delete_lineage(name)
        remove_lineage_files(self.root, self.live.files.safe_name(name), name, record=False,
                             keep_files=keep_files)

    def follow(self) -> FollowReport:
        return follow(self.storage, self.live)


def _conforms(store: FleetStore) -> HostStore:
    return store  # never called: mypy checks here that FleetStore implements HostStore
