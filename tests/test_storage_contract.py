"""One contract, every backend: the file store (through its adapter) and PostgreSQL.

The same cases run against ``FileStorage`` on a temporary state directory and
``PostgresStorage`` on a fresh database of a real PostgreSQL (tests/peers/postgres.py):
accounts, lineage records, versions with their keys, the pending key of an order in flight,
locks that exclude other processes and die with their holder, and this host's live files
switching from what the storage holds.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acmeali.errors import LockHeld, StoreError
from acmeali.lineage import CertFacts, Deployment, LineageMeta
from acmeali.store.filestorage import FileStorage
from acmeali.store.livefiles import LocalLiveFiles, follow
from acmeali.store.postgres import PostgresStorage
from acmeali.store.sealing import parse_key
from acmeali.store.seam import BundleFiles, LiveFiles, SharedStorage
from tests.conftest import REPO

SERVER = "https://ca.example.test/directory"


def make_bundle(cn: str = "example.test", *, key: bool = True) -> BundleFiles:
    """A self-signed leaf plus a 'chain' (another self-signed cert): real PEM bytes."""
    def cert_for(name: str) -> tuple[bytes, bytes]:
        k = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.timezone.utc)
        c = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
             .public_key(k.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now).not_valid_after(now + dt.timedelta(days=90))
             .sign(k, hashes.SHA256()))
        pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
        return c.public_bytes(serialization.Encoding.PEM), pem
    cert, privkey = cert_for(cn)
    chain, _ = cert_for("Test Intermediate")
    return BundleFiles(privkey=privkey if key else b"", cert=cert, chain=chain,
                       fullchain=cert + chain)


def make_meta(name: str, version: int = 1) -> LineageMeta:
    return LineageMeta(
        name=name, domains=[name, f"www.{name}"], server=SERVER, key_type="ec256",
        settings={"challenge": "http-01", "http_port": 8080}, flag_keys=["http_port"],
        deploy=["cdn:static.example.test"],
        current=CertFacts(version=version, serial="0abc", fingerprint="ff" * 32,
                          not_before="2026-01-01T00:00:00Z", not_after="2026-04-01T00:00:00Z",
                          issuer="Test CA", key_type="ec256", key_sha256="ee" * 32),
        deployments={"cdn:static.example.test": Deployment(fingerprint="ff" * 32, ok=True,
                                                           details={"cert_id": 42})})


def random_key_b64() -> bytes:
    return base64.b64encode(os.urandom(32))


@pytest.fixture(params=["files", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def where(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The state directory (files) or the DSN of a fresh database (postgresql)."""
    if backend == "files":
        return str(tmp_path / "state")
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def storage(backend: str, where: str) -> Iterator[SharedStorage]:
    store: SharedStorage
    if backend == "files":
        store = FileStorage(where)
    else:
        store = PostgresStorage(where, sealing_key=parse_key(random_key_b64(), "test key"))
    yield store
    store.close()


# ---------------------------------------------------------------------------- accounts


def test_backends_implement_the_protocols(storage: SharedStorage, tmp_path: Path) -> None:
    # runtime_checkable: every method is there (mypy checks the signatures in acmeali/store)
    assert isinstance(storage, SharedStorage)
    assert isinstance(LocalLiveFiles(tmp_path), LiveFiles)
    assert "password" not in storage.describe()


def test_accounts(storage: SharedStorage) -> None:
    assert storage.load_account(SERVER) is None
    assert storage.account_servers() == []
    record = {"url": "https://ca.example.test/acct/1", "contacts": ["mailto:a@example.test"],
              "server": SERVER, "key_type": "ec256"}
    key = make_bundle().privkey
    storage.save_account(SERVER, record, key)
    assert storage.load_account(SERVER) == (record, key)
    assert storage.account_servers() == [SERVER]
    # The record alone (contacts updated) keeps the key.
    storage.save_account(SERVER, {**record, "contacts": []}, None)
    loaded = storage.load_account(SERVER)
    assert loaded is not None and loaded[0]["contacts"] == [] and loaded[1] == key
    other = "https://other.example.test/dir"
    with pytest.raises(StoreError):
        storage.save_account(other, {**record, "server": other}, None)
    assert storage.load_account(other) is None


