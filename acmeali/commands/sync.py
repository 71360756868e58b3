"""``acmeali sync``: bring this host's ``live/`` files to the shared storage's versions.

For a fleet (``[storage] backend = "postgresql"``): cheap enough for a one-minute timer
(one query when nothing changed). ``renew`` does the same first on every run.
"""

from __future__ import annotations

from acmeali.cli import CommandParsers
from acmeali.context import Context
from acmeali.errors import LockHeld


def register(cp: CommandParsers) -> None:
    p = cp.add("sync", help="bring this host's live files to the shared storage's versions",
               description="Fleets: write the certificates other hosts renewed into this "
                           "host's live/ files and run this host's deploy hooks for them. "
                           "Exit 0 when in step, 1 when a lineage could not be brought "
                           "there.")
    p.add_argument("--deploy-hook", metavar="CMD",
                   help="run for each lineage whose live files changed (instead of its own)")
    p.set_defaults(handler=run)


def run(ctx: Context) -> int:
    from acmeali.fleetsync import sync_live

    store = ctx.store
    if not store.shared:
        ctx.ui.info(f"nothing to sync: [storage] backend is files ({store.describe()} is "
                    "the storage)")
        return 0
    hook = ctx.args.deploy_hook
    if hook:
        from acmeali.preflight import check_hooks

        check_hooks([("--deploy-hook", hook)])
    try:
        with store.lock("sync-run", wait=0):
            report = sync_live(store, ctx.config, ctx.ui, deploy_hook=hook,
                               default_hook=ctx.config.renewal.deploy_hook)
    except LockHeld as exc:
        ctx.ui.info(f"another sync is running; nothing to do ({exc.message})")
        return 0
    finally:
        store.close()
    for line in report.failed:
        ctx.ui.error(line)
    ctx.ui.info(f"{len(report.switched)} lineage(s) switched, {report.unchanged} in step, "
                f"{len(report.failed)} failed")
    return 1 if report.failed else 0
