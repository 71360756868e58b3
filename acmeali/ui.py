"""Terminal output: results to stdout, progress and diagnostics to stderr.

No rich: it costs start-up time, and cron wants plain lines. Progress redraws one line
when stderr is a terminal and prints sparse lines otherwise. ``-q`` silences everything
but errors.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO


class UI:
    def __init__(self, *, verbose: int = 0, quiet: bool = False,
                 out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.verbose = verbose
        self.quiet = quiet
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._lock = threading.Lock()
        self._progress_open = False
        self._last_progress = 0.0
        # The run's log file (acmeali/logfile.py) gets every line -v would show, even
        # under -q: (level, text).
        self.sink: Callable[[int, str], None] | None = None

    def _log(self, level: int, text: str) -> None:
        if self.sink is not None:
            self.sink(level, text)

    @property
    def interactive(self) -> bool:
        return bool(getattr(self.err, "isatty", lambda: False)())

    def _end_progress(self) -> None:
        if self._progress_open:
            self.err.write("\n")
            self._progress_open = False

    def result(self, text: str) -> None:
        """A command's result (what the user asked for); shown even with -q."""
        self._log(logging.INFO, text)
        with self._lock:
            self._end_progress()
            print(text, file=self.out, flush=True)

    def info(self, text: str) -> None:
        self._log(logging.INFO, text)
        if self.quiet:
            return
        with self._lock:
            self._end_progress()
            print(text, file=self.err, flush=True)

    def detail(self, text: str) -> None:
        if self.verbose:
            self.info(text)
        else:
            self._log(logging.INFO, text)

    def warn(self, text: str) -> None:
        self._log(logging.WARNING, text)
        with self._lock:
            self._end_progress()
            print(f"warning: {text}", file=self.err, flush=True)

    def error(self, text: str) -> None:
        self._log(logging.ERROR, text)
        with self._lock:
            self._end_progress()
            print(f"error: {text}", file=self.err, flush=True)

    def progress(self, text: str) -> None:
        """A status line for slow waits (DNS propagation, validation polling)."""
        if self.quiet:
            return
        with self._lock:
            if self.interactive:
                self.err.write("\r\x1b[2K" + text)
                self.err.flush()
                self._progress_open = True
            else:
                now = time.monotonic()
                if now - self._last_progress >= 10:
                    self._last_progress = now
                    print(text, file=self.err, flush=True)

    def done_progress(self) -> None:
        with self._lock:
            if self._progress_open:
                self.err.write("\r\x1b[2K")
                self.err.flush()
                self._progress_open = False