# ---------------------------------------------------------------------------- records


def test_lineage_records(storage: SharedStorage) -> None:
    assert storage.lineage_names() == []
    with pytest.raises(StoreError, match=r"example\.test"):
        storage.load_meta("example.test")
    for name in ("b.example.test", "*.example.test", "a.example.test"):
        storage.save_meta(make_meta(name))
    assert storage.lineage_names() == ["*.example.test", "a.example.test", "b.example.test"]
    meta = make_meta("a.example.test")
    assert storage.load_meta("a.example.test").to_json() == meta.to_json()
    meta.deployments["cdn:static.example.test"].ok = False
    meta.pending_order = {"url": "https://ca.example.test/order/9", "has_key": True}
    storage.save_meta(meta)
    assert storage.load_meta("a.example.test").to_json() == meta.to_json()


def _corrupt_record(backend: str, where: str, name: str) -> None:
    if backend == "files":
        (Path(where) / "renewal" / f"{name}.json").write_text("{not json")
        return
    import psycopg

    with psycopg.connect(where, autocommit=True) as conn:
        conn.execute("UPDATE acmeali_lineages SET meta = '[1, 2]'::jsonb WHERE name = %s",
                     (name,))


def test_listing_reads_records_and_current_versions_together(
        storage: SharedStorage, backend: str, where: str) -> None:
    assert storage.lineage_records() == {}
    for name in ("b.example.test", "*.example.test", "a.example.test"):
        storage.save_meta(make_meta(name))
    storage.activate("a.example.test", storage.write_version("a.example.test", make_bundle()))
    _corrupt_record(backend, where, "b.example.test")
    records = storage.lineage_records()
    assert list(records) == storage.lineage_names()  # the same names, in the same order
    assert records["a.example.test"].live == 1
    assert records["*.example.test"].live is None  # no version yet
    a = records["a.example.test"].meta
    assert isinstance(a, LineageMeta) and a.to_json() == make_meta("a.example.test").to_json()
    damaged = records["b.example.test"].meta  # one damaged record hides nothing else
    assert isinstance(damaged, StoreError) and "b.example.test" in damaged.message
    with pytest.raises(StoreError, match=r"b\.example\.test"):
        storage.load_meta("b.example.test")  # the same complaint one at a time


# ---------------------------------------------------------------------------- versions


def test_versions_with_keys(storage: SharedStorage) -> None:
    name = "example.test"
    assert storage.versions(name) == [] and storage.current_version(name) is None
    one, two = make_bundle(name), make_bundle(name)
    assert storage.write_version(name, one) == 1
    assert storage.write_version(name, two) == 2
    assert storage.versions(name) == [1, 2]
    assert storage.current_version(name) is None  # written is not live
    with pytest.raises(StoreError):
        storage.read_current(name)
    got = storage.read_version(name, 1)
    assert (got.privkey, got.cert, got.chain, got.fullchain, got.version) == (
        one.privkey, one.cert, one.chain, one.fullchain, 1)
    storage.activate(name, 2)
    assert storage.current_version(name) == 2
    assert BundleFiles.of(storage.read_current(name)) == two
    storage.activate(name, 1)  # back to an older version is allowed (a rollback)
    assert storage.read_current(name).version == 1
    with pytest.raises(StoreError):
        storage.activate(name, 7)
    assert storage.current_version(name) == 1
    # A numbered write (migration) keeps the number; repeating it is harmless; a different
    # certificate under a taken number is refused.
    five = make_bundle(name)
    assert storage.write_version(name, five, version=5) == 5
    assert storage.write_version(name, five, version=5) == 5
    with pytest.raises(StoreError, match="version 5"):
        storage.write_version(name, make_bundle(name), version=5)
    assert storage.write_version(name, make_bundle(name)) == 6
    storage.prune(name, 2)
    assert storage.versions(name) == [1, 5, 6]  # the newest two and the live one


def test_version_without_a_key(storage: SharedStorage) -> None:
    """A lineage issued from the user's own CSR has no key to store."""
    bundle = make_bundle(key=False)
    v = storage.write_version("csr.example.test", bundle)
    storage.activate("csr.example.test", v)
    assert storage.read_current("csr.example.test").privkey == b""


