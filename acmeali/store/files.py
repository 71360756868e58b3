"""The file backend: certbot's layout, atomic writes, 0600 keys, flock-based locks.

Layout under the state directory (see docs/architecture.md)::

    accounts/<server-id>/{account.json,private_key.pem}
    archive/<name>/v<N>/{privkey,cert,chain,fullchain}.pem   immutable once written
    live/<name>/current -> ../../archive/<name>/v<N>         the one thing a switch changes
    live/<name>/<file>.pem -> current/<file>.pem             fixed
    renewal/<name>.json                                      LineageMeta
    locks/<name>.lock

Why it is built this way:
- Every file is written to a temporary name in the same directory, fsynced, renamed over
  the target and the directory fsynced, so a crash or a full disk leaves the old file or
  the new one, never half of one. Private files are *created* 0600 (no window in which a
  key is world-readable before a chmod).
- Archive versions are never modified; "going live" is one ``os.replace`` of the
  ``current`` symlink, so the four files switch together: nginx never opens a missing
  or partial file, and a crash can never leave a new certificate beside an old key.
- Locks are ``fcntl.flock`` on ``locks/<name>.lock``: the kernel drops them when the
  holder dies (even SIGKILL), so a stale lock is taken over with no heartbeat or PID
  guessing. The PID in the file is only for the error message. A process-local registry
  additionally stops two threads of one process from holding the same lock.

Stdlib only (plus ``lineage``): this module is on the start-up path of ``renew``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from acmeali.errors import LockHeld, StoreError
from acmeali.faults import check_disk, checkpoint
from acmeali.lineage import LineageMeta, MetaError
from acmeali.store.base import BUNDLE_FILES, LiveBundle, LivePaths
from acmeali.store.seam import Listed

PRIVATE = 0o600
PUBLIC = 0o644
DIR_MODE = 0o700
_POLL = 0.05  # seconds between lock attempts while waiting
_VERSION_DIR = re.compile(r"^v(\d+)$")
_CURRENT = "current"
_WILDCARD = "wildcard_"


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX needs the directory itself synced)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (never an existing file, never through a symlink) with ``mode`` from
    the first byte, write ``data`` whole and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomic(path: Path, data: bytes, *, mode: int = PUBLIC,
                      overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old content or the new, never a mix.

    The file is created with ``mode`` (0600 keys are never readable by others, not even
    for a moment). With ``overwrite=False`` the final step is ``link``, which fails with
    FileExistsError instead of replacing a file that appeared meanwhile. The parent
    directory must exist. Raises OSError; callers turn it into their own error.
    """
    path = Path(path)
    directory = path.parent
    check_disk()  # crash tests: a disk that filled up at a chosen step
    tmp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        write_new_file(tmp, data, mode)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except OSError as exc:
                # File systems without hard links (vfat, some FUSE): check, then rename.
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                if os.path.lexists(path):
                    raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def server_id(server: str) -> str:
    """The ACME directory URL as one safe path component (``acme-v02...org_directory``)."""
    s = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", server).rstrip("/")
    s = re.sub(r"[^A-Za-z0-9._-]", "_", s).lstrip(".")
    if not s:
        raise StoreError(f"cannot derive an account directory from server {server!r}")
    return s


# Process-local registry of held locks (lock path -> holding thread id).
_held: dict[str, int] = {}
_held_cond = threading.Condition()


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


