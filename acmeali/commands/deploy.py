"""``acmeali deploy --name LINEAGE [--target TARGET ...] [--dry-run]``.

Pushes the live certificate of one lineage to its targets (default: the targets recorded
in the lineage), records every outcome, and exits 1 when any target failed, so the next
run (or ``renew``) retries those. Targets named here that the lineage did not have yet are
added to it, so renewals deploy there too. ``--dry-run`` shows the calls it would make and
writes nothing, neither to Alibaba Cloud nor to the state directory.
"""

from __future__ import annotations

from acmeali.cli import CommandParsers
from acmeali.context import Context
from acmeali.errors import UsageError

_EPILOG = """targets:
  cas                                 upload to Certificate Management Service (CAS)
  cdn:<domain> | cdn:auto             CDN domain(s), by reference to the CAS certificate
  dcdn:<domain>                       DCDN domain
  apigateway:[<region>:]<group>:<domain>  API Gateway custom domain
  mqtt-server:<instance>              CAS upload + the console step for ApsaraMQ for MQTT
  'hook:<command>'                    a local command with ACMEALI_* paths in its environment
"""


def register(cp: CommandParsers) -> None:
    p = cp.add("deploy", help="deploy a stored certificate to Alibaba Cloud or a hook",
               description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.epilog = _EPILOG
    p.add_argument("--name", required=True, metavar="LINEAGE", help="the lineage to deploy")
    p.add_argument("--target", action="append", default=[], metavar="TARGET",
                   help="where to deploy (repeatable; default: the lineage's recorded targets)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the calls that would be made; change nothing")
    p.set_defaults(handler=run)


def run(ctx: Context) -> int:
    from acmeali.config import check_lineage_name
    from acmeali.deployers import deploy
    from acmeali.targets import parse_target

    name = check_lineage_name(ctx.args.name)
    requested: list[str] = []
    for raw in ctx.args.target:
        try:
            requested.append(parse_target(raw).spec)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    store = ctx.store
    settings = ctx.config.aliyun
    dry_run = bool(ctx.args.dry_run)
    with store.lock(name, wait=30.0):
        meta = store.load_meta(name)
        targets = list(dict.fromkeys(requested)) or list(meta.deploy)
        if not targets:
            raise UsageError(f"lineage {name!r} has no deploy targets recorded",
                             hint="name one with --target, e.g. --target cas or "
                                  "--target cdn:static.example.com")
        bundle = store.read_live(name)
        if not dry_run:
            for spec in targets:
                if spec not in meta.deploy:
                    meta.deploy.append(spec)
        outcomes = deploy(meta, bundle, targets, settings=settings, ui=ctx.ui,
                          live_paths=store.live_paths(name), dry_run=dry_run)
        if not dry_run:
            store.save_meta(meta)
    failed = 0
    for o in outcomes:
        if o.ok:
            ctx.ui.result(f"{o.target}: {'plan: ' if dry_run else ''}{o.message}")
        else:
            failed += 1
            ctx.ui.error(f"{o.target}: {o.message}")
    return 1 if failed else 0
