"""Private keys sealed at rest (AES-256-GCM) for storages shared through a database.

The key never enters the database: it comes from ``[storage] key_file`` (32 random bytes in
base64, as ``openssl rand -base64 32`` writes them; the file must be 0600) or from
``$ACMEALI_STORAGE_KEY``. Each sealed value carries the key's id (a hash of the key, which
reveals nothing about it) so a host with the wrong key says so instead of "bad tag", and
the associated data names the row (``version:<lineage>:<N>``) so a sealed key copied onto
another row fails to open. A database dump alone therefore holds no usable private key.

``cryptography`` is imported only when a key is sealed or opened.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from acmeali.errors import StoreError

KEY_ENV = "ACMEALI_STORAGE_KEY"
_NONCE = 12
_HINT = ("make one with `openssl rand -base64 32 > /etc/acmeali/storage.key && "
         "chmod 600 /etc/acmeali/storage.key`, the same file on every host, and set "
         "[storage] key_file (or $ACMEALI_STORAGE_KEY)")


@dataclass(frozen=True)
class SealingKey:
    """A 32-byte AES-GCM key and its public id."""

    key: bytes = field(repr=False)
    source: str

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"acmeali storage key id\0" + self.key).hexdigest()[:16]

    def seal(self, plaintext: bytes, aad: str) -> bytes:
        """nonce || ciphertext+tag."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(_NONCE)
        return nonce + AESGCM(self.key).encrypt(nonce, plaintext, aad.encode())

    def open(self, sealed: bytes, aad: str, key_id: str, what: str) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if key_id != self.key_id:
            raise StoreError(f"{what} is sealed with storage key {key_id}, but this host's key "
                             f"({self.source}) is {self.key_id}",
                             hint="the key was rotated or differs between hosts: install the "
                                  "key file every other host uses")
        try:
            return AESGCM(self.key).decrypt(bytes(sealed[:_NONCE]), bytes(sealed[_NONCE:]),
                                            aad.encode())
        except InvalidTag:
            raise StoreError(f"{what} does not decrypt with storage key {key_id}: the row was "
                             "altered or copied from another row",
                             hint="restore it from a backup, or re-issue the certificate"
                             ) from None


def parse_key(text: bytes, source: str) -> SealingKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise StoreError(f"{source} does not hold 32 bytes in base64", hint=_HINT)
    return SealingKey(raw, source)


def load_key_file(path: str | Path) -> SealingKey:
    """Read a key file, refusing one that others could read (it unlocks every key)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise StoreError(f"storage key file {path}: {exc.strerror}", hint=_HINT) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"storage key file {path} is not a regular file", hint=_HINT)
        if st.st_mode & 0o077:
            raise StoreError(f"storage key file {path} is readable by others "
                             f"(mode {stat.S_IMODE(st.st_mode):04o})",
                             hint=f"chmod 600 {path}")
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    return parse_key(data, f"storage key file {path}")


def load_sealing_key(key_file: str | None) -> SealingKey:
    """``[storage] key_file`` first (config outranks environment), else the variable."""
    if key_file:
        return load_key_file(key_file)
    env = os.environ.get(KEY_ENV)
    if env:
        return parse_key(env.encode(), f"${KEY_ENV}")
    raise StoreError("no storage key: a shared storage keeps private keys encrypted and "
                     "needs one", hint=_HINT)
