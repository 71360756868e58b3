"""A wall-clock limit for a whole run (``renew --timeout``), so nothing can hold it forever.

Per-request deadlines (``acme/transport.py``) bound each exchange with the CA, but a run
also waits on DNS propagation, hooks and Alibaba Cloud, and one stuck step would keep the
run lock, so every later cron run "finds another renew running" and exits 0 while nothing
renews. Two stages:

1. at the deadline, every request to the CA still running or yet to start is cut off
   (the transport checks the run deadline before each read), so lineages fail with a
   clear error and the run ends normally: report, failure hook, exit 1;
2. ``GRACE`` seconds later, if the run is still going (stuck in a hook, say), the hooks
   still running are killed with everything they started (their process groups: SIGTERM,
   then SIGKILL; see ``hooks.kill_running_hooks``), since ``os._exit`` alone would leave
   them running orphaned, a ``sleep`` or a script holding port 80 outliving the run; then
   one line on stderr naming the hooks it killed, and ``os._exit(1)``: the store's locks
   are ``flock`` locks, which the kernel releases with the process, and every store write
   is atomic, so stopping here is as safe as the ``kill -9`` the crash tests already
   survive.

Stdlib only: built on the start-up path of ``renew``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

GRACE = 5.0
HOOK_KILL_GRACE = 2.0  # seconds a killed hook gets to exit on SIGTERM before SIGKILL

_deadline: float | None = None


def cap_requests() -> None:
    """Make the transport honour the current run deadline (imports requests: call it
    only once there is network work to do)."""
    if _deadline is not None:
        from acmeali.acme.transport import set_run_deadline

        set_run_deadline(_deadline)


class RunWatchdog:
    """``with RunWatchdog(seconds, ...):`` around a run; 0 seconds means no limit."""

    def __init__(self, seconds: float, *, what: str, knob: str,
                 say: Callable[[str], None] | None = None) -> None:
        self.seconds = seconds
        self.what = what
        self.knob = knob
        self.say = say  # e.g. UI.error: stderr and the run log; default: plain stderr
        self._timer: threading.Timer | None = None

    def __enter__(self) -> RunWatchdog:
        global _deadline
        if self.seconds > 0:
            _deadline = time.monotonic() + self.seconds
            self._timer = threading.Timer(self.seconds + GRACE, self._expire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        global _deadline
        if self._timer is not None:
            self._timer.cancel()
        _deadline = None
        if "acmeali.acme.transport" in sys.modules:
            from acmeali.acme.transport import set_run_deadline

            set_run_deadline(None)

    def _expire(self) -> None:
        killed: list[str] = []
        if "acmeali.hooks" in sys.modules:  # no hook ran if it was never imported
            from acmeali.hooks import kill_running_hooks

            killed = kill_running_hooks(HOOK_KILL_GRACE)
        # Only what the hooks are (their ``what``), never their environment.
        also = f"; it killed the {', the '.join(killed)}, still running" if killed else ""
        text = (f"the {self.what} went past its time limit of {self.seconds:g} s and was "
                f"stopped{also}; its locks are released and unfinished certificates are "
                f"renewed by the next run\n  hint: find the step that hangs with -v, or raise "
                f"the limit ({self.knob})")
        def tell() -> None:
            if self.say is not None:
                self.say(text)
            else:
                sys.stderr.write(f"error: {text}\n")
                sys.stderr.flush()

        # Saying so must not be what hangs (a lock held by a stuck writer, a full pipe):
        # it gets two seconds, then the process ends regardless.
        teller = threading.Thread(target=tell, daemon=True)
        teller.start()
        teller.join(2.0)
        os._exit(1)
