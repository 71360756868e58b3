"""What issuance, renewal and the commands hold: ``HostStore``, the storage as one host sees it.

Issuance, renewal, revoke, deploy, delete and ``certs`` are written against this protocol
only (ruff's TID251 keeps ``store.files.FileStore`` out of them): accounts, lineage records,
versions, the pending key of an order in flight, locks, and this host's ``live/`` paths.

Two implementations:

- ``LocalStore`` (``[storage] backend = "files"``, the default): the state directory as it
  always was. It *is* ``FileStore`` (a subclass adding the few operations issuance used to
  do with paths), so a ``renew`` with nothing due costs exactly what it did.
- ``FleetStore`` (``store/fleet.py``, any shared backend): the shared storage holds the
  truth, this host's ``live/`` files follow it (``store/livefiles.py``).

Stdlib only: this is on the start-up path of ``renew``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from acmeali.errors import StoreError
from acmeali.lineage import LineageMeta
from acmeali.store.base import LiveBundle, LivePaths
from acmeali.store.files import PRIVATE, FileStore
from acmeali.store.seam import Listed

if TYPE_CHECKING:
    from acmeali.config import StorageSettings
    from acmeali.store.livefiles import FollowReport

PENDING_KEY = "pending-privkey.pem"  # archive/<name>/pending-privkey.pem, as always
# Locks that are about this host, not about shared data: a `renew` on host A must not keep
# host B's `renew` from running (they share the lineages, each skipping what the other holds).
HOST_LOCKS = frozenset({"renew-run", "sync-run"})


class HostStore(Protocol):
    """The storage as issuance, renewal and the commands use it."""

    shared: bool  # True when other hosts share it (their live files follow it)
    # This host's state directory: live/ files, and host-local files such as the DNS
    # record ledger (records this host created), written with ``atomic_write``.
    root: Path

    def safe_name(self, name: str) -> str: ...

    def atomic_write(self, path: Path, data: bytes, *, mode: int = ...) -> None: ...

    def describe(self) -> str: ...

    def lock(self, name: str, *, wait: float | None = 0.0) -> AbstractContextManager[None]: ...

    def join_run(self, kind: str) -> AbstractContextManager[str]:
        """The run of ``kind`` every host sharing the storage is in (``SharedStorage``)."""
        ...

    def load_account(self, server: str) -> tuple[dict[str, Any], bytes] | None: ...

    def save_account(self, server: str, record: dict[str, Any],
                     key_pem: bytes | None) -> None: ...

    def lineage_names(self) -> list[str]: ...

    def load_meta(self, name: str) -> LineageMeta: ...

    def lineage_records(self) -> dict[str, Listed]:
        """Every lineage's record (or its StoreError) with its ``live_version``, read in one
        go where the storage can (``SharedStorage.lineage_records``)."""
        ...

    def save_meta(self, meta: LineageMeta) -> None: ...

    def versions(self, name: str) -> list[int]: ...

    def write_version(self, name: str, *, privkey_pem: bytes | None, cert_pem: bytes,
                      chain_pem: bytes, fullchain_pem: bytes) -> int:
        """Store a complete version (under the lineage lock, which must still be held)."""
        ...

    def activate(self, name: str, version: int) -> None:
        """Make ``version`` current, and live on this host."""
        ...

    def live_paths(self, name: str) -> LivePaths: ...

    def live_version(self, name: str) -> int | None:
        """The version that is current (files: ``live/<name>/current``; shared: the
        storage's), which ``reconcile`` compares with the record."""
        ...

    def check_live_files(self, name: str) -> None: ...

    def read_live(self, name: str) -> LiveBundle:
        """The current version's bytes (the storage's, whatever this host's files say)."""
        ...

    def prune(self, name: str, keep: int) -> None: ...

    def put_pending_key(self, name: str, key_pem: bytes) -> None: ...

    def pending_key(self, name: str) -> bytes | None: ...

    def drop_pending_key(self, name: str) -> None: ...

    def forget_lineage(self, name: str) -> None:
        """Remove what a failed first issuance stored (record, pending key, no versions)."""
        ...

    def drop_lock_file(self, name: str) -> None:
        """Tidy the lock of a name that is no lineage (file store only)."""
        ...

    def delete_lineage(self, name: str, *, keep_files: bool = False) -> None: ...

    def follow(self) -> FollowReport:
        """Bring this host's live files to the storage's current versions."""
        ...

    def close(self) -> None: ...


class LocalStore(FileStore):
    """``HostStore`` on a state directory: ``FileStore`` plus what issuance did by path."""

    shared = False

    def describe(self) -> str:
        return f"state directory {self.root}"

    def close(self) -> None:
        pass

    def _pending(self, name: str) -> Path:
        # Not created here: atomic_write makes archive/<name> (and archive/) 0700 when needed.
        return self.root / "archive" / self.safe_name(name) / PENDING_KEY

    def put_pending_key(self, name: str, key_pem: bytes) -> None:
        self.atomic_write(self._pending(name), key_pem, mode=PRIVATE)

    def pending_key(self, name: str) -> bytes | None:
        path = self._pending(name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"lineage {name!r}: cannot read {path}: {exc.strerror}") from None

    def drop_pending_key(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._pending(name).unlink()

    def forget_lineage(self, name: str) -> None:
        safe = self.safe_name(name)
        with contextlib.suppress(FileNotFoundError):
            (self.root / "renewal" / f"{safe}.json").unlink()
        if not self.versions(name):
            shutil.rmtree(self.root / "archive" / safe, ignore_errors=True)
            shutil.rmtree(self.root / "live" / safe, ignore_errors=True)

    def drop_lock_file(self, name: str) -> None:
        """Remove ``locks/<name>.lock`` of a name that is no lineage (after releasing it).

        Taken only when the lock is free right now, so a run that waits on it (or holds it)
        keeps its file; the worst case of the remaining race is one more lock file.
        """
        import fcntl

        path = self.root / "locks" / f"{self.safe_name(name)}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return
        try:
            with contextlib.suppress(OSError):
                path.unlink()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def delete_lineage(self, name: str, *, keep_files: bool = False) -> None:
        remove_lineage_files(self.root, self.safe_name(name), name, record=True,
                             keep_files=keep_files)

    def follow(self) -> FollowReport:
        from acmeali.store.livefiles import FollowReport

        return FollowReport()  # the state directory is the storage: nothing to follow


def remove_lineage_files(root: Path, safe: str, name: str, *, record: bool,
                         keep_files: bool) -> None:
    """Remove the renewal record, ``live/`` and ``archive/`` directories and lock file.

    The record goes first: once it is gone, `renew` and `certs` no longer see the
    lineage, so a crash half-way leaves at worst some PEM files nobody renews.
    """
    if record:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(root / "renewal" / f"{safe}.json")
    if not keep_files:
        for top in ("live", "archive"):
            path = root / top / safe
            if path.is_symlink() or path.is_file():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            elif path.exists():
                try:
                    shutil.rmtree(path)
                except OSError as exc:
                    raise StoreError(f"lineage {name!r}: cannot remove {path}: "
                                     f"{exc.strerror}") from None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(root / "locks" / f"{safe}.lock")


def open_host_store(settings: StorageSettings, state_dir: Path) -> HostStore:
    """The configured storage as this host uses it; a shared backend is imported only now."""
    if settings.backend == "files":
        return LocalStore(state_dir)
    from acmeali.store.fleet import FleetStore
    from acmeali.store.seam import open_storage

    return FleetStore(open_storage(settings, state_dir), state_dir)


def _conforms(store: LocalStore) -> HostStore:
    return store  # never called: mypy checks here that LocalStore implements HostStore
