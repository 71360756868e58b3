"""``FleetStore``: the lineage lock is checked before anything is written (issue 16).

A session advisory lock dies with its session (a database restart, a failover) and the
holder is not told. These tests cut the lock's session the way a restart does
(``pg_terminate_backend``) and check that the holder writes nothing while another host
holds the lock or has written meanwhile, and carries on when it could take it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from acmeali.errors import LockHeld, StoreError
from acmeali.store.fleet import FleetStore
from acmeali.store.postgres import PostgresStorage
from acmeali.store.sealing import SealingKey, parse_key
from tests.conftest import run_acmeali
from tests.test_storage_contract import make_bundle, make_meta, random_key_b64
from tests.test_storage_postgres import sql

NAME = "example.test"


@pytest.fixture
def skey() -> SealingKey:
    return parse_key(random_key_b64(), "test key")


@pytest.fixture
def hosts(pg_dsn: str, skey: SealingKey, tmp_path: Path) -> Iterator[tuple[FleetStore, FleetStore]]:
    a = FleetStore(PostgresStorage(pg_dsn, sealing_key=skey), tmp_path / "a")
    b = FleetStore(PostgresStorage(pg_dsn, sealing_key=skey), tmp_path / "b")
    v = a.storage.write_version(NAME, make_bundle(NAME))
    a.storage.activate(NAME, v)
    a.storage.save_meta(make_meta(NAME))
    yield a, b
    a.close()
    b.close()


def cut_lock_session(store: FleetStore, dsn: str) -> None:
    """What a restart does to the lock: its session ends; the holder is not told."""
    storage = store.storage
    assert isinstance(storage, PostgresStorage)
    pid = storage._held[NAME].info.backend_pid
    sql(dsn, "SELECT pg_terminate_backend(%s)", (pid,))


def write(store: FleetStore) -> int:
    b = make_bundle(NAME)
    return store.write_version(NAME, privkey_pem=b.privkey, cert_pem=b.cert, chain_pem=b.chain,
                               fullchain_pem=b.fullchain)


def test_a_lost_lock_another_host_holds_writes_nothing(
        hosts: tuple[FleetStore, FleetStore], pg_dsn: str) -> None:
    a, b = hosts
    with a.lock(NAME):
        cut_lock_session(a, pg_dsn)
        with b.lock(NAME):  # the other host takes it, as after a restart
            with pytest.raises(StoreError, match="lost its lock"):
                write(a)
            with pytest.raises(StoreError, match="lost its lock"):
                a.save_meta(make_meta(NAME))
    assert a.storage.versions(NAME) == [1]


def test_a_lost_lock_nobody_took_is_taken_again_and_the_write_goes_on(
        hosts: tuple[FleetStore, FleetStore], pg_dsn: str) -> None:
    a, b = hosts
    with a.lock(NAME):
        cut_lock_session(a, pg_dsn)
        version = write(a)
        a.activate(NAME, version)
        with pytest.raises(LockHeld), b.lock(NAME):
            pass  # held again, on the new session
    assert a.storage.current_version(NAME) == 2
    assert (a.root / "live" / NAME / "cert.pem").read_bytes() == \
        a.storage.read_current(NAME).cert
    with b.lock(NAME):  # released at the end
        pass


def test_a_version_written_by_another_host_meanwhile_stops_the_write(
        hosts: tuple[FleetStore, FleetStore], pg_dsn: str) -> None:
    a, b = hosts
    with a.lock(NAME):
        cut_lock_session(a, pg_dsn)
        with b.lock(NAME):
            b.activate(NAME, write(b))
        with pytest.raises(StoreError, match="another host wrote a version"):
            write(a)
    assert a.storage.versions(NAME) == [1, 2]


def test_run_locks_are_per_host_lineage_locks_are_shared(
        hosts: tuple[FleetStore, FleetStore]) -> None:
    a, b = hosts
    with a.lock("renew-run"), b.lock("renew-run"):  # two hosts renew at once
        with a.lock(NAME), pytest.raises(LockHeld, match="held by acmeali"), b.lock(NAME):
            pass


def test_sync_on_the_file_store_says_there_is_nothing_to_follow(tmp_path: Path) -> None:
    r = run_acmeali("--state-dir", str(tmp_path / "state"), "sync")
    assert r.returncode == 0, r.stderr
    assert "nothing to sync: [storage] backend is files" in r.stderr


def test_a_version_another_process_wrote_first_is_taken_as_it_is(tmp_path: Path) -> None:
    """A `sync` timer and a `renew` on one host writing the same version: no failure."""
    from acmeali.store.livefiles import LocalLiveFiles

    live = LocalLiveFiles(tmp_path / "state")
    bundle = make_bundle(NAME).at(1)
    assert live.sync(NAME, bundle)
    archive = live.root / "archive" / NAME
    live._write_dir(archive, archive / "v1", bundle, NAME)  # lost the race: still fine
    assert sorted(p.name for p in archive.iterdir()) == ["v1"]
    other = make_bundle(NAME).at(1)
    with pytest.raises(StoreError, match="cannot write"):
        live._write_dir(archive, archive / "v1", other, NAME)
