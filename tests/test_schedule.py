"""`acmeali schedule install|remove`, written into a temporary root.

`systemd-analyze verify` (Debian's systemd package, in the Makefile's peers) checks the
units as systemd would load them, including that ExecStart= names an executable: the
documented `/usr/local/bin/acmeali` failed exactly there after a venv install.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_acmeali

SYSTEMD = Path("etc/systemd/system")


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr
    return r


def systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is missing: `make peers` installs Debian's systemd package"
    return exe


def test_systemd_timer_verifies_and_runs_this_installation(tmp_path: Path) -> None:
    root = tmp_path / "root"
    state = tmp_path / "state dir"
    ok(run_acmeali("--state-dir", str(state), "schedule", "install", "--systemd",
                   "--root", str(root)))
    service = (root / SYSTEMD / "acmeali-renew.service").read_text()
    timer = (root / SYSTEMD / "acmeali-renew.timer").read_text()
    assert "EnvironmentFile=-/etc/acmeali/aliyun.env" in service
    assert "ProtectSystem=" not in service.replace("# No ProtectSystem=", "")
    assert "Persistent=true" in timer and "WantedBy=timers.target" in timer
    exec_line = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_line[len("ExecStart="):])
    assert argv[0] == str(Path(sys.executable).absolute())
    assert argv[1:3] == ["-m", "acmeali"] and argv[3:5] == ["--state-dir", str(state)]
    assert argv[-2:] == ["renew", "-q"]

    r = subprocess.run([systemd_analyze(), "verify", str(root / SYSTEMD / "acmeali-renew.timer"),
                        str(root / SYSTEMD / "acmeali-renew.service")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "acmeali-renew" not in r.stderr, r.stderr

    # The command the timer runs works as written (nothing due: silent, exit 0).
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""

    ok(run_acmeali("schedule", "remove", "--root", str(root)))
    assert not (root / SYSTEMD / "acmeali-renew.service").exists()
    assert not (root / SYSTEMD / "acmeali-renew.timer").exists()


def test_cron_entry_sources_the_credentials_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    r = ok(run_acmeali("schedule", "install", "--cron", "--root", str(root)))
    assert "wrote" in r.stdout
    text = (root / "etc/cron.d/acmeali").read_text()
    line = next(ln for ln in text.splitlines() if " root " in ln)
    fields = line.split(None, 6)
    assert fields[1:5] == ["0,12", "*", "*", "*"] and fields[5] == "root"
    command = fields[6]
    assert ". /etc/acmeali/aliyun.env" in command
    assert f"{Path(sys.executable).absolute()} -m acmeali renew -q" in command
    subprocess.run(["sh", "-n", "-c", command], check=True, timeout=10)  # valid shell


def test_dry_run_writes_nothing_and_foreign_files_are_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "root"
    r = ok(run_acmeali("schedule", "install", "--systemd", "--dry-run", "--root", str(root)))
    assert "ExecStart=" in r.stdout and not root.exists()
    unit = root / SYSTEMD / "acmeali-renew.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/bin/true\n")
    r = run_acmeali("schedule", "install", "--systemd", "--root", str(root))
    assert r.returncode == 2 and "not written by acmeali" in r.stderr
    r = run_acmeali("schedule", "remove", "--root", str(root))
    assert r.returncode == 2 and unit.read_text().startswith("[Service]")