def test_pending_key(storage: SharedStorage) -> None:
    name = "example.test"
    assert storage.pending_key(name) is None
    key = make_bundle().privkey
    storage.put_pending_key(name, key)
    assert storage.pending_key(name) == key
    storage.save_meta(make_meta(name))  # the record written after it leaves it alone
    assert storage.pending_key(name) == key
    storage.drop_pending_key(name)
    assert storage.pending_key(name) is None
    storage.drop_pending_key(name)


def test_delete_lineage(storage: SharedStorage) -> None:
    for name in ("gone.example.test", "kept.example.test"):
        storage.save_meta(make_meta(name))
        storage.activate(name, storage.write_version(name, make_bundle(name)))
    storage.delete_lineage("gone.example.test")
    assert storage.lineage_names() == ["kept.example.test"]
    assert storage.versions("gone.example.test") == []
    assert storage.current_version("gone.example.test") is None
    assert storage.current_version("kept.example.test") == 1


# ---------------------------------------------------------------------------- locks


def _holder(backend: str, where: str, lock_name: str) -> tuple[subprocess.Popen[str], int]:
    proc, words = _holding(backend, where, lock_name)
    return proc, int(words[0])


def _holding(backend: str, where: str, lock_name: str) -> tuple[subprocess.Popen[str], list[str]]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "tests.storage_holder", backend, where,
                             lock_name], stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded by the test timeout; EOF if the child failed
    assert line.startswith("held "), f"holder failed: {line!r} (exit {proc.poll()})"
    return proc, line.split()[1:]


def test_lock_excludes_another_process_and_dies_with_it(storage: SharedStorage, backend: str,
                                                         where: str) -> None:
    if backend == "files":
        Path(where).mkdir(parents=True, exist_ok=True)
    proc, pid = _holder(backend, where, "example.test")
    try:
        t0 = time.monotonic()
        with pytest.raises(LockHeld) as caught:
            with storage.lock("example.test"):
                pass
        assert time.monotonic() - t0 < 5  # a try-lock: it never waits on the holder
        assert str(pid) in caught.value.message  # names who holds it
        with storage.lock("other.example.test"):  # other names are independent
            pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    deadline = time.monotonic() + 20
    while True:
        try:
            with storage.lock("example.test"):
                break
        except LockHeld:
            assert time.monotonic() < deadline, "lock not released after its holder died"
            time.sleep(0.1)


def test_lock_excludes_a_second_holder_in_this_process(storage: SharedStorage) -> None:
    with storage.lock("example.test"):
        with pytest.raises(LockHeld):
            with storage.lock("example.test"):
                pass
    with storage.lock("example.test"):  # released on exit
        pass


def test_overlapping_joins_share_one_run(storage: SharedStorage) -> None:
    with storage.join_run("renew-force") as first:
        with storage.join_run("renew-force") as second:
            assert second == first  # entered while the first was inside: the same run
        with storage.join_run("other-kind") as other:
            assert other != first  # kinds are independent
        with storage.join_run("renew-force") as third:
            assert third == first  # still in progress: the first has not left
    with storage.join_run("renew-force") as later:
        assert later and later != first  # nobody inside any more: a new run


def test_a_run_joined_by_another_process_ends_when_it_dies(storage: SharedStorage,
                                                           backend: str, where: str) -> None:
    if backend == "files":
        Path(where).mkdir(parents=True, exist_ok=True)
    proc, (_, run_id) = _holding(backend, where, "run:renew-force")
    try:
        with storage.join_run("renew-force") as joined:
            assert joined == run_id  # a host starting late is in the other host's run
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    deadline = time.monotonic() + 20
    while True:  # the server (or kernel) ends the dead holder's part within moments
        with storage.join_run("renew-force") as fresh:
            if fresh != run_id:
                break
        assert time.monotonic() < deadline, "the run outlived its only member"
        time.sleep(0.1)


# ---------------------------------------------------------------------------- live files


