"""The storage protocol issuance and renewal are written against.

A ``Protocol`` rather than a base class, so a later shared backend (a fleet of hosts
sharing state) only has to provide these methods — including ``lock``, which is what
keeps two hosts from issuing the same certificate twice. Stdlib only: this is on the
start-up path of ``renew``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from acmeali.lineage import LineageMeta

BUNDLE_FILES = ("privkey", "cert", "chain", "fullchain")


@dataclass(frozen=True)
class LivePaths:
    """Where servers read the live bundle (certbot's layout, so nginx configs carry over)."""

    privkey: Path
    cert: Path
    chain: Path
    fullchain: Path


@dataclass(frozen=True)
class LiveBundle:
    """The bytes of one consistent live version (all four files from the same version)."""

    privkey: bytes  # empty only for a lineage issued from a user's CSR (no key stored)
    cert: bytes
    chain: bytes
    fullchain: bytes
    version: int

    def __repr__(self) -> str:  # never show key bytes, even in a debugger or a log
        return f"LiveBundle(version={self.version}, cert={len(self.cert)} bytes, ...)"


class Storage(Protocol):
    root: Path

    def atomic_write(self, path: Path, data: bytes, *, mode: int = 0o644) -> None: ...

    def lock(self, name: str, *, wait: float | None = 0.0) -> AbstractContextManager[None]: ...

    def load_account(self, server: str) -> tuple[dict[str, Any], bytes] | None: ...

    def save_account(self, server: str, record: dict[str, Any],
                     key_pem: bytes | None) -> None: ...

    def lineage_names(self) -> list[str]: ...

    def load_meta(self, name: str) -> LineageMeta: ...

    def save_meta(self, meta: LineageMeta) -> None: ...

    def write_version(self, name: str, *, privkey_pem: bytes | None, cert_pem: bytes,
                      chain_pem: bytes, fullchain_pem: bytes) -> int: ...

    def activate(self, name: str, version: int) -> None: ...

    def live_paths(self, name: str) -> LivePaths: ...

    def read_live(self, name: str) -> LiveBundle: ...

    def prune(self, name: str, keep: int) -> None: ...

    def safe_name(self, name: str) -> str: ...
