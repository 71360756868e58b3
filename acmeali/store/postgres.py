"""The PostgreSQL backend: one database shared by a fleet of hosts (ApsaraDB RDS, PolarDB).

Chosen by ``[storage] backend = "postgresql"`` and imported only then (psycopg 3 is an
optional extra: ``pip install 'acmeali[postgresql]'``). Why it is built this way:

- **Schema owned by acmeali, versioned.** ``acmeali_schema_version`` records what has been
  applied; the first use (or ``acmeali storage init``) creates or upgrades it under a
  transaction-level advisory lock, so two hosts starting at once cannot both migrate. A
  database whose schema is newer than this acmeali is refused: an older host must not
  write rows it does not understand.
- **Locks are session advisory locks** (``pg_try_advisory_lock``), each on its own
  connection that does nothing else, so the server drops the lock the moment the holder's
  session ends (kill -9, a crashed host, a cut network once TCP notices). Never waiting:
  the caller skips a lineage another host holds and says who holds it.
- **A forced run is joined, not timed.** Hosts that start ``renew --force`` while another
  host's forced run is in progress (it holds the run's shared advisory lock) join that run
  and share its id, so each lineage is renewed once by the fleet, whatever the hosts'
  clocks say and however late a host's process got going.
- **A version is one transaction** (four PEMs and the sealed key in one row), so a
  half-written version is never visible; making it current is one UPDATE.
- **Private keys are sealed** with AES-256-GCM (``store.sealing``) under a key that never
  enters the database; the associated data binds each sealed key to its row.
- **Database trouble is one line.** Connection loss, a restart, a failover, a read-only
  replica, a serialization failure: every psycopg error becomes a ``StoreError`` naming
  the server (never the password) and what to do. What is safe to repeat is repeated: every
  operation here is idempotent (writing a version whose certificate is already the newest
  returns that version), so a statement cut off by a restart runs again on a new connection.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg import errors as pgerrors

from acmeali.errors import LockHeld, StoreError
from acmeali.lineage import LineageMeta
from acmeali.store.base import LiveBundle
from acmeali.store.sealing import SealingKey, load_sealing_key
from acmeali.store.seam import BundleFiles, Listed, SharedStorage

if TYPE_CHECKING:
    from acmeali.config import StorageSettings

T = TypeVar("T")
SCHEMA_VERSION = 2
_INIT_LOCK = -0x61636D65616C69  # "acmeali" as a number: serialises schema changes
_CONNECT_RETRY = 8.0  # seconds to keep reconnecting (rides out a restart or a failover)
_TRANSIENT_ATTEMPTS = 10  # serialization failures / deadlocks retried this often
_POLL = 0.2  # seconds between lock attempts when a caller chose to wait
# A lock session whose host went silent is dropped by the server after about 60 s.
_KEEPALIVES = ("SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; "
               "SET tcp_keepalives_count = 3")

# One list of statements per schema version; never edit an applied one, append a new one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE acmeali_accounts (
             server text PRIMARY KEY,
             record jsonb NOT NULL,
             key_id text NOT NULL,
             key_sealed bytea NOT NULL,
             updated_at timestamptz NOT NULL DEFAULT now())""",
        """CREATE TABLE acmeali_lineages (
             name text PRIMARY KEY,
             meta jsonb,
             current_version integer,
             pending_key_id text,
             pending_key_sealed bytea,
             updated_at timestamptz NOT NULL DEFAULT now())""",
        """CREATE TABLE acmeali_versions (
             lineage text NOT NULL,
             version integer NOT NULL CHECK (version > 0),
             cert bytea NOT NULL,
             chain bytea NOT NULL,
             fullchain bytea NOT NULL,
             key_id text,
             key_sealed bytea,
             created_at timestamptz NOT NULL DEFAULT now(),
             PRIMARY KEY (lineage, version))""",
    ),
    # The run hosts join (``join_run``): its id, while some host holds the run's shared lock.
    2: (
        """CREATE TABLE acmeali_runs (
             kind text PRIMARY KEY,
             run_id text NOT NULL,
             started_at timestamptz NOT NULL DEFAULT now(),
             started_by text)""",
    ),
}
_SCHEMA_TABLE = """CREATE TABLE IF NOT EXISTS acmeali_schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    applied_by text)"""


