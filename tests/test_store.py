"""FileStore with real processes: locks raced by children, SIGKILLed holders, live switches
read by another process while they happen, and file modes as `ls -l` would show them."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from acmeali.errors import LockHeld, StoreError
from acmeali.lineage import LineageMeta
from acmeali.store import files
from acmeali.store.base import LiveBundle, Storage
from acmeali.store.files import FileStore, server_id, write_file_atomic

REPO = Path(__file__).resolve().parent.parent


def mode_of(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "state")


@pytest.fixture
def umask0() -> object:
    """Modes must come from acmeali, not from a lucky umask."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_filestore_satisfies_protocol(store: FileStore) -> None:
    s: Storage = store
    assert s.root == store.root


# --------------------------------------------------------------------------- atomic writes
def test_private_file_is_0600_while_being_written(store: FileStore, umask0: object,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real_write = os.write

    def spy(fd: int, data: bytes) -> int:
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", spy)
    target = store.root / "accounts" / "x" / "private_key.pem"
    store.atomic_write(target, b"secret", mode=0o600)
    monkeypatch.undo()
    assert seen and set(seen) == {0o600}
    assert mode_of(target) == 0o600
    assert mode_of(target.parent) == 0o700 and mode_of(store.root) == 0o700
    assert mode_of(store.root / "accounts") == 0o700
    store.atomic_write(store.root / "pub.txt", b"x")
    assert mode_of(store.root / "pub.txt") == 0o644


def test_failed_write_keeps_old_file_and_leaves_no_temp(store: FileStore,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    target = store.root / "renewal" / "a.json"
    store.atomic_write(target, b"old")

    def full_disk(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(StoreError, match=r"cannot write .*a\.json: No space left"):
        store.atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert os.listdir(target.parent) == ["a.json"]


def test_write_without_overwrite_refuses(tmp_path: Path) -> None:
    p = tmp_path / "f"
    write_file_atomic(p, b"1", overwrite=False)
    with pytest.raises(FileExistsError):
        write_file_atomic(p, b"2", overwrite=False)
    assert p.read_bytes() == b"1" and os.listdir(tmp_path) == ["f"]


# --------------------------------------------------------------------------- names
def test_safe_names(store: FileStore) -> None:
    assert store.safe_name("example.com") == "example.com"
    assert store.safe_name("*.example.com") == "wildcard_.example.com"
    for bad in ("", "..", ".hidden", "a/b", "../x", "a\\b", "x\0y", "wildcard_.x"):
        with pytest.raises(StoreError, match=r"cannot be used as a lineage name"):
            store.safe_name(bad)


def test_server_id() -> None:
    assert server_id("https://acme-v02.api.letsencrypt.org/directory") == \
        "acme-v02.api.letsencrypt.org_directory"
    assert server_id("https://127.0.0.1:14000/dir") == "127.0.0.1_14000_dir"


# --------------------------------------------------------------------------- accounts
def test_accounts(store: FileStore, umask0: object) -> None:
    server = "https://127.0.0.1:14000/dir"
    assert store.load_account(server) is None
    record = {"url": "https://127.0.0.1:14000/my-account/1", "contacts": ["mailto:a@b.c"]}
    store.save_account(server, record, b"-----BEGIN PRIVATE KEY-----\nx\n")
    d = store.root / "accounts" / "127.0.0.1_14000_dir"
    assert mode_of(d / "private_key.pem") == 0o600
    assert store.load_account(server) == (record, b"-----BEGIN PRIVATE KEY-----\nx\n")
    # Updating the record alone keeps the key.
    store.save_account(server, {**record, "contacts": []}, None)
    loaded = store.load_account(server)
    assert loaded is not None and loaded[0]["contacts"] == [] and loaded[1].startswith(b"---")
    (d / "account.json").write_text("{broken")
    with pytest.raises(StoreError, match=r"account record .* is corrupt"):
        store.load_account(server)
    with pytest.raises(StoreError, match=r"no account key stored"):
        store.save_account("https://other.example/dir", record, None)


# --------------------------------------------------------------------------- metadata
def test_meta_round_trip_and_names(store: FileStore) -> None:
    assert store.lineage_names() == []
    for name in ("b.example.com", "*.example.com"):
        store.save_meta(LineageMeta(name=name, domains=[name], server="https://ca/dir"))
    assert store.lineage_names() == ["*.example.com", "b.example.com"]
    meta = store.load_meta("*.example.com")
    assert meta.domains == ["*.example.com"]
    assert (store.root / "renewal" / "wildcard_.example.com.json").is_file()


def test_meta_errors_name_the_lineage(store: FileStore) -> None:
    with pytest.raises(StoreError, match=r"lineage 'nope.example': no metadata"):
        store.load_meta("nope.example")
    path = store.root / "renewal" / "bad.example.json"
    store.atomic_write(path, b"{not json")
    with pytest.raises(StoreError, match=r"lineage 'bad.example': metadata .* is corrupt "
                                         r"\(not valid JSON\)"):
        store.load_meta("bad.example")
    store.atomic_write(path, b"[1, 2]")
    with pytest.raises(StoreError, match=r"corrupt"):
        store.load_meta("bad.example")
    store.atomic_write(path, json.dumps({"name": "bad.example"}).encode())  # no domains
    with pytest.raises(StoreError, match=r"corrupt"):
        store.load_meta("bad.example")


# --------------------------------------------------------------------------- versions
def bundle(n: int) -> dict[str, bytes]:
    return {"privkey_pem": f"KEY {n}\n".encode(), "cert_pem": f"CERT {n}\n".encode(),
            "chain_pem": f"CHAIN {n}\n".encode(),
            "fullchain_pem": f"CERT {n}\nCHAIN {n}\n".encode() * 200}


def test_versions_activate_read_prune(store: FileStore, umask0: object) -> None:
    name = "*.example.com"
    assert store.write_version(name, **bundle(1)) == 1
    archive = store.root / "archive" / "wildcard_.example.com"
    assert mode_of(archive / "v1" / "privkey.pem") == 0o600
    assert mode_of(archive / "v1" / "cert.pem") == 0o644
    assert not (store.root / "live").exists()  # write_version never touches live
    store.activate(name, 1)
    paths = store.live_paths(name)
    assert os.readlink(paths.privkey) == "current/privkey.pem"
    assert os.readlink(paths.privkey.parent / "current") == "../../archive/wildcard_.example.com/v1"
    assert paths.fullchain.read_bytes() == bundle(1)["fullchain_pem"]
    assert mode_of(store.root / "live" / "wildcard_.example.com") == 0o700

    assert store.write_version(name, **bundle(2)) == 2
    assert store.read_live(name).cert == b"CERT 1\n"  # still version 1
    store.activate(name, 2)
    live = store.read_live(name)
    assert isinstance(live, LiveBundle) and live.version == 2
    assert (live.privkey, live.cert, live.chain) == (b"KEY 2\n", b"CERT 2\n", b"CHAIN 2\n")
    assert "KEY" not in repr(live)
    store.check_live_files(name)

    for n in (3, 4, 5):
        assert store.write_version(name, **bundle(n)) == n
    store.prune(name, keep=2)  # live is 2: kept although older than the newest two
    assert store.versions(name) == [2, 4, 5]
    store.activate(name, 5)
    store.prune(name, keep=1)
    assert store.versions(name) == [5]
    assert sorted(os.listdir(archive)) == ["v5"]
    assert sorted(os.listdir(archive / "v5")) == ["cert.pem", "chain.pem", "fullchain.pem",
                                                  "privkey.pem"]
    assert store.write_version(name, **bundle(6)) == 6  # numbering continues


def test_activate_refuses_incomplete_version(store: FileStore) -> None:
    store.write_version("a.example", **bundle(1))
    (store.root / "archive" / "a.example" / "v1" / "chain.pem").unlink()
    with pytest.raises(StoreError, match=r"version 1 is incomplete .*chain.*refusing"):
        store.activate("a.example", 1)
    with pytest.raises(StoreError, match=r"version 7 is incomplete"):
        store.activate("a.example", 7)


def test_read_live_missing_files(store: FileStore) -> None:
    with pytest.raises(StoreError, match=r"lineage 'x.example': nothing is live"):
        store.read_live("x.example")
    with pytest.raises(StoreError, match=r"live file"):
        store.check_live_files("x.example")


def test_csr_lineage_without_key(store: FileStore) -> None:
    b = bundle(1)
    b["privkey_pem"] = None  # type: ignore[assignment]
    store.write_version("c.example", **b)  # type: ignore[arg-type]
    store.activate("c.example", 1)
    live = store.read_live("c.example")
    assert live.privkey == b"" and live.cert == b"CERT 1\n"


READER = textwrap.dedent("""
    import os, sys, time
    live, stop = sys.argv[1], sys.argv[2]
    valid = {k: {open(os.path.join(sys.argv[3], f"v{n}", f"{k}.pem"), "rb").read()
                 for n in (1, 2)} for k in ("privkey", "cert", "chain", "fullchain")}
    reads = 0
    while not os.path.exists(stop):
        for k in valid:
            with open(os.path.join(live, k + ".pem"), "rb") as f:   # as nginx would
                data = f.read()
            if data not in valid[k]:
                print(f"BAD {k} {len(data)}", flush=True); sys.exit(1)
            reads += 1
    print(f"OK {reads}", flush=True)
""")


def test_switch_never_exposes_a_half_bundle(store: FileStore, tmp_path: Path) -> None:
    name = "busy.example"
    store.write_version(name, **bundle(1))
    store.write_version(name, **bundle(2))
    store.activate(name, 1)
    script = tmp_path / "reader.py"
    script.write_text(READER)
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, str(script), str(store.root / "live" / name),
                               str(stop), str(store.root / "archive" / name)],
                              stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 1.5
        switches = 0
        while time.monotonic() < deadline:
            store.activate(name, 2 if switches % 2 == 0 else 1)
            switches += 1
            bundle_now = store.read_live(name)  # always one consistent version
            n = bundle_now.version
            assert bundle_now.cert == f"CERT {n}\n".encode()
            assert bundle_now.privkey == f"KEY {n}\n".encode()
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=30)
    assert reader.returncode == 0, out
    assert out.startswith("OK") and int(out.split()[1]) > 100 and switches > 50


# --------------------------------------------------------------------------- locks
CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from acmeali.errors import LockHeld
    from acmeali.store.files import FileStore
    mode, root, arg = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    store = FileStore(root)
    if mode == "hold":                     # take the lock, say so, hold until killed
        with store.lock("shared.example", wait=0):
            Path(arg).write_text("locked")
            time.sleep(600)
    elif mode == "race":                   # many turns; the marker proves exclusivity
        inside = root / "inside"
        for _ in range(int(arg)):
            with store.lock("shared.example", wait=None):
                fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # fails on overlap
                os.close(fd)
                with open(root / "log", "a") as log:
                    log.write(f"{os.getpid()}\\n")
                time.sleep(0.005)
                os.unlink(inside)
    elif mode == "once":                   # one try at the same moment as the others
        go = Path(arg)
        while not go.exists():
            time.sleep(0.001)
        try:
            with store.lock("shared.example", wait=0):
                time.sleep(1.0)
            print("WON", flush=True)
        except LockHeld as exc:
            print("HELD", exc.message, flush=True)
""")


def spawn(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    if not script.exists():
        script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_lock_raced_by_processes_is_exclusive(store: FileStore, tmp_path: Path) -> None:
    store.root.mkdir(parents=True)
    children = [spawn(tmp_path, "race", str(store.root), "15") for _ in range(6)]
    for c in children:
        _, err = c.communicate(timeout=120)
        assert c.returncode == 0, err  # a FileExistsError here would mean two holders at once
    pids = (store.root / "log").read_text().split()
    assert len(pids) == 6 * 15
    assert {int(p) for p in pids} == {c.pid for c in children}
    assert mode_of(store.root / "locks" / "shared.example.lock") == 0o600


def test_exactly_one_of_simultaneous_tries_wins(store: FileStore, tmp_path: Path) -> None:
    store.root.mkdir(parents=True)
    go = tmp_path / "go"
    children = [spawn(tmp_path, "once", str(store.root), str(go)) for _ in range(5)]
    time.sleep(0.5)
    go.touch()
    outs = [c.communicate(timeout=60)[0] for c in children]
    won = [o for o in outs if o.startswith("WON")]
    held = [o for o in outs if o.startswith("HELD")]
    assert len(won) == 1 and len(held) == 4, outs
    assert all("lock 'shared.example' is held by process" in h for h in held)


def test_killed_holder_lock_is_taken_over(store: FileStore, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    holder = spawn(tmp_path, "hold", str(store.root), str(ready))
    try:
        wait_for(ready)
        with pytest.raises(LockHeld, match=rf"held by process {holder.pid} ") as info:
            with store.lock("shared.example", wait=0.2):
                pass
        assert info.value.hint and "released automatically" in info.value.hint
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=20)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    with store.lock("shared.example", wait=0):
        pid = (store.root / "locks" / "shared.example.lock").read_text().strip()
        assert pid == str(os.getpid())


def test_wait_until_holder_releases(store: FileStore, tmp_path: Path) -> None:
    holder = threading.Thread(target=_hold_for, args=(store, 0.4))
    holder.start()
    time.sleep(0.1)
    start = time.monotonic()
    with store.lock("t.example", wait=10):
        waited = time.monotonic() - start
    holder.join()
    assert 0.1 < waited < 5


def _hold_for(store: FileStore, seconds: float) -> None:
    with store.lock("t.example", wait=0):
        time.sleep(seconds)


def test_threads_cannot_share_a_lock(store: FileStore) -> None:
    entered = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with store.lock("t.example", wait=0):
            entered.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert entered.wait(10)
        with pytest.raises(LockHeld, match=r"another task in this process"):
            with store.lock("t.example", wait=0):
                pass
        with store.lock("other.example", wait=0):  # other names are independent
            pass
    finally:
        release.set()
        t.join()
    with store.lock("t.example", wait=0):
        pass


def test_same_thread_reentry_is_refused(store: FileStore) -> None:
    with store.lock("r.example", wait=None):
        with pytest.raises(LockHeld, match=r"already held by this thread"):
            with store.lock("r.example", wait=None):
                pass
    assert files._held == {}


def test_lock_released_after_exception(store: FileStore) -> None:
    with pytest.raises(RuntimeError):
        with store.lock("e.example"):
            raise RuntimeError("boom")
    with store.lock("e.example"):
        pass


def test_lock_taken_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The PID in a lock file is informational: a full disk (ENOSPC on writing it, or on
    truncating it afterwards) must not turn taking or releasing a lock into a traceback."""
    import errno as _errno

    store = FileStore(tmp_path / "state")
    with store.lock("warm-up"):  # the locks directory exists before the disk "fills"
        pass

    def full(*_a: object) -> int:
        raise OSError(_errno.ENOSPC, os.strerror(_errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    monkeypatch.setattr(os, "ftruncate", full)
    with store.lock("full.example.test"):
        with pytest.raises(LockHeld, match="held by"):  # still exclusive
            with store.lock("full.example.test"):
                pass
    with store.lock("full.example.test", wait=0):  # and released
        pass