def test_live_files_follow_the_storage(storage: SharedStorage, tmp_path: Path) -> None:
    name = "*.example.test"
    one, two = make_bundle(name), make_bundle(name)
    storage.activate(name, storage.write_version(name, one))
    host: LiveFiles = LocalLiveFiles(tmp_path / "host")
    assert host.live_version(name) is None
    assert host.sync(name, storage.read_current(name)) is True
    paths = host.paths(name)
    assert paths.cert.read_bytes() == one.cert and paths.privkey.read_bytes() == one.privkey
    assert paths.fullchain.read_bytes() == one.fullchain and paths.chain.read_bytes() == one.chain
    assert stat.S_IMODE(os.stat(paths.privkey).st_mode) == 0o600
    assert host.live_version(name) == 1
    assert host.sync(name, storage.read_current(name)) is False  # already live: nothing done

    storage.activate(name, storage.write_version(name, two))
    assert host.sync(name, storage.read_current(name)) is True
    assert host.live_version(name) == 2
    assert paths.cert.read_bytes() == two.cert and paths.privkey.read_bytes() == two.privkey
    # certbot's layout, one symlink switched: live/<name>/current -> ../../archive/<name>/v2
    live_dir = paths.cert.parent
    assert os.readlink(live_dir / "current") == "../../archive/wildcard_.example.test/v2"
    assert os.readlink(paths.cert) == "current/cert.pem"
    assert not [e for e in os.listdir(live_dir) if e.endswith(".tmp")]


def test_live_files_of_the_file_store_are_its_own(tmp_path: Path) -> None:
    """With the file backend the storage is the live files: sync confirms, writes nothing."""
    storage = FileStorage(tmp_path / "state")
    bundle = make_bundle()
    storage.activate("example.test", storage.write_version("example.test", bundle))
    live = LocalLiveFiles(tmp_path / "state")
    before = sorted(p.name for p in (tmp_path / "state" / "archive" / "example.test").iterdir())
    assert live.sync("example.test", storage.read_current("example.test")) is False
    assert sorted(p.name for p in (tmp_path / "state" / "archive" / "example.test").iterdir()
                  ) == before


def test_live_files_keep_a_differing_local_version(tmp_path: Path) -> None:
    """A host's own v1 (not live) that differs from the storage's v1 is kept aside."""
    local = FileStorage(tmp_path / "host")
    local.write_version("example.test", make_bundle())  # local v1, never made live
    shared = FileStorage(tmp_path / "shared")
    shared.activate("example.test", shared.write_version("example.test", make_bundle()))
    live = LocalLiveFiles(tmp_path / "host")
    assert live.sync("example.test", shared.read_current("example.test")) is True
    assert live.paths("example.test").cert.read_bytes() == shared.read_current(
        "example.test").cert
    archive = tmp_path / "host" / "archive" / "example.test"
    assert [e for e in os.listdir(archive) if e.startswith(".v1.replaced-")]


def _live_tree(root: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    live = root / "live"
    for d in sorted(live.iterdir()):
        for kind in ("privkey", "cert", "chain", "fullchain"):
            out[f"{d.name}/{kind}"] = (d / f"{kind}.pem").read_bytes()
        out[f"{d.name}/current"] = os.readlink(d / "current").encode()
    return out


def test_three_hosts_follow_the_storage(storage: SharedStorage, tmp_path: Path) -> None:
    names = [f"site{i}.example.test" for i in range(5)] + ["*.example.test"]
    for name in names:
        storage.save_meta(make_meta(name))
        storage.activate(name, storage.write_version(name, make_bundle(name)))
    hosts = [LocalLiveFiles(tmp_path / f"host{i}") for i in range(3)]
    for host in hosts:
        report = follow(storage, host)
        assert sorted(n for n, _ in report.switched) == sorted(names)
        assert report.unchanged == 0 and not report.failed
    # One renewal elsewhere: each host fetches that lineage and nothing else.
    storage.activate(names[2], storage.write_version(names[2], make_bundle(names[2])))
    for host in hosts:
        report = follow(storage, host)
        assert report.switched == [(names[2], 2)] and report.unchanged == len(names) - 1
    trees = [_live_tree(h.root) for h in hosts]
    assert trees[0] == trees[1] == trees[2]
    for name in names:
        current = storage.read_current(name)
        assert hosts[0].paths(name).privkey.read_bytes() == current.privkey
        assert hosts[0].paths(name).fullchain.read_bytes() == current.fullchain
