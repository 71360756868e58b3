"""``acmeali renew``: the cron/systemd job. Silent and fast when nothing is due."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from acmeali.cli import CommandParsers
from acmeali.context import Context
from acmeali.errors import UsageError

if TYPE_CHECKING:
    from acmeali.issuance import Environment
    from acmeali.renewal import RenewReport


def register(cp: CommandParsers) -> None:
    p = cp.add("renew", help="renew every lineage that is due (for cron / systemd timers)",
               description="Renew due lineages concurrently, redeploy where a deploy failed "
                           "last time, run hooks. Exit 0 when all is well (or another renew "
                           "is already running), 1 when something needs a human.")
    p.add_argument("--name", "--cert-name", action="append", metavar="LINEAGE",
                   help="only these lineages (repeatable)")
    p.add_argument("--force", "--force-renewal", "--renew-by-default", action="store_true",
                   dest="force", help="renew even when not due")
    p.add_argument("--days", type=float, metavar="N",
                   help="due when fewer than N days are left (overrides the lifetime rule)")
    p.add_argument("--jitter", type=float, metavar="SECONDS",
                   help="wait a random 0..SECONDS before the first network request")
    p.add_argument("--concurrency", type=int, metavar="K", help="lineages at once (4)")
    p.add_argument("--dry-run", action="store_true",
                   help="renew against the staging counterpart; nothing written, deployed or run")
    p.add_argument("--pre-hook", metavar="CMD", help="run once before the first renewal")
    p.add_argument("--post-hook", metavar="CMD", help="run once after the last renewal")
    p.add_argument("--deploy-hook", metavar="CMD", help="run for each renewed lineage")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="give up the whole run after SECONDS, kill its hooks still running, "
                        "release its locks, exit 1 "
                        "(default: [renewal] run_timeout, 10800; 0 = no limit)")
    p.add_argument("--failure-hook", metavar="CMD",
                   help="run when anything failed (ACMEALI_FAILURES in its environment)")
    p.set_defaults(handler=run)


def check_flags(a: Any) -> None:
    """The numeric flags, judged as their config keys are (acmeali.validate)."""
    from acmeali import validate

    try:
        if a.concurrency is not None:
            validate.integer(a.concurrency, lo=1, hi=64, what="--concurrency")
        if a.days is not None:
            validate.number(a.days, lo=validate.DAYS[0], hi=validate.DAYS[1], what="--days")
        if a.jitter is not None:
            validate.number(a.jitter, lo=validate.JITTER[0], hi=validate.JITTER[1],
                            what="--jitter")
        if a.timeout is not None:
            validate.number(a.timeout, lo=validate.RUN_TIMEOUT[0], hi=validate.RUN_TIMEOUT[1],
                            what="--timeout")
    except validate.InvalidValue as exc:
        raise UsageError(str(exc)) from None


def run(ctx: Context) -> int:
    from acmeali.renewal import RenewOptions, renew_all

    a = ctx.args
    r = ctx.config.renewal
    check_flags(a)
    if a.name:
        # A typo in --name must not look like a renewal failure (exit 1) of a lineage.
        known = set(ctx.store.lineage_names())
        unknown = [n for n in a.name if n not in known]
        if unknown:
            raise UsageError(f"--name {unknown[0]}: no such lineage in {ctx.state_dir}",
                             hint="`acmeali certs list` shows the lineages")
    opts = RenewOptions(
        names=tuple(a.name or ()), force=a.force,
        days=a.days if a.days is not None else r.days_before_expiry,
        jitter=a.jitter if a.jitter is not None else r.jitter,
        concurrency=a.concurrency or r.concurrency, dry_run=a.dry_run,
        pre_hook=a.pre_hook or r.pre_hook, post_hook=a.post_hook or r.post_hook,
        deploy_hook=a.deploy_hook, default_deploy_hook=r.deploy_hook,
        failure_hook=a.failure_hook or r.failure_hook,
        run_timeout=a.timeout if a.timeout is not None else r.run_timeout)

    from acmeali.preflight import check_hooks

    # The run's own hooks: a missing program is found now, not after renewing everything.
    check_hooks([("--pre-hook", opts.pre_hook), ("--post-hook", opts.post_hook),
                 ("--deploy-hook", opts.deploy_hook),
                 ("[renewal] deploy_hook", opts.default_deploy_hook),
                 ("--failure-hook", opts.failure_hook)])

    def make_env() -> Environment:
        from acmeali.commands.issue import make_environment

        env: Environment = make_environment(ctx)
        return env

    ui = ctx.ui
    synced_failed: list[str] = []
    if ctx.store.shared and not opts.dry_run:
        # A fleet: first what other hosts renewed (this host's live files and hooks).
        from acmeali.fleetsync import sync_live

        synced_failed = sync_live(ctx.store, ctx.config, ui, deploy_hook=opts.deploy_hook,
                                  default_hook=opts.default_deploy_hook).failed
    report = renew_all(ctx.store, make_env, opts, ctx.config, say=ctx.ui.error)
    for line in synced_failed:
        ui.error(f"sync: {line}")
    if report.lock_busy:
        ui.info(f"another renew is running; nothing to do ({report.lock_busy})")
        return 0
    for o in report.outcomes:
        if o.action == "failed":
            ui.error(f"{o.name}: {o.message}")
        elif o.action == "skipped":
            ui.info(f"{o.name}: skipped ({o.message})")
        else:
            ui.info(f"{o.name}: {o.action}" + (f" - {o.message}" if o.message else ""))
    if report.outcomes:
        ui.info(summary_line(report))
    elif report.total:
        nxt = ""
        if report.next_due:
            name, at = report.next_due
            nxt = f"; next: {name} on {at.strftime('%Y-%m-%d %H:%M UTC')}"
        ui.info(f"No renewals due ({report.total} lineage{'' if report.total == 1 else 's'}"
                f"{nxt})")
    else:
        ui.info("No lineages in " + str(ctx.state_dir))
    return 1 if report.failed or synced_failed else 0


def summary_line(report: RenewReport) -> str:
    """``1 done, 1 failed, 3 not due (of 5)``, counting each lineage once.

    One lineage can have two outcomes (renewed, then its deploy hook failed): it counts as
    failed. A failed global hook counts as a failure but is no lineage; an unknown
    ``--name`` counts as one lineage asked for.
    """
    failed = {o.name for o in report.failed}
    lineages = {o.name for o in report.outcomes if not o.name.startswith("(")}
    done = {o.name for o in report.outcomes
            if o.action in ("renewed", "redeployed", "dry-run")} - failed
    of = max(report.total, len(lineages))
    return (f"{len(done)} done, {len(failed)} failed, {of - len(lineages)} not due "
            f"(of {of})")
