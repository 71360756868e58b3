"""Getting certificates and keys onto disk safely, and never reusing a serial number.

Every file is written to a temporary name, fsynced and renamed, so a crash leaves either
the old file or the new one, never half a key. Existing output is refused unless the
caller forces it: a server key that is already hosted in CAS must not vanish by accident.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from acmeali.errors import StoreError, UsageError
from acmeali.store.files import write_file_atomic

KEY_MODE = 0o600
CERT_MODE = 0o644
SERIALS_FILE = "serials.txt"


@dataclass(frozen=True)
class OutFile:
    """One file of an output set: its name inside the output directory, bytes and mode."""

    name: str
    data: bytes
    mode: int = CERT_MODE


def check_outputs(directory: Path, names: Sequence[str], *, force: bool) -> None:
    """Refuse before any work is done when output would replace existing files."""
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a directory")
    if force:
        return
    existing = [n for n in names if (directory / n).exists()]
    if existing:
        raise UsageError(f"{directory} already has {', '.join(existing)}; nothing was written",
                         hint="use --force to replace them, or choose another --out")


def write_outputs(directory: Path, files: Sequence[OutFile], *, force: bool) -> list[Path]:
    """Write a whole output set, keys first (a certificate without its key is useless)."""
    check_outputs(directory, [f.name for f in files], force=force)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        written: list[Path] = []
        for f in sorted(files, key=lambda f: f.mode != KEY_MODE):
            path = directory / f.name
            write_file_atomic(path, f.data, mode=f.mode)
            written.append(path)
    except OSError as exc:
        raise StoreError(f"cannot write to {directory}: {exc.strerror or exc}") from None
    order = {f.name: i for i, f in enumerate(files)}
    return sorted(written, key=lambda p: order[p.name])


class SerialRegistry:
    """Serial numbers this CA has used, one per line: ``<hex>\\t<UTC time>\\t<kind>\\t<CN>``.

    RFC 5280 §4.1.2.2 requires serials unique per issuer. Random 159-bit serials make a
    collision unlikely; the registry makes it impossible, and doubles as an issuance log.
    An exclusive flock covers read-check-append, so parallel runs cannot pick the same one.
    """

    def __init__(self, ca_dir: Path) -> None:
        self.path = ca_dir / SERIALS_FILE

    def used(self) -> set[int]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return set()
        return _parse(text, self.path)

    def allocate(self, kind: str, label: str, generate: Callable[[], int]) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, CERT_MODE)
        except OSError as exc:
            raise StoreError(f"cannot open {self.path}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "r+", encoding="utf-8") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            fh.seek(0)
            used = _parse(fh.read(), self.path)
            serial = generate()
            while serial in used:
                serial = generate()
            when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            clean = " ".join(label.split())
            fh.write(f"{serial:x}\t{when}\t{kind}\t{clean}\n")
            fh.flush()
            os.fsync(fh.fileno())
        return serial


def _parse(text: str, path: Path) -> set[int]:
    used: set[int] = set()
    for n, line in enumerate(text.splitlines(), 1):
        field = line.split("\t", 1)[0].strip()
        if not field or field.startswith("#"):
            continue
        try:
            used.add(int(field, 16))
        except ValueError:
            raise StoreError(f"{path}:{n}: not a hexadecimal serial number: {field[:40]!r}",
                             hint="fix or remove the line; the file lists serials this "
                                  "CA has already used") from None
    return used