def _aad_version(name: str, version: int) -> str:
    return f"acmeali:version:{name}:{version}"


def _aad_pending(name: str) -> str:
    return f"acmeali:pending:{name}"


def _aad_account(server: str) -> str:
    return f"acmeali:account:{server}"


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for a lock name (collisions: 2**-64)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, person=b"acmeali-lock").digest()
    return int.from_bytes(digest, "big", signed=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class PostgresStorage:
    """``SharedStorage`` + ``Locker`` on one PostgreSQL database."""

    backend = "postgresql"

    def __init__(self, dsn: str, *, key_file: str | None = None,
                 sealing_key: SealingKey | None = None,
                 connect_retry: float = _CONNECT_RETRY) -> None:
        self._dsn = dsn
        self._key_file = key_file
        self._key = sealing_key
        self._connect_retry = connect_retry
        self._mu = threading.Lock()
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock_idle: list[psycopg.Connection[Any]] = []
        self._held: dict[str, psycopg.Connection[Any]] = {}  # lock name -> its session
        self._schema_ok = False
        self._app = f"acmeali {socket.gethostname()} pid {os.getpid()}"[:63]

    # ------------------------------------------------------------------ plumbing
    def describe(self) -> str:
        """``PostgreSQL user@host:port/dbname`` from the DSN or libpq's variables."""
        try:
            info = psycopg.conninfo.conninfo_to_dict(self._dsn)
        except psycopg.Error:
            return "PostgreSQL (unparsable dsn)"

        def part(key: str, env: str, default: str) -> str:
            return str(info.get(key) or os.environ.get(env) or default)

        host = part("host", "PGHOST", "localhost")
        if "service" in info or os.environ.get("PGSERVICE"):
            return f"PostgreSQL service {part('service', 'PGSERVICE', '')}"
        return (f"PostgreSQL {part('user', 'PGUSER', 'default user')}@{host}:"
                f"{part('port', 'PGPORT', '5432')}/{part('dbname', 'PGDATABASE', 'default db')}")

    @property
    def sealing_key(self) -> SealingKey:
        if self._key is None:
            self._key = load_sealing_key(self._key_file)
        return self._key

    def _connect(self) -> psycopg.Connection[Any]:
        deadline = time.monotonic() + self._connect_retry
        delay = 0.1
        while True:
            try:
                return psycopg.connect(self._dsn, autocommit=True, application_name=self._app,
                                       connect_timeout=10)
            except psycopg.OperationalError as exc:
                if time.monotonic() + delay > deadline:
                    raise StoreError(f"cannot reach {self.describe()}: {_first_line(exc)}",
                                     hint="check [storage] dsn and that the database accepts "
                                          "connections from this host; nothing was changed"
                                     ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _take(self, pool: list[psycopg.Connection[Any]]) -> psycopg.Connection[Any]:
        with self._mu:
            while pool:
                conn = pool.pop()
                if not conn.closed:
                    return conn
        conn = self._connect()
        if pool is self._lock_idle:
            # The server must notice a holder that vanished from the network (not only one
            # that died: its kernel closes the socket), or the lock outlives it for hours of
            # default TCP timeouts. These are per-session settings any user may make.
            try:
                conn.execute(_KEEPALIVES)
            except psycopg.Error as exc:
                with contextlib.suppress(Exception):
                    conn.close()
                raise self._error("setting up a lock session", exc) from None
        return conn

    def _give(self, pool: list[psycopg.Connection[Any]], conn: psycopg.Connection[Any]) -> None:
        if conn.closed or conn.broken:
            with contextlib.suppress(Exception):
                conn.close()
            return
        with self._mu:
            pool.append(conn)

    def close(self) -> None:
        with self._mu:
            conns, self._idle, self._lock_idle = self._idle + self._lock_idle, [], []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()

    def _error(self, what: str, exc: psycopg.Error) -> StoreError:
        where = self.describe()
        if isinstance(exc, pgerrors.ReadOnlySqlTransaction):
            return StoreError(f"{what}: {where} is read-only ({_first_line(exc)})",
                              hint="point [storage] dsn at the primary, not a replica "
                                   "(libpq: target_session_attrs=read-write)")
        if isinstance(exc, pgerrors.InsufficientPrivilege):
            return StoreError(f"{what}: {where}: {_first_line(exc)}",
                              hint="grant acmeali's database user rights on its tables "
                                   "(see docs/fleet.md)")
        if isinstance(exc, psycopg.OperationalError):
            return StoreError(f"{what}: lost {where}: {_first_line(exc)}",
                              hint="the database restarted or is unreachable; run again when "
                                   "it is back (nothing half-written is visible)")
        return StoreError(f"{what}: {where}: {_first_line(exc)}")

    def _run(self, what: str, fn: Callable[[psycopg.Connection[Any]], T], *,
             schema: bool = True) -> T:
        """Run ``fn`` in one transaction; repeat it after a lost connection or a conflict.

        Every ``fn`` given here is idempotent, so running it again is safe even when the
        connection died during COMMIT and we cannot know whether it committed.
        """
        if schema and not self._schema_ok:
            self.ensure_schema()
        lost = transient = 0
        while True:
            conn = self._take(self._idle)
            try:
                with conn.transaction():
                    return fn(conn)
            except (pgerrors.SerializationFailure, pgerrors.DeadlockDetected,
                    pgerrors.UniqueViolation) as exc:
                transient += 1
                if transient >= _TRANSIENT_ATTEMPTS:
                    raise self._error(what, exc) from None
                time.sleep(random.uniform(0.01, 0.05) * transient)  # noqa: S311 - jitter
            except psycopg.OperationalError as exc:
                if not (conn.broken or conn.closed) or lost >= 2:
                    raise self._error(what, exc) from None
                lost += 1  # a restart or failover cut the session: again, on a new one
            except psycopg.Error as exc:
                raise self._error(what, exc) from None
            finally:
                self._give(self._idle, conn)

    # ------------------------------------------------------------------ schema
    def schema_version(self) -> int | None:
        """The applied schema version, None when acmeali's tables are not there yet."""
        def read(conn: psycopg.Connection[Any]) -> int | None:
            exists = conn.execute(
                "SELECT to_regclass('acmeali_schema_version') IS NOT NULL").fetchone()
            if not exists or not exists[0]:
                return None
            row = conn.execute("SELECT max(version) FROM acmeali_schema_version").fetchone()
            return int(row[0]) if row and row[0] is not None else 0
        return self._run("reading the schema version", read, schema=False)

    def _check_newer(self, version: int | None) -> None:
        if version is not None and version > SCHEMA_VERSION:
            raise StoreError(f"{self.describe()} has acmeali schema version {version}, newer "
                             f"than this acmeali understands ({SCHEMA_VERSION})",
                             hint="upgrade acmeali on this host to the version the other "
                                  "hosts run")

    def ensure_schema(self) -> None:
        """Check the schema (one query); create or upgrade it only when needed."""
        version = self.schema_version()
        self._check_newer(version)
        if version != SCHEMA_VERSION:
            self.init_schema()
        self._schema_ok = True

    def init_schema(self) -> tuple[int, int]:
        """Create or upgrade the schema; (version before, version now). Idempotent."""
        def migrate(conn: psycopg.Connection[Any]) -> tuple[int, int]:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INIT_LOCK,))
            conn.execute(_SCHEMA_TABLE)
            row = conn.execute("SELECT max(version) FROM acmeali_schema_version").fetchone()
            before = int(row[0]) if row and row[0] is not None else 0
            self._check_newer(before)
            for v in range(before + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[v]:
                    conn.execute(statement)  # constants above, never user input
                conn.execute("INSERT INTO acmeali_schema_version (version, applied_by) "
                             "VALUES (%s, %s)", (v, self._app))
            return before, SCHEMA_VERSION
        result = self._run("creating the schema", migrate, schema=False)
        self._schema_ok = True
        return result

    # ------------------------------------------------------------------ locks
    @contextlib.contextmanager
    def lock(self, name: str, *, wait: float | None = 0.0) -> Iterator[None]:
        """A session advisory lock on a connection of its own (released if we die)."""
        key = lock_key(name)
        deadline = None if wait is None else time.monotonic() + max(0.0, wait)
        conn = self._take(self._lock_idle)
        lost = 0
        try:
            while True:
                try:
                    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                except psycopg.OperationalError:
                    if not conn.broken or lost >= 2:
                        raise
                    lost += 1  # an idle connection the server dropped (restart): a new one
                    self._give(self._lock_idle, conn)
                    conn = self._take(self._lock_idle)
                    continue
                if row and row[0]:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    holder = self._holder(conn, key)
                    raise LockHeld(f"lock {name!r} is held by {holder} on {self.describe()}",
                                   hint="another host or run is working on it; it is released "
                                        "when that run ends or its connection dies")
                time.sleep(_POLL)
        except psycopg.Error as exc:
            self._give(self._lock_idle, conn)
            raise self._error(f"taking lock {name!r}", exc) from None
        except BaseException:
            self._give(self._lock_idle, conn)
            raise
        with self._mu:
            self._held[name] = conn
        try:
            yield
        finally:
            with self._mu:
                conn = self._held.pop(name, conn)  # reassert_lock may have moved it
            self._unlock(conn, "SELECT pg_advisory_unlock(%s)", key)

    def _unlock(self, conn: psycopg.Connection[Any], statement: str, key: int) -> None:
        """Release a session lock and return its connection to the lock pool."""
        try:
            conn.execute(statement, (key,))
        except psycopg.Error:
            with contextlib.suppress(Exception):
                conn.close()  # a dead session holds nothing: the server released it
        self._give(self._lock_idle, conn)

    @contextlib.contextmanager
    def join_run(self, kind: str) -> Iterator[str]:
        """The id of the run of ``kind`` in progress on any host, joined; else a new run.

        In progress means some session holds the run's shared advisory lock; this one takes
        it too, on a session of its own, until the run ends (or the session dies). Who is
        in progress and which id it has are read and written under a transaction-level
        lock, so two hosts starting at the same instant still end up in one run.
        """
        if not self._schema_ok:
            self.ensure_schema()
        active = lock_key(f"run:{kind}")
        conn = self._take(self._lock_idle)
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(f"run-join:{kind}"),))
                alone = conn.execute("SELECT pg_try_advisory_lock(%s)", (active,)).fetchone()
                row = None
                if not (alone and alone[0]):
                    row = conn.execute("SELECT run_id FROM acmeali_runs WHERE kind = %s",
                                       (kind,)).fetchone()
                if row:
                    run_id = str(row[0])
                else:
                    if alone and alone[0]:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (active,))
                    run_id = secrets.token_hex(16)
                    conn.execute(
                        "INSERT INTO acmeali_runs (kind, run_id, started_by) VALUES (%s, %s, %s) "
                        "ON CONFLICT (kind) DO UPDATE SET run_id = EXCLUDED.run_id, "
                        "started_at = now(), started_by = EXCLUDED.started_by",
                        (kind, run_id, self._app))
                conn.execute("SELECT pg_advisory_lock_shared(%s)", (active,))
        except psycopg.Error as exc:
            with contextlib.suppress(Exception):
                conn.close()  # a half-joined session must not keep holding anything
            self._give(self._lock_idle, conn)
            raise self._error(f"joining the {kind} run", exc) from None
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            self._give(self._lock_idle, conn)
            raise
        try:
            yield run_id
        finally:
            self._unlock(conn, "SELECT pg_advisory_unlock_shared(%s)", active)

    def reassert_lock(self, name: str) -> bool:
        """True when this process still holds lock ``name`` (taken again if it was lost).

        A session advisory lock dies with its session (a restart, a failover) and the
        holder is not told. Checked on the lock's own session; if that session is gone the
        lock is tried once on a new one. False: another session has it now.
        """
        key = lock_key(name)
        unsigned = key & 0xFFFFFFFFFFFFFFFF
        with self._mu:
            conn = self._held.get(name)
        if conn is None:
            return False
        try:
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND objsubid = 1 AND classid::bigint = %s "
                "AND objid::bigint = %s", (unsigned >> 32, unsigned & 0xFFFFFFFF)).fetchone()
            if row and row[0]:
                return True
        except psycopg.Error:
            with contextlib.suppress(Exception):
                conn.close()
        try:
            fresh = self._take(self._lock_idle)
        except StoreError:
            return False
        try:
            row = fresh.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        except psycopg.Error:
            self._give(self._lock_idle, fresh)
            return False
        if not (row and row[0]):
            self._give(self._lock_idle, fresh)
            return False
        with self._mu:
            self._held[name] = fresh
        return True

    @staticmethod
    def _holder(conn: psycopg.Connection[Any], key: int) -> str:
        unsigned = key & 0xFFFFFFFFFFFFFFFF
        try:
            row = conn.execute(
                "SELECT a.application_name, a.client_addr::text, a.pid FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                "AND l.granted AND l.objsubid = 1 AND l.classid::bigint = %s "
                "AND l.objid::bigint = %s LIMIT 1", (unsigned >> 32, unsigned & 0xFFFFFFFF)
            ).fetchone()
        except psycopg.Error:
            return "another session"
        if not row:
            return "another session"
        app, addr, pid = row
        who = app or "a session"
        return f"{who} (backend pid {pid}{', ' + addr if addr else ''})"

    # ------------------------------------------------------------------ accounts
    def account_servers(self) -> list[str]:
        return self._run("listing accounts", lambda c: [
            r[0] for r in c.execute("SELECT server FROM acmeali_accounts ORDER BY server")])

    def load_account(self, server: str) -> tuple[dict[str, Any], bytes] | None:
        row = self._run("reading an account", lambda c: c.execute(
            "SELECT record, key_id, key_sealed FROM acmeali_accounts WHERE server = %s",
            (server,)).fetchone())
        if row is None:
            return None
        record, key_id, sealed = row
        key = self.sealing_key.open(sealed, _aad_account(server), key_id,
                                    f"the account key for {server}")
        return dict(record), key

    def save_account(self, server: str, record: dict[str, Any], key_pem: bytes | None) -> None:
        data = json.dumps(record, sort_keys=True)
        if key_pem is None:
            def update(c: psycopg.Connection[Any]) -> int:
                return c.execute("UPDATE acmeali_accounts SET record = %s::jsonb, "
                                 "updated_at = now() WHERE server = %s", (data, server)).rowcount
            if self._run("saving an account", update) == 0:
                raise StoreError(f"no account key stored for {server} in {self.describe()}; "
                                 "cannot save the record alone")
            return
        k = self.sealing_key
        sealed = k.seal(key_pem, _aad_account(server))
        self._run("saving an account", lambda c: c.execute(
            "INSERT INTO acmeali_accounts (server, record, key_id, key_sealed) "
            "VALUES (%s, %s::jsonb, %s, %s) ON CONFLICT (server) DO UPDATE SET "
            "record = EXCLUDED.record, key_id = EXCLUDED.key_id, "
            "key_sealed = EXCLUDED.key_sealed, updated_at = now()",
            (server, data, k.key_id, sealed)))

    # ------------------------------------------------------------------ records
    def lineage_names(self) -> list[str]:
        return self._run("listing lineages", lambda c: [r[0] for r in c.execute(
            "SELECT name FROM acmeali_lineages WHERE meta IS NOT NULL ORDER BY name")])

    def load_meta(self, name: str) -> LineageMeta:
        row = self._run("reading a lineage", lambda c: c.execute(
            "SELECT meta FROM acmeali_lineages WHERE name = %s AND meta IS NOT NULL",
            (name,)).fetchone())
        if row is None:
            raise StoreError(f"lineage {name!r}: no record in {self.describe()}",
                             hint="list lineages with `acmeali certs list`")
        meta = self._parse_meta(name, row[0])
        if isinstance(meta, StoreError):
            raise meta
        return meta

    def _parse_meta(self, name: str, raw: Any) -> LineageMeta | StoreError:
        try:
            return LineageMeta.from_json(raw)
        except (TypeError, AttributeError, ValueError):
            return StoreError(f"lineage {name!r}: its record in {self.describe()} is corrupt",
                              hint="restore it from a backup, or re-issue with `acmeali issue`")

    def lineage_records(self) -> dict[str, Listed]:
        """Every record with its current version in one query (what `renew` reads)."""
        rows = self._run("listing lineages", lambda c: c.execute(
            "SELECT name, meta, current_version FROM acmeali_lineages "
            "WHERE meta IS NOT NULL ORDER BY name").fetchall())
        return {name: Listed(self._parse_meta(name, raw), current)
                for name, raw, current in rows}

    def save_meta(self, meta: LineageMeta) -> None:
        data = json.dumps(meta.to_json(), sort_keys=True)
        self._run("saving a lineage", lambda c: c.execute(
            "INSERT INTO acmeali_lineages (name, meta) VALUES (%s, %s::jsonb) "
            "ON CONFLICT (name) DO UPDATE SET meta = EXCLUDED.meta, updated_at = now()",
            (meta.name, data)))

    # ------------------------------------------------------------------ versions
    def versions(self, name: str) -> list[int]:
        return self._run("listing versions", lambda c: [int(r[0]) for r in c.execute(
            "SELECT version FROM acmeali_versions WHERE lineage = %s ORDER BY version",
            (name,))])

    def write_version(self, name: str, files: BundleFiles, *, version: int | None = None) -> int:
        if not files.cert or not files.fullchain:
            raise StoreError(f"lineage {name!r}: refusing to store a version without a "
                             "certificate")
        k = self.sealing_key if files.privkey else None

        def write(c: psycopg.Connection[Any]) -> int:
            # The lineage row is the version counter's lock: writers of one lineage queue.
            c.execute("INSERT INTO acmeali_lineages (name) VALUES (%s) ON CONFLICT DO NOTHING",
                      (name,))
            c.execute("SELECT 1 FROM acmeali_lineages WHERE name = %s FOR UPDATE", (name,))
            newest = c.execute(
                "SELECT version, cert FROM acmeali_versions WHERE lineage = %s "
                "ORDER BY version DESC LIMIT 1", (name,)).fetchone()
            if version is None:
                if newest is not None and bytes(newest[1]) == files.cert:
                    return int(newest[0])  # this very certificate: a repeat after a lost COMMIT
                number = (int(newest[0]) if newest else 0) + 1
            else:
                same = c.execute("SELECT cert FROM acmeali_versions WHERE lineage = %s AND "
                                 "version = %s", (name, version)).fetchone()
                if same is not None:
                    if bytes(same[0]) == files.cert:
                        return version
                    raise StoreError(f"lineage {name!r}: version {version} exists already in "
                                     f"{self.describe()}")
                number = version
            sealed = k.seal(files.privkey, _aad_version(name, number)) if k else None
            c.execute("INSERT INTO acmeali_versions (lineage, version, cert, chain, fullchain, "
                      "key_id, key_sealed) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                      (name, number, files.cert, files.chain, files.fullchain,
                       k.key_id if k else None, sealed))
            return number
        return self._run(f"storing a version of {name!r}", write)

    def _bundle(self, name: str, row: tuple[Any, ...] | None, what: str) -> LiveBundle:
        if row is None:
            raise StoreError(f"lineage {name!r}: {what} is not in {self.describe()}",
                             hint="issue it with `acmeali issue`")
        version, cert, chain, fullchain, key_id, sealed = row
        privkey = b""
        if sealed is not None:
            privkey = self.sealing_key.open(sealed, _aad_version(name, int(version)), key_id,
                                            f"the key of {name!r} version {version}")
        return LiveBundle(privkey=privkey, cert=bytes(cert), chain=bytes(chain),
                          fullchain=bytes(fullchain), version=int(version))

    def read_version(self, name: str, version: int) -> LiveBundle:
        row = self._run("reading a version", lambda c: c.execute(
            "SELECT version, cert, chain, fullchain, key_id, key_sealed FROM acmeali_versions "
            "WHERE lineage = %s AND version = %s", (name, version)).fetchone())
        return self._bundle(name, row, f"version {version}")

    def activate(self, name: str, version: int) -> None:
        def switch(c: psycopg.Connection[Any]) -> None:
            found = c.execute("SELECT 1 FROM acmeali_versions WHERE lineage = %s AND "
                              "version = %s", (name, version)).fetchone()
            if found is None:
                raise StoreError(f"lineage {name!r}: version {version} is not stored; "
                                 "refusing to make it current")
            c.execute("INSERT INTO acmeali_lineages (name, current_version) VALUES (%s, %s) "
                      "ON CONFLICT (name) DO UPDATE SET current_version = EXCLUDED."
                      "current_version, updated_at = now()", (name, version))
        self._run(f"switching {name!r}", switch)

    def current_version(self, name: str) -> int | None:
        row = self._run("reading a lineage", lambda c: c.execute(
            "SELECT current_version FROM acmeali_lineages WHERE name = %s", (name,)).fetchone())
        return int(row[0]) if row and row[0] is not None else None

    def current_versions(self) -> dict[str, int]:
        """Every lineage's current version in one query (what `sync` compares)."""
        rows = self._run("reading lineages", lambda c: c.execute(
            "SELECT name, current_version FROM acmeali_lineages "
            "WHERE current_version IS NOT NULL").fetchall())
        return {r[0]: int(r[1]) for r in rows}

    def read_current(self, name: str) -> LiveBundle:
        row = self._run("reading the current version", lambda c: c.execute(
            "SELECT v.version, v.cert, v.chain, v.fullchain, v.key_id, v.key_sealed "
            "FROM acmeali_lineages l JOIN acmeali_versions v ON v.lineage = l.name "
            "AND v.version = l.current_version WHERE l.name = %s", (name,)).fetchone())
        return self._bundle(name, row, "a current version")

    def prune(self, name: str, keep: int) -> None:
        self._run(f"pruning {name!r}", lambda c: c.execute(
            "DELETE FROM acmeali_versions v WHERE v.lineage = %s "
            "AND v.version IS DISTINCT FROM (SELECT current_version FROM acmeali_lineages "
            "WHERE name = %s) AND v.version NOT IN (SELECT version FROM acmeali_versions "
            "WHERE lineage = %s ORDER BY version DESC LIMIT %s)",
            (name, name, name, max(1, keep))))

    # ------------------------------------------------------------------ pending key
    def put_pending_key(self, name: str, key_pem: bytes) -> None:
        k = self.sealing_key
        sealed = k.seal(key_pem, _aad_pending(name))
        self._run("storing a pending key", lambda c: c.execute(
            "INSERT INTO acmeali_lineages (name, pending_key_id, pending_key_sealed) "
            "VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE SET pending_key_id = "
            "EXCLUDED.pending_key_id, pending_key_sealed = EXCLUDED.pending_key_sealed, "
            "updated_at = now()", (name, k.key_id, sealed)))

    def pending_key(self, name: str) -> bytes | None:
        row = self._run("reading a pending key", lambda c: c.execute(
            "SELECT pending_key_id, pending_key_sealed FROM acmeali_lineages WHERE name = %s",
            (name,)).fetchone())
        if row is None or row[1] is None:
            return None
        return self.sealing_key.open(row[1], _aad_pending(name), row[0],
                                     f"the pending key of {name!r}")

    def drop_pending_key(self, name: str) -> None:
        self._run("dropping a pending key", lambda c: c.execute(
            "UPDATE acmeali_lineages SET pending_key_id = NULL, pending_key_sealed = NULL "
            "WHERE name = %s AND pending_key_sealed IS NOT NULL", (name,)))

    def delete_lineage(self, name: str) -> None:
        def delete(c: psycopg.Connection[Any]) -> None:
            c.execute("DELETE FROM acmeali_versions WHERE lineage = %s", (name,))
            c.execute("DELETE FROM acmeali_lineages WHERE name = %s", (name,))
        self._run(f"deleting {name!r}", delete)

    # ------------------------------------------------------------------ key rotation
    def rotate_key(self, new: SealingKey) -> int:
        """Re-seal every private key under ``new`` in one transaction; how many."""
        old = self.sealing_key

        def rotate(c: psycopg.Connection[Any]) -> int:
            count = 0
            for server, key_id, sealed in c.execute(
                    "SELECT server, key_id, key_sealed FROM acmeali_accounts FOR UPDATE"
            ).fetchall():
                aad = _aad_account(server)
                plain = old.open(sealed, aad, key_id, f"the account key for {server}")
                c.execute("UPDATE acmeali_accounts SET key_id = %s, key_sealed = %s "
                          "WHERE server = %s", (new.key_id, new.seal(plain, aad), server))
                count += 1
            for lineage, version, key_id, sealed in c.execute(
                    "SELECT lineage, version, key_id, key_sealed FROM acmeali_versions "
                    "WHERE key_sealed IS NOT NULL FOR UPDATE").fetchall():
                aad = _aad_version(lineage, int(version))
                plain = old.open(sealed, aad, key_id, f"the key of {lineage!r} version {version}")
                c.execute("UPDATE acmeali_versions SET key_id = %s, key_sealed = %s WHERE "
                          "lineage = %s AND version = %s",
                          (new.key_id, new.seal(plain, aad), lineage, version))
                count += 1
            for name, key_id, sealed in c.execute(
                    "SELECT name, pending_key_id, pending_key_sealed FROM acmeali_lineages "
                    "WHERE pending_key_sealed IS NOT NULL FOR UPDATE").fetchall():
                aad = _aad_pending(name)
                plain = old.open(sealed, aad, key_id, f"the pending key of {name!r}")
                c.execute("UPDATE acmeali_lineages SET pending_key_id = %s, "
                          "pending_key_sealed = %s WHERE name = %s",
                          (new.key_id, new.seal(plain, aad), name))
                count += 1
            return count
        count = self._run("re-encrypting private keys", rotate)
        self._key = new
        return count

    def check_key(self) -> bool:
        """Open one stored private key with this host's key (StoreError if it does not);
        False when no private key is stored yet."""
        row = self._run("reading a sealed key", lambda c: c.execute(
            "SELECT 'account', server, 0, key_id, key_sealed FROM acmeali_accounts "
            "UNION ALL (SELECT 'version', lineage, version, key_id, key_sealed "
            "FROM acmeali_versions WHERE key_sealed IS NOT NULL) LIMIT 1").fetchone())
        key = self.sealing_key
        if row is None:
            return False
        kind, name, version, key_id, sealed = row
        if kind == "account":
            key.open(sealed, _aad_account(name), key_id, f"the account key for {name}")
        else:
            key.open(sealed, _aad_version(name, int(version)), key_id,
                     f"the key of {name!r} version {version}")
        return True

    def counts(self) -> dict[str, int]:
        """Rows per kind, for ``storage status``."""
        def count(c: psycopg.Connection[Any]) -> dict[str, int]:
            row = c.execute(
                "SELECT (SELECT count(*) FROM acmeali_accounts), "
                "(SELECT count(*) FROM acmeali_lineages WHERE meta IS NOT NULL), "
                "(SELECT count(*) FROM acmeali_versions)").fetchone()
            assert row is not None
            return {"accounts": int(row[0]), "lineages": int(row[1]), "versions": int(row[2])}
        return self._run("counting rows", count)


def open_postgres_storage(settings: StorageSettings, state_dir: Path) -> PostgresStorage:
    """From ``[storage]``: ``dsn`` (else libpq's PG* variables / service file), ``key_file``."""
    return PostgresStorage(settings.dsn or "", key_file=settings.key_file)


def _conforms(store: PostgresStorage) -> SharedStorage:
    return store  # never called: mypy checks here that the backend implements the protocol
