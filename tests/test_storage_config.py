"""`[storage]` in the configuration, and psycopg staying out of every path that does not
use the database (`acmeali --help`, a `renew` with nothing due, the file backend)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import acmeali.config as cfg
from acmeali.config import load_config_bytes
from acmeali.errors import ConfigError
from tests.conftest import REPO, run_acmeali

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_example_and_docs_cover_every_storage_key() -> None:
    raw = tomllib.loads((REPO / "config.example.toml").read_text())
    assert set(raw["storage"]) == set(cfg._STORAGE_KEYS)
    doc = (REPO / "docs" / "configuration.md").read_text()
    assert all(f"`{k}`" in doc for k in cfg._STORAGE_KEYS)
    c = load_config_bytes((REPO / "config.example.toml").read_bytes(), "example")
    assert c.storage == cfg.StorageSettings()  # "files", dsn and key_file unset


def test_storage_settings() -> None:
    c = load_config_bytes(b'[storage]\nbackend = "postgresql"\ndsn = "host=db dbname=a '
                          b'password=pw"\nkey_file = "/etc/acmeali/storage.key"\n', "t.toml")
    assert c.storage.backend == "postgresql" and c.storage.key_file == "/etc/acmeali/storage.key"
    assert "pw" not in repr(c.storage)  # a DSN may carry a password


@pytest.mark.parametrize(("toml", "expect"), [
    ('[storage]\nbackend = "postgres"\n', "storage.backend: expected one of files, postgresql"),
    ('[storage]\nbackend = "files"\nhost = "db"\n', "storage.host: unknown key"),
    ('[storage]\ndsn = 5\n', "storage.dsn: expected a string"),
    ('storage = "postgresql"\n', "storage: expected a table"),
])
def test_storage_errors_name_the_key(toml: str, expect: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_bytes(toml.encode(), "t.toml")
    assert expect in caught.value.message


def _modules_after(*argv: str, state: Path) -> dict[str, bool]:
    code = ("import sys, json\nfrom acmeali.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps({m: m in sys.modules for m in "
            "('psycopg', 'acmeali.store.postgres', 'cryptography')}))")
    r = subprocess.run([sys.executable, "-c", code, "--state-dir", str(state), *argv],
                       capture_output=True, text=True, timeout=60, cwd=REPO,
                       env={"PYTHONPATH": str(REPO), "HOME": str(state.parent),
                            "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    result: dict[str, bool] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


def test_psycopg_is_imported_only_by_the_database_backend(tmp_path: Path) -> None:
    state = tmp_path / "state"
    for argv in (["--help"], ["storage", "--help"], ["storage", "migrate", "--help"],
                 ["renew"], ["storage", "status"], ["certs", "list"]):
        loaded = _modules_after(*argv, state=state)
        assert not loaded["psycopg"] and not loaded["acmeali.store.postgres"], argv
    pg_cfg = tmp_path / "pg.toml"
    pg_cfg.write_text('[storage]\nbackend = "postgresql"\ndsn = "host=127.0.0.1 port=1"\n')
    loaded = _modules_after("--config", str(pg_cfg), "storage", "--help", state=state)
    assert not loaded["psycopg"]


def test_file_backend_status_and_commands_that_need_the_database(tmp_path: Path) -> None:
    r = run_acmeali("--state-dir", str(tmp_path / "state"), "storage", "status")
    assert r.returncode == 0 and "backend files" in r.stdout and "0 lineage(s)" in r.stdout
    for args in (["storage", "init"], ["storage", "rotate-key", "--new-key-file", "k"]):
        r = run_acmeali("--state-dir", str(tmp_path / "state"), *args)
        assert r.returncode == 2, r.stdout
        assert "works on the PostgreSQL backend" in r.stderr and "Traceback" not in r.stderr


def test_without_psycopg_the_database_backend_says_what_to_install(tmp_path: Path) -> None:
    cfg_file = tmp_path / "pg.toml"
    cfg_file.write_text('[storage]\nbackend = "postgresql"\ndsn = "host=127.0.0.1 port=1"\n')
    code = ("import sys\nsys.modules['psycopg'] = None  # as if not installed\n"
            "from acmeali.cli import main\nsys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "--config", str(cfg_file), "storage",
                        "status"], capture_output=True, text=True, timeout=60, cwd=REPO,
                       env={"PYTHONPATH": str(REPO), "HOME": str(tmp_path), "PATH": "/usr/bin"})
    assert r.returncode == 1, r.stdout
    assert "storage backend 'postgresql' needs psycopg, which is not installed" in r.stderr
    assert "pip install 'acmeali[postgresql]'" in r.stderr and "Traceback" not in r.stderr
