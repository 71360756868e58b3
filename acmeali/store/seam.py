"""The path-free storage seam: ``SharedStorage``, a separate ``Locker`` and ``LiveFiles``.

certmagic's shape (``storage.go``): what is stored (accounts, lineage records, versions with
their key bytes, pending orders and keys) is one protocol with no file paths in it, so a
database shared by a fleet of hosts can hold it as well as a state directory can. Two
things stay apart from it:

- ``Locker``: a *try*-lock. A host never waits on a lineage another host is renewing; it
  gets ``LockHeld`` (naming the holder), skips the lineage and says so. After taking a lock
  the caller re-checks whether the work is still needed (another host may just have done
  it). Locks are released by the kernel (flock) or the database server (advisory lock of a
  dead session) when their holder dies, so there is no heartbeat and no stale lock.
- ``LiveFiles``: where nginx and hooks read on *this* host (certbot's ``live/`` layout),
  written from the bytes the storage holds with the file store's one-rename switch.

``STORAGE_BACKENDS`` maps the ``[storage] backend`` names to their modules, imported only
when chosen: nothing on the start-up path of ``renew`` imports psycopg. The older
``store.base.Storage`` (with paths) stays until issuance and renewal move onto this seam.

Stdlib only (plus ``lineage`` and ``store.base``).
"""

from __future__ import annotations

import importlib
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from acmeali.errors import StoreError
from acmeali.lineage import LineageMeta
from acmeali.store.base import LiveBundle, LivePaths

if TYPE_CHECKING:
    from acmeali.config import StorageSettings

# ``[storage] backend`` -> "module:factory"; the factory takes (settings, state_dir).
STORAGE_BACKENDS: dict[str, str] = {
    "files": "acmeali.store.filestorage:open_file_storage",
    "postgresql": "acmeali.store.postgres:open_postgres_storage",
}


@dataclass(frozen=True)
class BundleFiles:
    """The four PEM files of one version; ``privkey`` is empty for a CSR-issued lineage."""

    privkey: bytes
    cert: bytes
    chain: bytes
    fullchain: bytes

    def __repr__(self) -> str:  # never show key bytes
        return f"BundleFiles(cert={len(self.cert)} bytes, key={'yes' if self.privkey else 'no'})"

    @classmethod
    def of(cls, bundle: LiveBundle) -> BundleFiles:
        return cls(privkey=bundle.privkey, cert=bundle.cert, chain=bundle.chain,
                   fullchain=bundle.fullchain)

    def at(self, version: int) -> LiveBundle:
        return LiveBundle(privkey=self.privkey, cert=self.cert, chain=self.chain,
                          fullchain=self.fullchain, version=version)


class Listed(NamedTuple):
    """One lineage as a listing reads it: its record (or why it cannot be read) and its
    current version, read together so that `renew` over thousands of lineages costs one
    query on a database instead of two per lineage."""

    meta: LineageMeta | StoreError
    live: int | None


@runtime_checkable
class Locker(Protocol):
    def lock(self, name: str, *, wait: float | None = 0.0) -> AbstractContextManager[None]:
        """Hold lock ``name`` (``wait=0``: try once). Raises LockHeld naming the holder.

        Released if the holder dies: flock by the kernel, a PostgreSQL session advisory lock
        by the server when the session's connection goes away.
        """
        ...


@runtime_checkable
class SharedStorage(Locker, Protocol):
    """Everything acmeali keeps, addressed by names only (no paths)."""

    backend: str

    def describe(self) -> str:
        """Where the state lives, for messages (never a password)."""
        ...

    def join_run(self, kind: str) -> AbstractContextManager[str]:
        """Be part of the run of ``kind`` in progress on any host, and yield its id.

        A run is in progress while some process is inside ``join_run`` for it; a process
        entering then gets that run's id, one entering when nobody is inside starts a new
        run with a new id. ``renew --force`` started on several hosts at once is one run,
        so a lineage one host renewed is skipped by the others, whatever their clocks say
        and however late a host's process started. Released like a lock when the holder
        dies.
        """
        ...

    def close(self) -> None: ...

    # accounts
    def account_servers(self) -> list[str]: ...

    def load_account(self, server: str) -> tuple[dict[str, Any], bytes] | None: ...

    def save_account(self, server: str, record: dict[str, Any], key_pem: bytes | None) -> None: ...

    # lineage records
    def lineage_names(self) -> list[str]: ...

    def load_meta(self, name: str) -> LineageMeta: ...

    def save_meta(self, meta: LineageMeta) -> None: ...

    def lineage_records(self) -> dict[str, Listed]:
        """Every lineage (in ``lineage_names`` order) with its record and current version,
        in one read where the backend can; a record that cannot be read is its StoreError,
        so one damaged lineage does not hide the others."""
        ...

    # versions
    def versions(self, name: str) -> list[int]: ...

    def write_version(self, name: str, files: BundleFiles, *, version: int | None = None) -> int:
        """Store a complete version atomically (all or nothing) and return its number.

        ``version=None`` takes the next number; a given number (migration) must be free.
        """
        ...

    def read_version(self, name: str, version: int) -> LiveBundle: ...

    def activate(self, name: str, version: int) -> None:
        """Make ``version`` the current one: one rename (files) or one UPDATE (database)."""
        ...

    def current_version(self, name: str) -> int | None: ...

    def current_versions(self) -> dict[str, int]:
        """Every lineage's current version in one read: what a host compares with its
        live files to know what to fetch."""
        ...

    def read_current(self, name: str) -> LiveBundle: ...

    def prune(self, name: str, keep: int) -> None: ...

    # an order in flight: its key survives a crash so the order can be resumed
    def put_pending_key(self, name: str, key_pem: bytes) -> None: ...

    def pending_key(self, name: str) -> bytes | None: ...

    def drop_pending_key(self, name: str) -> None: ...

    def delete_lineage(self, name: str) -> None: ...


@runtime_checkable
class LiveFiles(Protocol):
    """This host's ``live/`` files, brought to a version the storage holds."""

    def paths(self, name: str) -> LivePaths: ...

    def live_version(self, name: str) -> int | None: ...

    def sync(self, name: str, bundle: LiveBundle) -> bool:
        """Make ``bundle`` live here (one atomic switch); False when it already was."""
        ...


def backend_factory(backend: str) -> Any:
    """The factory of ``backend``, importing its module now (and only now)."""
    target = STORAGE_BACKENDS.get(backend)
    if target is None:
        raise StoreError(f"unknown storage backend {backend!r}",
                         hint=f"use one of {', '.join(STORAGE_BACKENDS)}")
    module_name, _, factory = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StoreError(f"storage backend {backend!r} needs {exc.name}, which is not "
                         "installed", hint=f"pip install 'acmeali[{backend}]'") from None
    return getattr(module, factory)


def open_storage(settings: StorageSettings, state_dir: Path) -> SharedStorage:
    """The configured backend; its module is imported only now."""
    storage: SharedStorage = backend_factory(settings.backend)(settings, state_dir)
    return storage


def live_files(state_dir: Path) -> LiveFiles:
    """This host's live files under ``state_dir`` (the same layout for every backend)."""
    from acmeali.store.livefiles import LocalLiveFiles

    return LocalLiveFiles(state_dir)
