"""A child process that takes a storage lock and holds it until killed (lock tests).

``python -m tests.storage_holder BACKEND WHERE LOCKNAME`` prints ``held <pid>`` once the
lock is taken, then sleeps; WHERE is a state directory (files) or a DSN (postgresql).
A LOCKNAME of ``run:KIND`` joins the run KIND instead and prints ``held <pid> <run id>``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from acmeali.config import StorageSettings
from acmeali.store.seam import open_storage


def main() -> None:
    backend, where, lock_name = sys.argv[1:4]
    settings = StorageSettings(backend=backend, dsn=where if backend == "postgresql" else None)
    store = open_storage(settings, Path(where))
    import os

    if lock_name.startswith("run:"):
        with store.join_run(lock_name[4:]) as run_id:
            print(f"held {os.getpid()} {run_id}", flush=True)
            time.sleep(600)
    with store.lock(lock_name):
        print(f"held {os.getpid()}", flush=True)
        time.sleep(600)


if __name__ == "__main__":
    main()
