"""`acmeali storage migrate`: a state directory made by real issuances against Pebble goes
into PostgreSQL and back out into a new state directory, byte for byte, without re-issuing.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from acmeali.store.filestorage import FileStorage
from acmeali.store.postgres import PostgresStorage
from tests.conftest import REPO, run_acmeali
from tests.peers.pebble import Pebble
from tests.peers.postgres import Postgres
from tests.test_cli_issue import Cli, fresh, ok, verify_chain
from tests.test_storage_contract import make_bundle
from tests.test_storage_postgres import config, dbname, forms, key_file


def tree(state: Path) -> dict[str, tuple[str, bytes | str]]:
    """Every file and symlink under ``state`` (except locks and the run log, which are this
    host's, not stored data): path -> (kind, content)."""
    out: dict[str, tuple[str, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(state):
        rel = Path(dirpath).relative_to(state)
        if rel.parts[:1] in (("locks",), ("logs",)):
            continue
        for entry in dirnames + filenames:
            path = Path(dirpath) / entry
            key = str(rel / entry)
            if path.is_symlink():
                out[key] = ("link", os.readlink(path))
            elif path.is_file():
                out[key] = ("file", path.read_bytes())
    return out


def comparable(files: dict[str, tuple[str, bytes | str]]) -> dict[str, tuple[str, object]]:
    """JSON compared as data (key order and spacing are the writer's business)."""
    return {k: ("json", json.loads(v)) if k.endswith(".json") and isinstance(v, bytes)
            else (kind, v) for k, (kind, v) in files.items()}


@pytest.fixture
def issued(pebble: Pebble, tmp_path: Path) -> tuple[Cli, list[str]]:
    """A state directory with one account and two lineages, one of them with two versions."""
    cli = Cli(pebble, tmp_path / "state")
    a, b = fresh(), fresh()
    ok(cli.issue("-d", a))
    ok(cli.issue("-d", a, "-d", f"www.{a}"))
    ok(cli.issue("-d", b))
    return cli, [a, b]


def test_files_to_postgresql_and_back_byte_for_byte(
        issued: tuple[Cli, list[str]], pebble: Pebble, postgres: Postgres, pg_dsn: str,
        tmp_path: Path) -> None:
    cli, (a, b) = issued
    key = key_file(tmp_path / "storage.key")
    cfg = config(tmp_path, pg_dsn, key).read_text().replace('"postgresql"', '"files"')
    (tmp_path / "files.toml").write_text(cfg)  # still on files: migrating is the first step

    def acmeali(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return run_acmeali("--config", str(tmp_path / "files.toml"), "--state-dir", str(state),
                           *args)

    r = acmeali(cli.state, "storage", "migrate", "--to", "postgresql")
    assert r.returncode == 0, r.stderr
    assert "Copied 1 account(s) and 2 lineage(s) (3 version(s))" in r.stdout
    assert "Traceback" not in r.stderr

    # Read back through the PostgreSQL backend: the same bytes as the files.
    files = FileStorage(cli.state)
    pg = PostgresStorage(pg_dsn, key_file=str(key))
    try:
        assert pg.lineage_names() == sorted([a, b]) == files.lineage_names()
        for name in (a, b):
            assert pg.versions(name) == files.versions(name)
            assert pg.current_version(name) == files.current_version(name)
            assert pg.load_meta(name).to_json() == files.load_meta(name).to_json()
            for v in files.versions(name):
                assert pg.read_version(name, v) == files.read_version(name, v)
        assert pg.versions(a) == [1, 2] and pg.current_version(a) == 2
        assert pg.account_servers() == [pebble.directory_url] == files.account_servers()
        assert pg.load_account(pebble.directory_url) == files.load_account(pebble.directory_url)
        live_key = files.read_current(a).privkey
    finally:
        pg.close()
    dump = postgres.pg_dump(dbname(pg_dsn))
    assert not [f for f in forms(live_key) if f in dump]

    # Again: nothing to do, nothing duplicated.
    r = acmeali(cli.state, "storage", "migrate", "--to", "postgresql")
    assert r.returncode == 0 and "(3 version(s))" in r.stdout, r.stderr
    assert postgres_count(pg_dsn, "acmeali_versions") == 3

    # Out of the database into a new state directory: the same tree, keys 0600.
    back = tmp_path / "back"
    r = acmeali(back, "storage", "migrate", "--to", "files")
    assert r.returncode == 0, r.stderr
    assert comparable(tree(back)) == comparable(tree(cli.state))
    for name in (a, b):
        assert stat.S_IMODE(os.stat(back / "live" / name / "privkey.pem").st_mode) == 0o600
    verify_chain(back / "live" / a, pebble.root_pem(), tmp_path)

    # The copy is a working installation: the migrated account issues with no new
    # registration, as version 3 of the migrated lineage.
    moved = Cli(pebble, back)
    r = ok(moved.issue("-d", a, "-d", f"www.{a}", "--force"))
    assert "version 3" in r.stdout and "Registered account" not in r.stderr + r.stdout
    assert json.loads(ok(moved("certs", "list", "--json", server=False)).stdout)


def postgres_count(dsn: str, table: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # type: ignore[arg-type]
        assert row is not None
        return int(row[0])


def test_differing_data_in_the_target_is_reported_never_overwritten(
        issued: tuple[Cli, list[str]], pg_dsn: str, tmp_path: Path) -> None:
    cli, (a, _) = issued
    key = key_file(tmp_path / "storage.key")
    cfg = config(tmp_path, pg_dsn, key)
    pg = PostgresStorage(pg_dsn, key_file=str(key))
    mine = make_bundle(a)
    pg.write_version(a, mine, version=1)  # another certificate under the same number
    pg.close()
    r = run_acmeali("--config", str(cfg), "--state-dir", str(cli.state), "storage", "migrate",
                    "--to", "postgresql")
    assert r.returncode == 1, r.stdout
    assert f"lineage {a}: lineage {a!r}: version 1 exists already" in r.stderr
    assert "run the same command again" in r.stderr and "Traceback" not in r.stderr
    assert "1 lineage(s)" in r.stdout  # the other one was copied
    pg = PostgresStorage(pg_dsn, key_file=str(key))
    try:
        assert pg.read_version(a, 1).cert == mine.cert
        assert a not in pg.lineage_names()  # no record without its versions
    finally:
        pg.close()


def test_a_lineage_being_renewed_is_skipped_and_named(
        issued: tuple[Cli, list[str]], pg_dsn: str, tmp_path: Path) -> None:
    cli, (a, b) = issued
    cfg = config(tmp_path, pg_dsn, key_file(tmp_path / "storage.key"))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    holder = subprocess.Popen([sys.executable, "-m", "tests.storage_holder", "files",
                               str(cli.state), a], stdout=subprocess.PIPE, text=True, env=env,
                              cwd=REPO)
    try:
        assert holder.stdout is not None and holder.stdout.readline().startswith("held ")
        r = run_acmeali("--config", str(cfg), "--state-dir", str(cli.state), "storage",
                        "migrate", "--to", "postgresql")
        assert r.returncode == 1
        assert f"skipped {a}: lock {a!r} is held by process {holder.pid}" in r.stderr
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    r = run_acmeali("--config", str(cfg), "--state-dir", str(cli.state), "storage", "migrate",
                    "--to", "postgresql")
    assert r.returncode == 0 and "2 lineage(s)" in r.stdout, r.stderr
    assert b
