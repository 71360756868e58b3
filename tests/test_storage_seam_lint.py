"""The storage seam is kept by ruff: issuance, renewal and the commands import no FileStore.

Runs the project's own ruff configuration on a one-line import placed (as stdin) at the
paths the rule protects, so removing or loosening the rule fails here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = Path(sys.executable).with_name("ruff")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("ruff")
    assert found, "ruff is part of the test extra"
    return [found]


def _check(path: str, source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_ruff(), "check", "--no-cache", "--select", "TID251",
                           "--stdin-filename", path, "-"], input=source, text=True,
                          capture_output=True, cwd=REPO, timeout=60)


@pytest.mark.parametrize("path", ["acmeali/issuance.py", "acmeali/renewal.py",
                                  "acmeali/commands/renew.py", "acmeali/commands/deploy.py",
                                  "acmeali/commands/certs.py", "acmeali/lifecycle.py"])
@pytest.mark.parametrize("source", [
    "from acmeali.store.files import FileStore\n\nx = FileStore\n",
    "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
    "    from acmeali.store.files import FileStore\n",
    "from acmeali.store import files\n\nx = files.FileStore\n",
])
def test_file_store_import_is_refused(path: str, source: str) -> None:
    result = _check(path, source)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "TID251" in result.stdout and "HostStore" in result.stdout


def test_the_seam_itself_and_plain_file_writes_are_allowed() -> None:
    assert _check("acmeali/store/fleet.py",
                  "from acmeali.store.files import FileStore\n\nx = FileStore\n").returncode == 0
    ok = _check("acmeali/commands/keys.py",
                "from acmeali.store.files import write_file_atomic\n\nx = write_file_atomic\n")
    assert ok.returncode == 0, ok.stdout


def test_the_tree_keeps_the_rule() -> None:
    result = subprocess.run([*_ruff(), "check", "--no-cache", "--select", "TID251",
                             "acmeali"], text=True, capture_output=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout
