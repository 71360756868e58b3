"""Bring this host's ``live/`` files to a shared storage's versions, then run local hooks.

On a fleet one host renews a lineage; every other host learns of it here, from ``acmeali
sync`` (a one-minute timer) or at the start of its own ``renew``: one read of every
lineage's current version number, bytes only for what changed, the same one-rename switch
as a renewal, and then *this host's* deploy hook for each lineage whose files changed (a
reload of the local nginx, say). Cloud deploys are not run here: they ran once, on the
host that renewed; a failed one is retried by any host's ``renew`` (the outcome is stored
with the lineage).

With the file backend there is nothing to follow and this costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from acmeali.errors import AcmealiError

if TYPE_CHECKING:
    from acmeali.config import Config
    from acmeali.store.host import HostStore
    from acmeali.ui import UI


@dataclass
class SyncReport:
    switched: list[tuple[str, int]] = field(default_factory=list)
    unchanged: int = 0
    failed: list[str] = field(default_factory=list)  # one line each, "name: why"


def sync_live(store: HostStore, config: Config, ui: UI, *, deploy_hook: str | None = None,
              default_hook: str | None = None) -> SyncReport:
    """Follow the storage; run the deploy hook of each lineage that changed here.

    The hook: ``deploy_hook`` (a ``--deploy-hook`` flag) > the lineage's own (config file,
    else recorded) > ``default_hook`` (``[renewal] deploy_hook``), as ``renew`` chooses it.
    """
    report = SyncReport()
    if not store.shared:
        return report
    followed = store.follow()
    report.unchanged = followed.unchanged
    report.failed.extend(followed.failed)
    from acmeali.plan import lineage_plan
    from acmeali.renewal import run_deploy_hook

    for name, version in followed.switched:
        report.switched.append((name, version))
        ui.info(f"{name}: live files now at version {version} (from {store.describe()})")
        try:
            meta = store.load_meta(name)
            hook = (deploy_hook or lineage_plan(meta, config).settings.deploy_hook
                    or default_hook)
            if hook:
                run_deploy_hook(hook, meta, store, ui)
        except AcmealiError as exc:
            report.failed.append(f"{name}: {exc.render()}")
    return report
