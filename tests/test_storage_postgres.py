"""The PostgreSQL backend against a real PostgreSQL: sealed keys, key files and rotation,
the versioned schema, and database trouble (unreachable, read-only, restarted mid-run).

The contract every backend shares is in test_storage_contract.py; this file holds what only
a database can get wrong.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from acmeali.errors import LockHeld, StoreError
from acmeali.store.postgres import SCHEMA_VERSION, PostgresStorage
from acmeali.store.sealing import SealingKey, load_key_file, load_sealing_key, parse_key
from acmeali.store.seam import BundleFiles
from tests.conftest import run_acmeali
from tests.peers.pebble import free_port
from tests.peers.postgres import Postgres
from tests.test_storage_contract import SERVER, make_bundle, make_meta, random_key_b64


def key_file(path: Path, mode: int = 0o600) -> Path:
    path.write_bytes(random_key_b64() + b"\n")
    path.chmod(mode)
    return path


@pytest.fixture
def skey() -> SealingKey:
    return parse_key(random_key_b64(), "test key")


@pytest.fixture
def store(pg_dsn: str, skey: SealingKey) -> Iterator[PostgresStorage]:
    s = PostgresStorage(pg_dsn, sealing_key=skey)
    yield s
    s.close()


def dbname(dsn: str) -> str:
    m = re.search(r"dbname=(\S+)", dsn)
    assert m
    return m.group(1)


def sql(dsn: str, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def der_of(pem: bytes) -> bytes:
    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    return base64.b64decode(body)


def forms(data: bytes, *, pem: bool = True) -> list[bytes]:
    """How bytes can show in a dump or a SELECT: raw, hex (bytea), base64; for a PEM also
    its DER in hex and its first base64 line."""
    out = [data, data.hex().encode(), base64.b64encode(data)]
    if pem:
        der = der_of(data)
        out += [der.hex().encode(), data.split(b"\n")[1], base64.b64encode(der)[:40]]
    return out


def config(tmp_path: Path, dsn: str, key: Path | None) -> Path:
    path = tmp_path / "acmeali.toml"
    lines = ["[storage]", 'backend = "postgresql"', f'dsn = "{dsn}"']
    if key is not None:
        lines.append(f'key_file = "{key}"')
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------- sealing


def test_a_dump_of_the_database_reveals_no_private_key(postgres: Postgres, pg_dsn: str,
                                                        store: PostgresStorage) -> None:
    bundle = make_bundle()
    account_key, pending = make_bundle().privkey, make_bundle().privkey
    store.save_account(SERVER, {"url": "https://ca.example.test/acct/1", "server": SERVER},
                       account_key)
    store.save_meta(make_meta("example.test"))
    store.activate("example.test", store.write_version("example.test", bundle))
    store.put_pending_key("example.test", pending)
    dump = postgres.pg_dump(dbname(pg_dsn))
    assert any(form in dump for form in forms(bundle.cert))  # the control: certs are there
    assert b"PRIVATE KEY" not in dump and b"PRIVATE KEY".hex().encode() not in dump
    for pem in (bundle.privkey, account_key, pending):
        assert not [form for form in forms(pem) if form in dump]
    for secret in forms(store.sealing_key.key, pem=False):
        assert secret not in dump
    # And read back through acmeali, every key is the original again.
    assert store.read_current("example.test").privkey == bundle.privkey
    assert store.pending_key("example.test") == pending


def test_a_sealed_key_is_bound_to_its_row(pg_dsn: str, store: PostgresStorage) -> None:
    """A sealed key copied onto another version (or lineage) does not open there."""
    store.write_version("example.test", make_bundle())
    store.write_version("example.test", make_bundle())
    sql(pg_dsn, "UPDATE acmeali_versions SET key_sealed = (SELECT key_sealed FROM "
                "acmeali_versions WHERE version = 1) WHERE version = 2")
    assert store.read_version("example.test", 1).privkey
    with pytest.raises(StoreError, match="altered or copied"):
        store.read_version("example.test", 2)


def test_another_hosts_key_is_named_not_guessed(pg_dsn: str, store: PostgresStorage) -> None:
    store.write_version("example.test", make_bundle())
    other = PostgresStorage(pg_dsn, sealing_key=parse_key(random_key_b64(), "other key"))
    try:
        with pytest.raises(StoreError) as caught:
            other.read_version("example.test", 1)
        assert store.sealing_key.key_id in caught.value.message
        assert other.sealing_key.key_id in caught.value.message
    finally:
        other.close()


def test_key_file_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = key_file(tmp_path / "good.key")
    assert len(load_key_file(good).key) == 32
    loose = key_file(tmp_path / "loose.key", 0o644)
    with pytest.raises(StoreError, match="readable by others"):
        load_key_file(loose)
    short = tmp_path / "short.key"
    short.write_bytes(base64.b64encode(os.urandom(16)))
    short.chmod(0o600)
    with pytest.raises(StoreError, match="32 bytes"):
        load_key_file(short)
    with pytest.raises(StoreError, match="no storage key"):
        load_sealing_key(None)
    env_key = random_key_b64()
    monkeypatch.setenv("ACMEALI_STORAGE_KEY", env_key.decode())
    assert load_sealing_key(None).key == base64.b64decode(env_key)
    assert load_sealing_key(str(good)).key == load_key_file(good).key  # the file outranks it
    assert "key=" not in repr(load_sealing_key(None))


def test_rotate_key_reseals_everything_in_one_go(tmp_path: Path, pg_dsn: str) -> None:
    old = key_file(tmp_path / "old.key")
    cfg = config(tmp_path, pg_dsn, old)
    store = PostgresStorage(pg_dsn, key_file=str(old))
    bundles = [make_bundle() for _ in range(3)]
    for b in bundles:
        store.write_version("example.test", b)
    account_key = make_bundle().privkey
    store.save_account(SERVER, {"url": "u", "server": SERVER}, account_key)
    store.put_pending_key("example.test", bundles[0].privkey)
    store.close()

    new = key_file(tmp_path / "new.key")
    r = run_acmeali("--config", str(cfg), "storage", "rotate-key", "--new-key-file", str(new))
    assert r.returncode == 0, r.stderr
    assert "Re-encrypted 5 private key(s)" in r.stdout
    after = PostgresStorage(pg_dsn, key_file=str(new))
    try:
        assert [after.read_version("example.test", v).privkey for v in (1, 2, 3)] == [
            b.privkey for b in bundles]
        assert after.load_account(SERVER) == ({"url": "u", "server": SERVER}, account_key)
        assert after.pending_key("example.test") == bundles[0].privkey
    finally:
        after.close()
    stale = PostgresStorage(pg_dsn, key_file=str(old))
    try:
        with pytest.raises(StoreError, match="sealed with storage key") as caught:
            stale.read_version("example.test", 1)
        assert caught.value.hint and "rotated" in caught.value.hint
    finally:
        stale.close()
    # The same key again, a loose key file: refused, nothing changed.
    r = run_acmeali("--config", str(config(tmp_path, pg_dsn, new)), "storage", "rotate-key",
                    "--new-key-file", str(new))
    assert r.returncode == 2 and "in use already" in r.stderr and "Traceback" not in r.stderr
    loose = key_file(tmp_path / "loose.key", 0o640)
    r = run_acmeali("--config", str(config(tmp_path, pg_dsn, new)), "storage", "rotate-key",
                    "--new-key-file", str(loose))
    assert r.returncode == 1 and "chmod 600" in r.stderr and "Traceback" not in r.stderr


def test_rotate_key_is_all_or_nothing(pg_dsn: str, store: PostgresStorage) -> None:
    """One unreadable row stops the rotation before any row is re-sealed."""
    store.write_version("a.example.test", make_bundle())
    store.write_version("b.example.test", make_bundle())
    sql(pg_dsn, "UPDATE acmeali_versions SET key_sealed = 'garbage-garbage-garbage'::bytea "
                "WHERE lineage = 'b.example.test'")
    with pytest.raises(StoreError):
        store.rotate_key(parse_key(random_key_b64(), "new"))
    ids = sql(pg_dsn, "SELECT DISTINCT key_id FROM acmeali_versions")
    assert ids == [(store.sealing_key.key_id,)]
    assert store.read_version("a.example.test", 1).privkey


# ---------------------------------------------------------------------------- schema


def test_storage_init_creates_then_reports_up_to_date(tmp_path: Path, pg_dsn: str) -> None:
    cfg = config(tmp_path, pg_dsn, None)
    r = run_acmeali("--config", str(cfg), "storage", "status")
    assert r.returncode == 0 and "no acmeali tables yet" in r.stdout, r.stderr
    r = run_acmeali("--config", str(cfg), "storage", "init")
    assert r.returncode == 0, r.stderr
    assert f"created acmeali's tables (schema version {SCHEMA_VERSION})" in r.stdout
    assert "dbname" not in r.stdout and "/t_" in r.stdout  # user@host:port/db, no raw DSN
    r = run_acmeali("--config", str(cfg), "storage", "init")
    assert r.returncode == 0 and "up to date" in r.stdout
    r = run_acmeali("--config", str(cfg), "storage", "status")
    assert r.returncode == 1 and "no storage key" in r.stderr  # status checks the key too
    key = key_file(tmp_path / "storage.key")
    cfg = config(tmp_path, pg_dsn, key)
    r = run_acmeali("--config", str(cfg), "storage", "status")
    assert r.returncode == 0 and "0 lineage(s)" in r.stdout, r.stderr
    assert "no private key stored yet" in r.stdout
    store = PostgresStorage(pg_dsn, key_file=str(key))
    store.write_version("example.test", make_bundle())
    store.close()
    r = run_acmeali("--config", str(cfg), "storage", "status")
    assert r.returncode == 0 and "1 version(s)" in r.stdout
    assert f"storage key {load_key_file(key).key_id}: opens the stored private keys" in r.stdout
    other = key_file(tmp_path / "other.key")
    r = run_acmeali("--config", str(config(tmp_path, pg_dsn, other)), "storage", "status")
    assert r.returncode == 1 and load_key_file(other).key_id in r.stderr
    assert "Traceback" not in r.stderr


def test_first_use_creates_the_schema(pg_dsn: str, store: PostgresStorage) -> None:
    assert store.lineage_names() == []
    assert sql(pg_dsn, "SELECT version FROM acmeali_schema_version ORDER BY version") == [
        (v,) for v in range(1, SCHEMA_VERSION + 1)]  # every step recorded


def test_an_older_schema_is_upgraded_in_place(pg_dsn: str) -> None:
    """A database a previous acmeali created (schema 1) gains what is new on first use,
    keeping its rows; the upgrade is recorded version by version."""
    from acmeali.store.postgres import MIGRATIONS

    statements = ["CREATE TABLE acmeali_schema_version (version integer PRIMARY KEY, "
                  "applied_at timestamptz NOT NULL DEFAULT now(), applied_by text)",
                  *MIGRATIONS[1], "INSERT INTO acmeali_schema_version (version) VALUES (1)",
                  "INSERT INTO acmeali_lineages (name, meta) VALUES ('old.example.test', '{}')"]
    for statement in statements:
        sql(pg_dsn, statement)
    store = PostgresStorage(pg_dsn, sealing_key=parse_key(random_key_b64(), "test key"))
    try:
        assert store.schema_version() == 1
        with store.join_run("renew-force") as run_id:  # needs version 2's table
            assert run_id
        assert store.lineage_names() == ["old.example.test"]
        versions = sql(pg_dsn, "SELECT version FROM acmeali_schema_version ORDER BY version")
        assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    finally:
        store.close()


def test_a_newer_schema_is_refused(tmp_path: Path, pg_dsn: str, store: PostgresStorage
                                   ) -> None:
    store.init_schema()
    sql(pg_dsn, "INSERT INTO acmeali_schema_version (version) VALUES (%s)",
        (SCHEMA_VERSION + 1,))
    fresh = PostgresStorage(pg_dsn, sealing_key=store.sealing_key)
    with pytest.raises(StoreError, match="newer than this acmeali"):
        fresh.lineage_names()
    fresh.close()
    r = run_acmeali("--config", str(config(tmp_path, pg_dsn, None)), "storage", "init")
    assert r.returncode == 1 and "newer than this acmeali" in r.stderr
    assert "upgrade acmeali" in r.stderr and "Traceback" not in r.stderr


def write_at_once(store: PostgresStorage, bundles: list[BundleFiles], *, timeout: float,
                  together: bool = False) -> tuple[list[int], list[BaseException]]:
    """Write each bundle as a version of ``example.test`` from a thread of its own
    (``together``: all released at the same instant); the numbers got and the errors."""
    numbers: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(bundles)) if together else None

    def write(b: BundleFiles) -> None:
        try:
            if barrier is not None:
                barrier.wait(timeout=30)
            numbers.append(store.write_version("example.test", b))
        except BaseException as exc:
            errors.append(exc)
    threads = [threading.Thread(target=write, args=(b,)) for b in bundles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    return numbers, errors


def test_concurrent_writers_get_distinct_versions(pg_dsn: str, store: PostgresStorage) -> None:
    store.init_schema()
    numbers, errors = write_at_once(store, [make_bundle() for _ in range(8)], timeout=60)
    assert not errors
    assert sorted(numbers) == list(range(1, 9))
    # Writing the newest certificate again (a retry after a lost COMMIT) returns its number.
    newest = store.read_version("example.test", 8)
    assert store.write_version("example.test", BundleFiles.of(newest)) == 8


def test_serialization_failures_are_retried(postgres: Postgres, pg_dsn: str,
                                            store: PostgresStorage) -> None:
    """Under SERIALIZABLE (a DBA's default on some installations) concurrent writers of
    one lineage really fail with 40001; each is retried and every version lands once."""
    store.init_schema()
    sql(pg_dsn, f"ALTER DATABASE {dbname(pg_dsn)} SET default_transaction_isolation = "
                "'serializable'")
    strict = PostgresStorage(pg_dsn, sealing_key=store.sealing_key)
    log_before = len(postgres.log_tail_bytes())
    numbers, errors = write_at_once(strict, [make_bundle() for _ in range(6)], timeout=120,
                                    together=True)
    strict.close()
    assert not errors, errors
    assert sorted(numbers) == list(range(1, 7))
    assert sql(pg_dsn, "SHOW default_transaction_isolation") == [("serializable",)]
    assert b"could not serialize access" in postgres.log_tail_bytes()[log_before:]


# ---------------------------------------------------------------------------- trouble


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    dsn = f"host=127.0.0.1 port={free_port()} user=acmeali password=s3cret dbname=fleet"
    store = PostgresStorage(dsn, sealing_key=parse_key(random_key_b64(), "k"),
                            connect_retry=0.5)
    with pytest.raises(StoreError) as caught:
        store.lineage_names()
    text = caught.value.render()
    assert "cannot reach PostgreSQL acmeali@127.0.0.1:" in text and "/fleet" in text
    assert "s3cret" not in text
    r = run_acmeali("--config", str(config(tmp_path, dsn, None)), "storage", "init")
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith("error: cannot reach PostgreSQL") or "cannot reach" in r.stderr
    assert "Traceback" not in r.stderr and "s3cret" not in r.stderr


def test_read_only_database_says_so(pg_dsn: str, store: PostgresStorage) -> None:
    store.save_meta(make_meta("example.test"))
    sql(pg_dsn, f"ALTER DATABASE {dbname(pg_dsn)} SET default_transaction_read_only = on")
    ro = PostgresStorage(pg_dsn, sealing_key=store.sealing_key)
    try:
        assert ro.lineage_names() == ["example.test"]  # reading is fine
        with pytest.raises(StoreError) as caught:
            ro.save_meta(make_meta("other.example.test"))
        assert "read-only" in caught.value.message
        assert "cannot execute INSERT in a read-only transaction" in caught.value.message
        assert caught.value.hint and "target_session_attrs=read-write" in caught.value.hint
    finally:
        ro.close()


def test_a_hot_standby_reads_and_refuses_writes_in_one_line(postgres: Postgres, pg_dsn: str,
                                                             store: PostgresStorage) -> None:
    """A real streaming replica (pg_basebackup -R), as a DSN pointing at an RDS read-only
    instance or a failover leaving us on the old primary would."""
    store.save_meta(make_meta("example.test"))
    store.activate("example.test", store.write_version("example.test", make_bundle()))
    with postgres.standby() as replica:
        dsn = replica.dsn(dbname(pg_dsn))
        from tests.peers.pebble import wait_until

        def replicated() -> bool:
            return bool(sql(dsn, "SELECT 1 FROM acmeali_lineages WHERE current_version = 1"))
        wait_until(replicated, "the standby to replay the primary's rows", timeout=60)
        ro = PostgresStorage(dsn, sealing_key=store.sealing_key)
        try:
            assert sql(dsn, "SELECT pg_is_in_recovery()") == [(True,)]
            assert ro.lineage_names() == ["example.test"]
            assert ro.read_current("example.test").version == 1
            with pytest.raises(StoreError) as caught:
                ro.write_version("example.test", make_bundle())
            assert "is read-only" in caught.value.message
            assert "cannot execute" in caught.value.message
            assert "read-only transaction" in caught.value.message
            assert "\n" not in caught.value.message
        finally:
            ro.close()
    fresh = PostgresStorage(pg_dsn, sealing_key=store.sealing_key)
    assert fresh.versions("example.test") == [1]  # the primary is untouched and writable
    fresh.close()


def test_the_server_runs_unprivileged(postgres: Postgres) -> None:
    assert postgres.pid is not None
    uid = os.stat(f"/proc/{postgres.pid}").st_uid
    if os.geteuid() == 0:
        import pwd

        assert uid == pwd.getpwnam("nobody").pw_uid
    else:
        assert uid == os.geteuid()


@pytest.fixture
def own_postgres() -> Iterator[Postgres]:
    """A server of this test's own, so restarting it disturbs no other test."""
    with Postgres() as pg:
        yield pg


def test_restart_between_calls_is_ridden_out(own_postgres: Postgres) -> None:
    dsn = own_postgres.create_database()
    store = PostgresStorage(dsn, sealing_key=parse_key(random_key_b64(), "k"))
    store.save_meta(make_meta("example.test"))
    own_postgres.restart()  # every pooled connection is now dead
    assert store.lineage_names() == ["example.test"]
    v = store.write_version("example.test", make_bundle())
    own_postgres.restart()
    store.activate("example.test", v)
    assert store.current_version("example.test") == v
    store.close()


def test_restart_mid_run_fails_clearly_or_rides_out_and_the_next_call_works(
        own_postgres: Postgres) -> None:
    dsn = own_postgres.create_database()
    store = PostgresStorage(dsn, sealing_key=parse_key(random_key_b64(), "k"),
                            connect_retry=1.0)
    store.init_schema()
    stop = threading.Event()
    outcomes: dict[str, int] = {"ok": 0, "store_error": 0}
    other: list[BaseException] = []

    def worker(i: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            name = f"w{i}-{n}.example.test"
            try:
                store.save_meta(make_meta(name))
                store.activate(name, store.write_version(name, make_bundle(name)))
                outcomes["ok"] += 1
            except StoreError as exc:
                outcomes["store_error"] += 1
                if "\n" in exc.message:  # one line, or it is a failure of this test
                    other.append(exc)
                    return
            except BaseException as exc:
                other.append(exc)
                return
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        import time

        time.sleep(0.5)
        own_postgres.stop()
        time.sleep(1.5)  # longer than connect_retry: some calls must give up, clearly
        own_postgres.start()
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not other, other
    assert outcomes["ok"] > 0 and outcomes["store_error"] > 0, outcomes
    # Nothing half-written: every stored version is complete, every current one exists.
    assert sql(dsn, "SELECT count(*) FROM acmeali_versions WHERE cert = '' OR "
                    "fullchain = '' OR key_sealed IS NULL") == [(0,)]
    assert sql(dsn, "SELECT count(*) FROM acmeali_lineages l WHERE current_version IS NOT "
                    "NULL AND NOT EXISTS (SELECT 1 FROM acmeali_versions v WHERE "
                    "v.lineage = l.name AND v.version = l.current_version)") == [(0,)]
    store.save_meta(make_meta("after.example.test"))  # the next call works
    assert "after.example.test" in store.lineage_names()
    store.close()


def test_a_lock_held_across_a_restart_is_gone_and_unlocking_does_not_fail(
        own_postgres: Postgres) -> None:
    dsn = own_postgres.create_database()
    store = PostgresStorage(dsn, sealing_key=parse_key(random_key_b64(), "k"))
    other = PostgresStorage(dsn, sealing_key=store.sealing_key)
    with store.lock("example.test"):
        held = sql(dsn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        assert held == [(1,)]
        with pytest.raises(LockHeld):
            with other.lock("example.test"):
                pass
        own_postgres.restart()
        with other.lock("example.test"):  # the server forgot the dead session's lock
            pass
    with store.lock("example.test"):
        pass
    # A lock session asks the server to notice a silent holder within about a minute.
    session = store._lock_idle[0]
    assert session.execute("SHOW tcp_keepalives_idle").fetchone() == ("30",)
    assert session.execute("SHOW tcp_keepalives_count").fetchone() == ("3",)
    store.close()
    other.close()
