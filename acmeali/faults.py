"""Crash points for the crash-safety tests: ``kill -9`` (or a full disk) at an exact step.

When ``ACMEALI_CRASH_AT`` names a point that the running code reaches, the process sends
itself SIGKILL there: no cleanup handlers, no flushed buffers, exactly what a power cut
or the OOM killer does. When ``ACMEALI_DISK_FULL_AT`` names it, every later atomic file
write of this process fails with ENOSPC, as on a disk that filled up at that moment.
Unset (always, outside tests) this is two dict lookups.
"""

from __future__ import annotations

import errno
import os
import signal

_disk_full = False


def checkpoint(name: str) -> None:
    global _disk_full
    if os.environ.get("ACMEALI_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("ACMEALI_DISK_FULL_AT") == name:
        _disk_full = True


def check_disk() -> None:
    """Raise ENOSPC when a test declared the disk full (see ``checkpoint``)."""
    if _disk_full:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
