"""http-01 into one webroot shared by several runs at once (NFS webroots, parallel issues).

Each run must tolerate another creating ``.well-known/acme-challenge`` between its own
check and create, and another's cleanup removing the (empty) directory just before its
files go in; and each removes only its own token files. The in-process tests put a
concurrent run exactly into those windows; the last test runs real processes in
parallel against Pebble through one web server.
"""

from __future__ import annotations

import http.server
import io
import os
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from acmeali.config import CertSettings
from acmeali.solvers import http01
from acmeali.solvers.base import ChallengeTask
from acmeali.solvers.http01 import WebrootSolver
from acmeali.ui import UI
from tests.conftest import REPO
from tests.peers.pebble import Pebble


def _task(token: str) -> ChallengeTask:
    return ChallengeTask(identifier=f"{token.lower()}.example.test", token=token,
                         key_authorization=f"{token}.thumb", txt_name="", txt_value="")


def _solver(webroot: Path) -> WebrootSolver:
    return WebrootSolver(CertSettings(webroot=str(webroot)), UI(out=io.StringIO(),
                                                                  err=io.StringIO()))


def test_directory_created_by_another_run_meanwhile(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real_mkdir = Path.mkdir

    def racing_mkdir(self: Path, mode: int = 0o777, parents: bool = False,
                     exist_ok: bool = False) -> None:
        # Another run wins the race for every directory: it appears just before ours.
        if self.name in (".well-known", "acme-challenge") and not self.exists():
            os.mkdir(self, 0o755)
        real_mkdir(self, mode, parents, exist_ok)

    monkeypatch.setattr(Path, "mkdir", racing_mkdir)
    a = _solver(tmp_path)
    a.present([_task("TokenA")])
    assert (tmp_path / ".well-known/acme-challenge/TokenA").read_text() == "TokenA.thumb"
    a.cleanup([_task("TokenA")])
    assert not (tmp_path / ".well-known/acme-challenge/TokenA").exists()
    # The directories are the other run's: left alone.
    assert (tmp_path / ".well-known/acme-challenge").is_dir()


def test_directory_removed_by_another_runs_cleanup_meanwhile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open
    removed: list[str] = []

    def racing_open(path: str | os.PathLike[str], flags: int, mode: int = 0o777,
                    **kw: object) -> int:
        p = Path(path)
        if p.parent.name == "acme-challenge" and not removed:
            # Another run's cleanup: its last token is gone, so it removes the (empty)
            # directories it had made, just before our file goes in.
            os.rmdir(p.parent)
            os.rmdir(p.parent.parent)
            removed.append(str(p))
        return real_open(path, flags, mode)

    monkeypatch.setattr(http01.os, "open", racing_open)
    a = _solver(tmp_path)
    a.present([_task("TokenA"), _task("TokenB")])
    monkeypatch.undo()
    assert removed
    assert sorted(os.listdir(tmp_path / ".well-known/acme-challenge")) == ["TokenA", "TokenB"]
    a.cleanup([_task("TokenA"), _task("TokenB")])
    assert os.listdir(tmp_path) == []


def test_directory_removed_between_our_mkdir_and_our_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another run made the directory (our mkdir: EEXIST) and its cleanup removed it before
    we looked: that is a vanished directory to make again, not "not a directory" (seen
    once in 6 processes x 300 rounds, test_processes_hammering_one_webroot)."""
    real_mkdir = Path.mkdir
    raced: list[Path] = []

    def racing_mkdir(self: Path, mode: int = 0o777, parents: bool = False,
                     exist_ok: bool = False) -> None:
        if self.name == "acme-challenge" and not raced:
            raced.append(self)
            raise FileExistsError(17, "File exists", str(self))  # and gone again at once
        real_mkdir(self, mode, parents, exist_ok)

    monkeypatch.setattr(Path, "mkdir", racing_mkdir)
    a = _solver(tmp_path)
    a.present([_task("TokenA")])
    monkeypatch.undo()
    assert raced
    assert (tmp_path / ".well-known/acme-challenge/TokenA").read_text() == "TokenA.thumb"
    a.cleanup([_task("TokenA")])
    assert os.listdir(tmp_path) == []


def test_each_run_removes_only_its_own_tokens(tmp_path: Path) -> None:
    a, b = _solver(tmp_path), _solver(tmp_path)
    a.present([_task("TokenA")])
    b.present([_task("TokenB")])
    a.cleanup([_task("TokenA")])
    assert os.listdir(tmp_path / ".well-known/acme-challenge") == ["TokenB"]
    b.present([_task("TokenC")])  # b's own directory handling copes with a's leaving
    b.cleanup([_task("TokenB"), _task("TokenC")])
    a_dirs_gone = not (tmp_path / ".well-known").exists()
    assert a_dirs_gone or os.listdir(tmp_path / ".well-known/acme-challenge") == []


def test_parallel_issues_share_one_webroot(pebble: Pebble, tmp_path: Path) -> None:
    webroot = tmp_path / "www"
    webroot.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", pebble.http_port),
                                             partial(Quiet, directory=str(webroot)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    procs = []
    try:
        for i in range(5):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "acmeali", "--state-dir", str(tmp_path / f"state{i}"),
                 "--server", pebble.directory_url, "--ca-bundle", pebble.ca_bundle, "issue",
                 "-d", f"shared{i}.webroot.example.test", "-d", f"www.shared{i}.example.test",
                 "--webroot", str(webroot), "--agree-tos", "--email", "ops@example.test"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, env=env, cwd=REPO))
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        server.shutdown()
        server.server_close()
        thread.join(5)
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err
    for i in range(5):
        assert (tmp_path / f"state{i}" / "live" / f"shared{i}.webroot.example.test"
                / "cert.pem").is_file()
    # Every answer file is gone, and at most empty directories remain.
    leftovers = [p for p in webroot.rglob("*") if not p.is_dir()]
    assert leftovers == []


STRESS = r'''
import io, os, sys, time
from pathlib import Path
from acmeali.config import CertSettings
from acmeali.errors import AcmealiError
from acmeali.solvers.base import ChallengeTask
from acmeali.solvers.http01 import WebrootSolver
from acmeali.ui import UI
webroot, me, rounds, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
deadline = time.monotonic() + 30
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.001)
failures = 0
for i in range(rounds):
    task = ChallengeTask(identifier="x.example.test", token=f"T{me}x{i}",
                         key_authorization=f"T{me}x{i}.thumb", txt_name="", txt_value="")
    solver = WebrootSolver(CertSettings(webroot=str(webroot)),
                           UI(out=io.StringIO(), err=io.StringIO()))
    try:
        solver.present([task])
        path = webroot / ".well-known" / "acme-challenge" / task.token
        if path.read_text() != task.key_authorization:
            failures += 1
    except (AcmealiError, OSError) as exc:
        failures += 1
        print(f"{me}/{i}: {exc}", file=sys.stderr)
    finally:
        solver.cleanup([task])
print(failures)
'''


def test_processes_hammering_one_webroot(tmp_path: Path) -> None:
    """Real processes presenting and cleaning up in tight loops in one webroot: the
    create/remove races of the directories happen for real, many times over."""
    webroot = tmp_path / "www"
    webroot.mkdir()
    script = tmp_path / "stress.py"
    script.write_text(STRESS)
    go = tmp_path / "go"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    procs = [subprocess.Popen([sys.executable, str(script), str(webroot), str(n), "300",
                               str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=REPO) for n in range(6)]
    try:
        time.sleep(0.5)  # let every process import and wait at the start line
        go.touch()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == "0", err[-2000:]
    assert [p for p in webroot.rglob("*") if not p.is_dir()] == []
