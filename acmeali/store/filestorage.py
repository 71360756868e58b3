"""The file store behind the path-free seam: ``FileStorage`` adapts ``FileStore``.

The on-disk layout and every promise of ``store/files.py`` stay as they are (atomic writes,
0600 keys, one-rename live switch, flock locks). This module only answers the seam's
questions in terms of that layout: the pending key is ``archive/<name>/pending-privkey.pem``
(where issuance keeps it today), a version with a given number (migration) is claimed by an
exclusive ``mkdir`` like every other, and the current version is what ``live/<name>/current``
points at. Stdlib only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acmeali.errors import StoreError
from acmeali.lineage import LineageMeta
from acmeali.store.base import BUNDLE_FILES, LiveBundle
from acmeali.store.files import DIR_MODE, PRIVATE, PUBLIC, fsync_dir, write_file_atomic
from acmeali.store.host import LocalStore
from acmeali.store.seam import BundleFiles, Listed, SharedStorage

if TYPE_CHECKING:
    from acmeali.config import StorageSettings


class FileStorage:
    """``SharedStorage`` over a state directory; one host, locks by flock."""

    backend = "files"

    def __init__(self, root: Path | str) -> None:
        self.files = LocalStore(root)  # its pending-key layout is the one issuance uses
        self.root = self.files.root

    def describe(self) -> str:
        return f"state directory {self.root}"

    def close(self) -> None:
        pass

    def lock(self, name: str, *, wait: float | None = 0.0
             ) -> contextlib.AbstractContextManager[None]:
        return self.files.lock(name, wait=wait)

    def join_run(self, kind: str) -> contextlib.AbstractContextManager[str]:
        return self.files.join_run(kind)

    # ------------------------------------------------------------------ accounts
    def account_servers(self) -> list[str]:
        """Servers with a stored account (from each record's ``server``, the URL itself)."""
        base = self.root / "accounts"
        try:
            entries = sorted(os.listdir(base))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot list {base}: {exc.strerror}") from None
        servers: list[str] = []
        for entry in entries:
            path = base / entry / "account.json"
            try:
                record = json.loads(path.read_bytes())
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                raise StoreError(f"account record {path} is unreadable or corrupt") from None
            server = record.get("server") if isinstance(record, dict) else None
            if not isinstance(server, str):
                raise StoreError(f"account record {path} does not name its server",
                                 hint="add \"server\": \"<directory URL>\" to it")
            servers.append(server)
        return servers

    def load_account(self, server: str) -> tuple[dict[str, Any], bytes] | None:
        return self.files.load_account(server)

    def save_account(self, server: str, record: dict[str, Any], key_pem: bytes | None) -> None:
        self.files.save_account(server, record, key_pem)

    # ------------------------------------------------------------------ records
    def lineage_names(self) -> list[str]:
        return self.files.lineage_names()

    def load_meta(self, name: str) -> LineageMeta:
        return self.files.load_meta(name)

    def lineage_records(self) -> dict[str, Listed]:
        return self.files.lineage_records()

    def save_meta(self, meta: LineageMeta) -> None:
        self.files.save_meta(meta)

    # ------------------------------------------------------------------ versions
    def _archive(self, name: str) -> Path:
        return self.root / "archive" / self.files.safe_name(name)

    def versions(self, name: str) -> list[int]:
        return self.files.versions(name)

    def write_version(self, name: str, files: BundleFiles, *, version: int | None = None) -> int:
        if version is None:
            return self.files.write_version(
                name, privkey_pem=files.privkey or None, cert_pem=files.cert,
                chain_pem=files.chain, fullchain_pem=files.fullchain)
        archive = self.files._mkdir(self._archive(name))  # 0700 at every level
        d = archive / f"v{version}"
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            try:
                same = (d / "cert.pem").read_bytes() == files.cert
            except OSError:
                same = False
            if same:
                return version  # this very certificate: a repeated copy
            raise StoreError(f"lineage {name!r}: version {version} exists already in "
                             f"{archive} with another certificate") from None
        except OSError as exc:
            raise StoreError(f"lineage {name!r}: cannot create {d}: {exc.strerror}") from None
        write_bundle_dir(d, files, name=name)
        fsync_dir(archive)
        return version

    def read_version(self, name: str, version: int) -> LiveBundle:
        d = self._archive(name) / f"v{version}"
        return read_bundle_dir(d, version, name=name)

    def activate(self, name: str, version: int) -> None:
        self.files.activate(name, version)

    def current_version(self, name: str) -> int | None:
        return self.files.live_version(name)

    def current_versions(self) -> dict[str, int]:
        found = ((name, self.files.live_version(name)) for name in self.lineage_names())
        return {name: v for name, v in found if v is not None}

    def read_current(self, name: str) -> LiveBundle:
        return self.files.read_live(name)

    def prune(self, name: str, keep: int) -> None:
        self.files.prune(name, keep)

    # ------------------------------------------------------------------ pending key
    def put_pending_key(self, name: str, key_pem: bytes) -> None:
        self.files.put_pending_key(name, key_pem)

    def pending_key(self, name: str) -> bytes | None:
        return self.files.pending_key(name)

    def drop_pending_key(self, name: str) -> None:
        self.files.drop_pending_key(name)

    def delete_lineage(self, name: str) -> None:
        """Record first (the lineage is gone for ``renew``), then live, then the archive."""
        safe = self.files.safe_name(name)
        with contextlib.suppress(FileNotFoundError):
            (self.root / "renewal" / f"{safe}.json").unlink()
        for sub in ("live", "archive"):
            shutil.rmtree(self.root / sub / safe, ignore_errors=True)


def write_bundle_dir(d: Path, files: BundleFiles, *, name: str) -> None:
    """Write the four files of a version into ``d`` (each atomically, the key 0600)."""
    try:
        write_file_atomic(d / "cert.pem", files.cert, mode=PUBLIC)
        write_file_atomic(d / "chain.pem", files.chain, mode=PUBLIC)
        write_file_atomic(d / "fullchain.pem", files.fullchain, mode=PUBLIC)
        if files.privkey:
            write_file_atomic(d / "privkey.pem", files.privkey, mode=PRIVATE)
    except OSError as exc:
        raise StoreError(f"lineage {name!r}: cannot write {d}: {exc.strerror}") from None


def read_bundle_dir(d: Path, version: int, *, name: str) -> LiveBundle:
    data: dict[str, bytes] = {}
    for kind in BUNDLE_FILES:
        try:
            data[kind] = (d / f"{kind}.pem").read_bytes()
        except FileNotFoundError:
            if kind != "privkey":
                raise StoreError(f"lineage {name!r}: version {version} has no {kind}.pem "
                                 f"in {d}") from None
            data[kind] = b""
        except OSError as exc:
            raise StoreError(f"lineage {name!r}: cannot read {d}/{kind}.pem "
                             f"({exc.strerror})") from None
    return LiveBundle(version=version, **data)


def open_file_storage(settings: StorageSettings, state_dir: Path) -> SharedStorage:
    return FileStorage(state_dir)  # the annotation makes mypy check the protocol
