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
    from acmeali.commands.issue import make_environment, report_deploys
    from acmeali.config import check_lineage_name
    from acmeali.issuance import deploy_lineage
    from acmeali.targets import parse_target

    name = check_lineage_name(ctx.args.name)
    requested: list[str] = []
    for raw in ctx.args.target:
        try:
            requested.append(parse_target(raw).spec)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    store = ctx.store
    dry_run = bool(ctx.args.dry_run)
    with store.lock(name, wait=30.0):
        meta = store.load_meta(name)
        targets = list(dict.fromkeys(requested)) or list(meta.deploy)
        if not targets:
            raise UsageError(f"lineage {name!r} has no deploy targets recorded",
                             hint="name one with --target, e.g. --target cas or "
                                  "--target cdn:static.example.com")
        if not dry_run:
            for spec in targets:
                if spec not in meta.deploy:
                    meta.deploy.append(spec)
        outcomes = deploy_lineage(meta, make_environment(ctx), targets, dry_run=dry_run)
    return 1 if report_deploys(ctx, outcomes, dry_run=dry_run) else 0
