"""A real PostgreSQL (Debian's ``postgresql``) in a temporary data directory, for tests.

initdb and postgres refuse to run as root, so as root they run as ``nobody`` in a data
directory under the system temp directory that ``nobody`` owns (the pytest temp tree is
root-only 0700). The server listens on a free loopback port and a socket directory of its
own, with trust authentication for the ``postgres`` role and fsync off (a test bed). Every
wait is bounded; a missing binary raises PeerMissing, never a skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.peers.pebble import PeerDied, PeerMissing, free_port, wait_until

UNPRIVILEGED = "nobody"


def pg_bin(name: str) -> str:
    """``/usr/lib/postgresql/<newest>/bin/<name>`` (Debian keeps them off PATH)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise PeerMissing(f"PostgreSQL's {name} is not installed; run `make test` (it apt-get "
                      "installs postgresql)")


class Postgres:
    """``with Postgres() as pg: dsn = pg.create_database()``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.host = "127.0.0.1"
        self._as_root = os.geteuid() == 0
        self._user = pwd.getpwnam(UNPRIVILEGED) if self._as_root else None
        self.base = Path(tempfile.mkdtemp(prefix="acmeali-pg-", dir=tempfile.gettempdir()))
        self.data = self.base / "data"
        self.sockets = self.base / "run"
        self.log = self.base / "postgres.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def admin_dsn(self) -> str:
        return self.dsn("postgres")

    def _child_kw(self) -> dict[str, Any]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _own(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _prepare(self) -> None:
        os.chmod(self.base, 0o700)
        self._own(self.base)
        self.sockets.mkdir(mode=0o700)
        self._own(self.sockets)

    def standby(self) -> Postgres:
        """A hot standby streaming from this server (pg_basebackup -R), started: a real
        read-only replica, as an RDS read-only instance is."""
        replica = Postgres()
        replica._prepare()
        r = subprocess.run([pg_bin("pg_basebackup"), "-h", self.host, "-p", str(self.port),
                            "-U", "postgres", "-D", str(replica.data), "-R", "-X", "stream",
                            "-c", "fast", "--no-sync"], capture_output=True, text=True, timeout=120,
                           cwd=replica.base, **self._child_kw())
        if r.returncode != 0:
            replica.close()
            raise PeerDied(f"pg_basebackup failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
        return replica.start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def init(self) -> None:
        self._prepare()
        r = subprocess.run([pg_bin("initdb"), "-D", str(self.data), "-U", "postgres",
                            "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
                           capture_output=True, text=True, timeout=120, cwd=self.base,
                           **self._child_kw())
        if r.returncode != 0:
            raise PeerDied(f"initdb failed ({r.returncode}): {r.stderr.strip()[-2000:]}")

    def start(self) -> Postgres:
        """Start on ``self.port``; on a first start, another free port if that one was taken
        meanwhile (parallel test workers pick ports at the same time)."""
        if not self.data.exists():
            self.init()
            for _ in range(2):
                try:
                    return self._start()
                except PeerDied:
                    if "could not bind" not in self.log_tail():
                        raise
                    self.port = free_port()
        return self._start()

    def _start(self) -> Postgres:
        log = open(self.log, "ab")  # the child writes to it; closed here after the fork
        try:
            self._proc = subprocess.Popen(
                [pg_bin("postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-c", f"listen_addresses={self.host}",
                 "-c", f"unix_socket_directories={self.sockets}",
                 "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
                 "-c", "max_connections=200", "-c", "shared_buffers=32MB"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.base, **self._child_kw())
        finally:
            log.close()
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        import psycopg

        def ready() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise PeerDied(f"postgres exited ({self._proc.returncode}): {self.log_tail()}")
            try:
                with psycopg.connect(self.admin_dsn, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError:
                return False
        wait_until(ready, "PostgreSQL accepting connections", timeout=timeout, interval=0.1)

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def log_tail_bytes(self) -> bytes:
        """The whole server log (tests compare lengths before and after)."""
        try:
            return self.log.read_bytes()
        except OSError:
            return b""

    def stop(self, *, fast: bool = True) -> None:
        """Stop the server (SIGINT: fast shutdown, sessions are cut) and wait, bounded."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT if fast else signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ databases
    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)  # type: ignore[arg-type]  # test-made statements

    def create_database(self) -> str:
        """A fresh, empty database; its DSN."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.admin(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def dsn(self, dbname: str) -> str:
        return f"host={self.host} port={self.port} user=postgres dbname={dbname}"

    def pg_dump(self, dbname: str) -> bytes:
        r = subprocess.run([pg_bin("pg_dump"), "-h", self.host, "-p", str(self.port),
                            "-U", "postgres", "--no-password", dbname],
                           capture_output=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"pg_dump failed: {r.stderr.decode(errors='replace')}")
        return r.stdout

