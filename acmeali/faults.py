"""Crash points for the crash-safety tests: ``kill -9`` at an exact step, for real.

When ``ACMEALI_CRASH_AT`` names a point that the running code reaches, the process sends
itself SIGKILL there: no cleanup handlers, no flushed buffers, exactly what a power cut
or the OOM killer does. Unset (always, outside tests) this is one dict lookup.
"""

from __future__ import annotations

import os
import signal


def checkpoint(name: str) -> None:
    if os.environ.get("ACMEALI_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
