"""This host's ``live/`` files, written from bytes a (possibly shared) storage holds.

With the file backend the storage *is* these files and ``sync`` only confirms them; with a
database every host keeps its own copy in the same certbot layout the file store uses
(``archive/<name>/v<N>/`` + ``live/<name>/current``), numbered like the database's versions,
so nginx configs and hooks see no difference. A version directory is written under a
temporary name and renamed into place complete; going live is ``FileStore.activate``'s one
rename of ``current``, so the four files still switch together.

Stdlib only: ``renew`` on every host of a fleet runs this for each lineage.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from acmeali.errors import StoreError
from acmeali.store.base import LiveBundle, LivePaths
from acmeali.store.files import DIR_MODE, PRIVATE, PUBLIC, FileStore, fsync_dir, write_new_file
from acmeali.store.filestorage import read_bundle_dir

if TYPE_CHECKING:
    from acmeali.store.seam import LiveFiles, SharedStorage


class LocalLiveFiles:
    """``LiveFiles`` under a local state directory."""

    def __init__(self, root: Path | str) -> None:
        self.files = FileStore(root)
        self.root = self.files.root

    def paths(self, name: str) -> LivePaths:
        return self.files.live_paths(name)

    def live_version(self, name: str) -> int | None:
        return self.files.live_version(name)

    def sync(self, name: str, bundle: LiveBundle) -> bool:
        archive = self.root / "archive" / self.files.safe_name(name)
        vdir = archive / f"v{bundle.version}"
        live = self.files.live_version(name)
        existing = _read_or_none(vdir, bundle.version, name)
        if existing is not None and _same(existing, bundle):
            if live == bundle.version:
                return False
        elif existing is not None:
            if live == bundle.version:
                raise StoreError(
                    f"lineage {name!r}: the live version {bundle.version} in {vdir} differs "
                    "from the storage's version of that number",
                    hint=f"move {archive} and {self.root / 'live' / name} away, then run again")
            # A local-only version that happens to share the number: keep it, renamed.
            aside = archive / f".v{bundle.version}.replaced-{secrets.token_hex(4)}"
            try:
                os.rename(vdir, aside)
            except OSError as exc:
                raise StoreError(f"lineage {name!r}: cannot move {vdir} aside: "
                                 f"{exc.strerror}") from None
            existing = None
        if existing is None:
            self._write_dir(archive, vdir, bundle, name)
        self.files.activate(name, bundle.version)
        return True

    def _write_dir(self, archive: Path, vdir: Path, bundle: LiveBundle, name: str) -> None:
        """Write the version beside its final name, then rename it in complete."""
        self.files._mkdir(archive)  # 0700 at every level, like FileStore's own
        tmp = archive / f".v{bundle.version}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            os.mkdir(tmp, DIR_MODE)
            # Files in a directory nobody else knows yet need no rename of their own: write,
            # fsync each, fsync the directory once, then the one rename makes it appear whole.
            for kind, data in (("cert", bundle.cert), ("chain", bundle.chain),
                               ("fullchain", bundle.fullchain), ("privkey", bundle.privkey)):
                if kind == "privkey" and not data:
                    continue
                write_new_file(tmp / f"{kind}.pem", data, PRIVATE if kind == "privkey" else PUBLIC)
            fsync_dir(tmp)
            try:
                os.rename(tmp, vdir)
            except OSError as exc:
                # Another process of this host (a `sync` timer beside a `renew`) wrote the
                # same version first: theirs is as good as ours.
                same = _read_or_none(vdir, bundle.version, name)
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or same is None \
                        or not _same(same, bundle):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
            fsync_dir(archive)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StoreError(f"lineage {name!r}: cannot write {vdir}: {exc.strerror}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


@dataclass
class FollowReport:
    switched: list[tuple[str, int]] = field(default_factory=list)  # (lineage, version)
    unchanged: int = 0
    failed: list[str] = field(default_factory=list)  # one line each


def follow(storage: SharedStorage, live: LiveFiles) -> FollowReport:
    """Bring this host's live files to the storage's current versions.

    One read of every current version number, then bytes only for the lineages whose
    local version differs (the core of a later ``acmeali sync``). A lineage that fails is
    reported and the others go on; what was live stays live.
    """
    report = FollowReport()
    for name, version in sorted(storage.current_versions().items()):
        if live.live_version(name) == version:
            report.unchanged += 1
            continue
        try:
            bundle = storage.read_current(name)  # newer than `version` by now? take it
            if live.sync(name, bundle):
                report.switched.append((name, bundle.version))
            else:
                report.unchanged += 1
        except StoreError as exc:
            report.failed.append(f"{name}: {exc.message}")
    return report


def _read_or_none(vdir: Path, version: int, name: str) -> LiveBundle | None:
    if not os.path.isdir(vdir):
        return None
    try:
        return read_bundle_dir(vdir, version, name=name)
    except StoreError:
        return LiveBundle(privkey=b"", cert=b"", chain=b"", fullchain=b"", version=version)


def _same(a: LiveBundle, b: LiveBundle) -> bool:
    return (a.cert, a.chain, a.fullchain, a.privkey) == (b.cert, b.chain, b.fullchain, b.privkey)


def _conforms(live: LocalLiveFiles) -> LiveFiles:
    return live  # never called: mypy checks here that LocalLiveFiles implements LiveFiles
