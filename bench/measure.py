"""Run one child process and measure it: wall time, CPU time, peak RSS (``os.wait4``).

Every child runs in its own session so that a timeout (or the bench dying) kills the whole
process group, hooks included. ``os.wait4`` gives the child's own rusage, including the
descendants it reaped (hook scripts, lego's exec provider), and nothing of the bench itself.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Peak RSS: Linux folds the RSS a child had *before* exec (a copy of the forking process,
# here a 40 MiB Python) into its ru_maxrss. So children are started through GNU time (a
# ~2 MiB process) and its %M is used: the peak of the measured program alone. Without
# /usr/bin/time, ru_maxrss is used and is an overestimate with the bench's own size as floor.
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None

_live: dict[int, subprocess.Popen[bytes]] = {}
_live_lock = threading.Lock()


class RunFailed(RuntimeError):
    """A measured command exited non-zero or timed out; the message has its output tail."""


@dataclass
class Sample:
    wall: float  # seconds
    cpu: float  # user + system seconds of the child and the descendants it reaped
    maxrss_kb: int  # peak resident set of the child (or its largest reaped descendant)
    requests: int = 0  # HTTP requests Pebble received during the run (-1: not counted)
    runs: int = 1  # processes this sample sums (a sequential loop counts each)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def kill_all() -> None:
    """Kill every child still running (atexit, SIGTERM): the bench leaves nothing behind."""
    with _live_lock:
        procs = list(_live.values())
    for p in procs:
        _kill_group(p)


atexit.register(kill_all)


def run(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 120.0, log: Path | None = None) -> Sample:
    """Run ``cmd`` to completion (bounded by ``timeout``) and measure it; raise RunFailed."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    out = open(log, "ab") if log else subprocess.DEVNULL
    rss_file = None
    argv = list(cmd)
    if GNU_TIME:
        fd, rss_file = tempfile.mkstemp(prefix="bench-rss-")
        os.close(fd)
        argv = [GNU_TIME, "-q", "-f", "%M", "-o", rss_file, *argv]
    try:
        if log:
            out.write(("\n$ " + " ".join(cmd) + "\n").encode())  # type: ignore[union-attr]
            out.flush()  # type: ignore[union-attr]
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=full_env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        with _live_lock:
            _live[proc.pid] = proc
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            _kill_group(proc)

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            with _live_lock:
                _live.pop(proc.pid, None)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        # Grandchildren left in the group (a daemonised hook) must not outlive the run.
        _kill_group(proc)
        maxrss = usage.ru_maxrss
        if rss_file:
            with contextlib.suppress(OSError, ValueError, IndexError):
                maxrss = int(Path(rss_file).read_text().split()[-1])
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
        if rss_file:
            with contextlib.suppress(OSError):
                os.unlink(rss_file)
    if timed_out.is_set() or proc.returncode != 0:
        what = f"timed out after {timeout:.0f}s" if timed_out.is_set() else \
            f"exit {proc.returncode}"
        tail = log.read_text(errors="replace")[-1500:] if log else ""
        raise RunFailed(f"{' '.join(cmd[:4])} ... {what}\n{tail}")
    return Sample(wall=wall, cpu=usage.ru_utime + usage.ru_stime, maxrss_kb=maxrss)


def combine(samples: Sequence[Sample], wall: float) -> Sample:
    """One sample for a sequential loop of runs: summed CPU, max RSS, the loop's wall time."""
    return Sample(wall=wall, cpu=sum(s.cpu for s in samples),
                  maxrss_kb=max((s.maxrss_kb for s in samples), default=0),
                  requests=sum(s.requests for s in samples), runs=sum(s.runs for s in samples))


@dataclass
class Stats:
    min: float
    median: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        return cls(min(values), statistics.median(values), max(values), len(values))