class FileStore:
    """The default ``Storage``: a state directory on the local file system."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ basics
    def safe_name(self, name: str) -> str:
        """A lineage or lock name as one path component (certmagic: ``*`` -> ``wildcard_``).

        Reversible (``lineage_names`` maps it back), so names that already contain
        ``wildcard_`` are refused, as are empty names, ``/``, NUL and a leading dot.
        """
        from acmeali.validate import InvalidValue, lineage_name

        try:
            lineage_name(name)
        except InvalidValue as exc:
            raise StoreError(f"{name[:60]!r} cannot be used as a lineage name in the state "
                             f"directory: {exc}") from None
        return name.replace("*", _WILDCARD)

    @staticmethod
    def _unsafe(safe: str) -> str:
        return safe.replace(_WILDCARD, "*")

    def _mkdir(self, directory: Path) -> Path:
        """Create ``directory`` (and the state root) as 0700, leaving existing ones alone."""
        try:
            if directory.is_dir():
                return directory
            if not self.root.is_dir():
                self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            # mkdir(parents=True) gives intermediate directories the umask's mode; create
            # each level below the root ourselves so all of them are 0700.
            try:
                parts = directory.relative_to(self.root).parts
            except ValueError:
                directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
                return directory
            current = self.root
            for part in parts:
                current = current / part
                current.mkdir(mode=DIR_MODE, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create directory {directory}: {exc.strerror}") from None
        return directory

    def atomic_write(self, path: Path, data: bytes, *, mode: int = PUBLIC) -> None:
        """``write_file_atomic`` inside the state directory, creating 0700 parents as needed."""
        path = Path(path)
        self._mkdir(path.parent)
        try:
            write_file_atomic(path, data, mode=mode)
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc.strerror}") from None

    # ------------------------------------------------------------------ locks
    def _lock_path(self, name: str) -> Path:
        return self.root / "locks" / f"{self.safe_name(name)}.lock"

    @contextlib.contextmanager
    def lock(self, name: str, *, wait: float | None = 0.0) -> Iterator[None]:
        """Hold the exclusive lock ``name`` across processes and threads.

        ``wait=0`` fails at once, a number waits up to that many seconds, ``None``
        waits forever. Raises LockHeld naming the lock and the holder's PID.
        """
        path = self._lock_path(name)
        key = str(path.absolute())
        deadline = None if wait is None else time.monotonic() + max(0.0, wait)
        me = threading.get_ident()
        with _held_cond:
            while key in _held:
                if _held[key] == me:
                    raise LockHeld(f"lock {name!r} is already held by this thread "
                                   f"(process {os.getpid()})")
                left = _remaining(deadline)
                if left is not None and left <= 0:
                    raise LockHeld(f"lock {name!r} is held by another task in this process "
                                   f"(pid {os.getpid()})", hint="wait for it to finish")
                _held_cond.wait(left)
            _held[key] = me
        try:
            fd = self._flock(path, name, deadline)
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        finally:
            with _held_cond:
                _held.pop(key, None)
                _held_cond.notify_all()

    def _flock(self, path: Path, name: str, deadline: float | None) -> int:
        self._mkdir(path.parent)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, PRIVATE)
        except OSError as exc:
            raise StoreError(f"cannot open lock file {path}: {exc.strerror}") from None
        try:
            if deadline is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise LockHeld(
                                f"lock {name!r} is held by process {self._holder(fd)} ({path})",
                                hint="another acmeali run is working on it; wait for it to "
                                     "finish (it is released automatically if that process "
                                     "dies)") from None
                        time.sleep(min(_POLL, left))
            # The PID is informational (it names the holder in LockHeld): a full disk or a
            # quota must not turn taking a lock into a failure.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextlib.contextmanager
    def join_run(self, kind: str) -> Iterator[str]:
        """The id of the run of ``kind`` in progress, joined; else a new run (see seam).

        ``locks/.<kind>.run`` holds the id; a run in progress holds a shared flock on it.
        ``locks/.<kind>.join`` serialises joining (held for a few system calls), so the
        exclusive probe and the id written under it are never seen half-done. Dot names:
        no lineage's lock file can collide with them.
        """
        base = self.root / "locks"
        self._mkdir(base)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            gate = os.open(base / f".{kind}.join", flags, PRIVATE)
        except OSError as exc:
            raise StoreError(f"cannot open {base / f'.{kind}.join'}: {exc.strerror}") from None
        try:
            fcntl.flock(gate, fcntl.LOCK_EX)
            try:
                run = os.open(base / f".{kind}.run", flags, PRIVATE)
            except OSError as exc:
                raise StoreError(f"cannot open {base / f'.{kind}.run'}: {exc.strerror}") from None
            try:
                try:
                    fcntl.flock(run, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    fcntl.flock(run, fcntl.LOCK_SH)  # nobody holds it exclusively: no wait
                    run_id = os.pread(run, 64, 0).decode("ascii", "replace").strip()
                else:
                    run_id = ""
                if not run_id:  # no run in progress (or its id unreadable): a new one
                    run_id = secrets.token_hex(16)
                    os.ftruncate(run, 0)
                    os.pwrite(run, f"{run_id}\n".encode(), 0)
                    fcntl.flock(run, fcntl.LOCK_SH)
            except BaseException as exc:
                os.close(run)
                if isinstance(exc, OSError):
                    raise StoreError(f"cannot record the {kind} run in {base}: "
                                     f"{exc.strerror}") from None
                raise
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
            os.close(gate)
        try:
            yield run_id
        finally:
            fcntl.flock(run, fcntl.LOCK_UN)
            os.close(run)

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            pid = ""
        return pid if pid.isdigit() else "unknown"

    # ------------------------------------------------------------------ accounts
    def _account_dir(self, server: str) -> Path:
        return self.root / "accounts" / server_id(server)

    def load_account(self, server: str) -> tuple[dict[str, Any], bytes] | None:
        """(record, key PEM) for ``server``, or None when no account is stored for it."""
        d = self._account_dir(server)
        try:
            raw = (d / "account.json").read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {d / 'account.json'}: {exc.strerror}") from None
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("url"), str):
            raise StoreError(f"account record {d / 'account.json'} is corrupt",
                             hint="restore it from a backup, or move it away and run "
                                  "`acmeali account register` to find the account again")
        try:
            key_pem = (d / "private_key.pem").read_bytes()
        except OSError as exc:
            raise StoreError(f"account key {d / 'private_key.pem'} is missing or unreadable "
                             f"({exc.strerror})") from None
        return record, key_pem

    def save_account(self, server: str, record: dict[str, Any], key_pem: bytes | None) -> None:
        """Store the key first (0600), then the record, so a record never lacks its key."""
        d = self._account_dir(server)
        if key_pem is not None:
            self.atomic_write(d / "private_key.pem", key_pem, mode=PRIVATE)
        elif not (d / "private_key.pem").exists():
            raise StoreError(f"no account key stored in {d}; cannot save the record alone")
        self.atomic_write(d / "account.json",
                          json.dumps(record, indent=2, sort_keys=True).encode() + b"\n")

    # ------------------------------------------------------------------ metadata
    def _meta_path(self, name: str) -> Path:
        return self.root / "renewal" / f"{self.safe_name(name)}.json"

    def lineage_names(self) -> list[str]:
        try:
            entries = os.listdir(self.root / "renewal")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot list {self.root / 'renewal'}: {exc.strerror}") from None
        return sorted(self._unsafe(e[:-5]) for e in entries
                      if e.endswith(".json") and not e.startswith("."))

    def lineage_records(self) -> dict[str, Listed]:
        """Each record and live version (what ``renew`` read one by one before: no extra
        cost on the file store)."""
        records: dict[str, Listed] = {}
        for name in self.lineage_names():
            meta: LineageMeta | StoreError
            try:
                meta = self.load_meta(name)
            except StoreError as exc:
                meta = exc
            records[name] = Listed(meta, self.live_version(name))
        return records

    def load_meta(self, name: str) -> LineageMeta:
        path = self._meta_path(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"lineage {name!r}: no metadata at {path}",
                             hint="list lineages with `acmeali certs list`") from None
        except OSError as exc:
            raise StoreError(f"lineage {name!r}: cannot read {path}: {exc.strerror}") from None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            meta = LineageMeta.from_json(data)
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            reason = (f"wrong value: {exc}" if isinstance(exc, MetaError)
                      else "not valid JSON" if isinstance(exc, (ValueError, RecursionError))
                      else "unexpected content")
            raise StoreError(f"lineage {name!r}: metadata {path} is corrupt ({reason})",
                             hint="restore it from a backup, or re-issue with `acmeali issue`"
                             ) from None
        if meta.name != name:
            raise StoreError(f"lineage {name!r}: metadata {path} belongs to {meta.name!r}")
        return meta

    def save_meta(self, meta: LineageMeta) -> None:
        data = json.dumps(meta.to_json(), indent=1, sort_keys=True).encode() + b"\n"
        self.atomic_write(self._meta_path(meta.name), data)

    # ------------------------------------------------------------------ versions
    def _archive(self, name: str) -> Path:
        return self.root / "archive" / self.safe_name(name)

    def _live_dir(self, name: str) -> Path:
        return self.root / "live" / self.safe_name(name)

    def versions(self, name: str) -> list[int]:
        """Archive versions present for ``name``, ascending."""
        try:
            entries = os.listdir(self._archive(name))
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for e in entries if (m := _VERSION_DIR.match(e)))

    def write_version(self, name: str, *, privkey_pem: bytes | None, cert_pem: bytes,
                      chain_pem: bytes, fullchain_pem: bytes) -> int:
        """Write archive version N+1 (durably) and return N+1; live is not touched.

        The version number is claimed by creating its directory exclusively, so even two
        writers without the lineage lock could never share a version.
        ``privkey_pem`` is None only for certificates issued from a user's CSR.
        """
        archive = self._mkdir(self._archive(name))
        version = max(self.versions(name), default=0) + 1
        while True:
            try:
                os.mkdir(archive / f"v{version}", DIR_MODE)
                break
            except FileExistsError:
                version += 1
            except OSError as exc:
                raise StoreError(f"lineage {name!r}: cannot create a version in {archive}: "
                                 f"{exc.strerror}") from None
        d = archive / f"v{version}"
        try:
            write_file_atomic(d / "cert.pem", cert_pem, mode=PUBLIC)
            write_file_atomic(d / "chain.pem", chain_pem, mode=PUBLIC)
            write_file_atomic(d / "fullchain.pem", fullchain_pem, mode=PUBLIC)
            if privkey_pem is not None:
                write_file_atomic(d / "privkey.pem", privkey_pem, mode=PRIVATE)
            fsync_dir(archive)
        except OSError as exc:
            raise StoreError(f"lineage {name!r}: cannot write version {version} in {d}: "
                             f"{exc.strerror}") from None
        return version

    def activate(self, name: str, version: int) -> None:
        """Make ``version`` live with ONE atomic rename, so all four files switch together.

        ``live/<name>/<file>.pem`` are fixed symlinks to ``current/<file>.pem``; only
        ``live/<name>/current`` (a symlink to ``../../archive/<name>/v<N>``) changes. A
        crash before the rename leaves the old bundle live, after it the new one: there is
        no moment at which the key and the certificate belong to different versions.
        """
        archive, safe = self._archive(name), self.safe_name(name)
        vdir = archive / f"v{version}"
        missing = [f for f in ("cert", "chain", "fullchain") if not (vdir / f"{f}.pem").is_file()]
        if missing:
            raise StoreError(f"lineage {name!r}: version {version} is incomplete "
                             f"(no {', '.join(missing)}); refusing to make it live")
        live = self._mkdir(self._live_dir(name))
        try:
            # A process killed mid-switch leaves its temporary symlink; we hold the lineage
            # lock, so every such leftover here is dead. Nothing reads them: tidiness only.
            for entry in os.listdir(live):
                if entry.startswith(".") and entry.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        os.unlink(live / entry)
            for kind in BUNDLE_FILES:
                link = live / f"{kind}.pem"
                if kind == "privkey" and not (vdir / "privkey.pem").exists():
                    # Issued from the user's CSR: no key, so no (dangling) privkey.pem link
                    # a server config could name and fail on at start.
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(link)
                    continue
                if os.path.islink(link) and os.readlink(link) == f"{_CURRENT}/{kind}.pem":
                    continue
                tmp = live / f".{kind}.pem.{os.getpid()}.{secrets.token_hex(4)}.tmp"
                os.symlink(f"{_CURRENT}/{kind}.pem", tmp)
                os.replace(tmp, link)
            tmp = live / f".{_CURRENT}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
            os.symlink(f"../../archive/{safe}/v{version}", tmp)
            try:
                checkpoint("switch")
                os.replace(tmp, live / _CURRENT)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            checkpoint("switched")  # crash tests: live is new, nothing else is recorded
            fsync_dir(live)
        except OSError as exc:
            raise StoreError(f"lineage {name!r}: cannot switch {live} to version {version}: "
                             f"{exc.strerror}") from None

    def live_paths(self, name: str) -> LivePaths:
        live = self._live_dir(name)
        return LivePaths(**{f: live / f"{f}.pem" for f in BUNDLE_FILES})

    def live_version(self, name: str) -> int | None:
        """The archive version ``live/<name>/current`` points at (None: nothing live)."""
        try:
            target = os.readlink(self._live_dir(name) / _CURRENT)
        except OSError:
            return None
        m = _VERSION_DIR.match(os.path.basename(target))
        return int(m.group(1)) if m else None

    def check_live_files(self, name: str) -> None:
        """Cheap existence check (stat only) for ``renew``: StoreError naming what is missing."""
        live = os.path.join(self.root, "live", self.safe_name(name))  # str: 1,000 per run
        missing = [path for kind in ("cert", "chain", "fullchain")
                   if not os.path.exists(path := f"{live}/{kind}.pem")]
        if missing:
            raise StoreError(f"lineage {name!r}: live file(s) missing: {', '.join(missing)}",
                             hint="re-issue with `acmeali issue`, or restore the state directory")

    def read_live(self, name: str) -> LiveBundle:
        """The live bundle's bytes, all from one version (the one ``current`` points at)."""
        live = self._live_dir(name)
        version = self.live_version(name)
        if version is None:
            raise StoreError(f"lineage {name!r}: nothing is live in {live}",
                             hint="issue it with `acmeali issue`")
        vdir = self._archive(name) / f"v{version}"
        data: dict[str, bytes] = {}
        for kind in BUNDLE_FILES:
            path = vdir / f"{kind}.pem"
            try:
                data[kind] = path.read_bytes()
            except FileNotFoundError:
                if kind != "privkey":  # a CSR-issued lineage has no key to serve
                    raise StoreError(f"lineage {name!r}: live file {live}/{kind}.pem is "
                                     "missing", hint="re-issue with `acmeali issue`") from None
                data[kind] = b""
            except OSError as exc:
                raise StoreError(f"lineage {name!r}: cannot read {path} ({exc.strerror})"
                                 ) from None
        return LiveBundle(version=version, **data)

    def prune(self, name: str, keep: int) -> None:
        """Delete all but the newest ``keep`` archive versions; never the live one."""
        import shutil

        versions = self.versions(name)
        live = self.live_version(name)
        keep_set = set(versions[-max(1, keep):]) | ({live} if live is not None else set())
        archive = self._archive(name)
        for v in versions:
            if v not in keep_set:
                shutil.rmtree(archive / f"v{v}", ignore_errors=True)
