"""``acmeali certs list`` and ``acmeali certs check``: what is stored, and is it healthy.

Let's Encrypt no longer e-mails about expiry, so ``certs check`` is the alarm: exit 0 when
every lineage is healthy, 1 otherwise, one line per problem, for a monitoring system.
Both read metadata only (no network), fast over thousands of lineages.
"""

from __future__ import annotations

import json
from datetime import timedelta

from acmeali.cli import CommandParsers
from acmeali.context import Context
from acmeali.errors import StoreError, UsageError

OVERDUE = timedelta(days=1)


def register(cp: CommandParsers) -> None:
    p = cp.add("certs", help="list stored certificates or check their health", leaf=False)
    sub = CommandParsers.group(p, "certs_command")
    lp = sub.add("list", help="name, domains, expiry, days left, key type, issuer, status, "
                              "next renewal")
    lp.add_argument("--json", action="store_true", help="machine-readable output")
    lp.set_defaults(handler=run_list)
    cp_ = sub.add("check", help="exit 1 and one line per problem when any lineage needs a human")
    cp_.add_argument("--warn-days", type=float, metavar="N",
                     help="warn when fewer than N days are left (default: when renewal is "
                          "overdue)")
    cp_.add_argument("--json", action="store_true", help="machine-readable output")
    cp_.set_defaults(handler=run_check)


def _load_all(ctx: Context) -> tuple[list, list[tuple[str, str]]]:  # type: ignore[type-arg]
    from acmeali.reconcile import reconcile

    metas, broken = [], []
    for name, (listed, live) in ctx.store.lineage_records().items():  # one query on a fleet
        try:
            if isinstance(listed, StoreError):
                raise listed
            # As `renew` sees it: a version made live by a run cut off before its record
            # was saved counts (verified), without writing anything here.
            meta = reconcile(ctx.store, listed, save=False, live=live)
            if meta.current is not None:
                ctx.store.check_live_files(name)  # as `renew` does: missing files are broken
            metas.append(meta)
        except StoreError as exc:
            broken.append((name, exc.message))
    return metas, broken


def run_list(ctx: Context) -> int:
    from acmeali.lineage import utcnow
    from acmeali.renewal import to_summary

    now = utcnow()
    metas, broken = _load_all(ctx)
    days = ctx.config.renewal.days_before_expiry
    from acmeali.plan import names_changed

    rows = [to_summary(m, now, days, names_changed=names_changed(m, ctx.config)) for m in metas]
    if ctx.args.json:
        ctx.ui.result(json.dumps({"certificates": rows,
                                  "broken": [{"name": n, "error": e} for n, e in broken]},
                                 indent=2))
        return 0
    if not rows and not broken:
        ctx.ui.result(f"No certificates in {ctx.state_dir}")
        if any((ctx.state_dir / "renewal").glob("*.conf")):  # certbot's, not ours
            ctx.ui.info(f"hint: {ctx.state_dir} holds certbot lineages; `acmeali import "
                        f"certbot --config-dir {ctx.state_dir}` takes them over")
        return 0
    header = ("NAME", "DOMAINS", "EXPIRES", "DAYS", "KEY", "ISSUER", "STATUS", "NEXT RENEWAL")
    table = [header]
    for r in rows:
        table.append((r["name"], ",".join(r["domains"]), _utc(r["not_after"]),
                      "-" if r["days_left"] is None else f"{r['days_left']:.1f}",
                      r["key_type"] or "-", r["issuer"] or "-", r["status"],
                      _utc(r["next_renewal"])))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        ctx.ui.result("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for name, err in broken:
        ctx.ui.result(f"{name}: BROKEN - {err}")
    return 0


def _utc(iso: str | None) -> str:
    """``2031-12-01T18:37:00Z`` -> ``2031-12-01 18:37Z``: short, and says which zone."""
    return f"{iso[:10]} {iso[11:16]}Z" if iso else "-"


def run_check(ctx: Context) -> int:
    from acmeali.lineage import to_iso, utcnow
    from acmeali.plan import deploy_targets
    from acmeali.renewal import decide, describe_expiry, status_of

    warn = ctx.args.warn_days
    if warn is not None:
        from acmeali import validate

        try:
            validate.number(warn, lo=validate.DAYS[0], hi=validate.DAYS[1], what="--warn-days")
        except validate.InvalidValue as exc:
            raise UsageError(str(exc)) from None
    now = utcnow()
    metas, broken = _load_all(ctx)
    problems: list[dict[str, str]] = [{"name": n, "problem": "broken", "detail": e}
                                      for n, e in broken]
    days = ctx.config.renewal.days_before_expiry
    for m in metas:
        status = status_of(m, now, warn)
        if status == "none":
            problems.append({"name": m.name, "problem": "no-certificate",
                             "detail": "no certificate was ever issued"})
        elif status == "expired":
            problems.append({"name": m.name, "problem": status, "detail": describe_expiry(m, now)})
        elif status == "revoked":
            assert m.current is not None
            problems.append({"name": m.name, "problem": status,
                             "detail": f"serial {m.current.serial} was revoked "
                                       f"({m.revoked[m.current.serial]}); "
                                       f"{describe_expiry(m, now)}"})
        elif warn is not None and status == "expiring":
            problems.append({"name": m.name, "problem": "expiring",
                             "detail": describe_expiry(m, now)})
        elif warn is None:
            # Without --warn-days: renewal overdue by a day means renew is not doing its job.
            d = decide(m, now, days_before=days)
            if d.due and d.at is not None and d.at < now - OVERDUE:
                problems.append({"name": m.name, "problem": "expiring",
                                 "detail": f"renewal overdue since {to_iso(d.at)}; "
                                           f"{describe_expiry(m, now)}"})
        last = m.last_renewal or {}
        if last.get("ok") is False:
            problems.append({"name": m.name, "problem": "renewal-failed",
                             "detail": f"last renewal at {last.get('time')} failed: "
                                       f"{last.get('error')}"})
        # The targets the config file gives now, as `renew` retries them.
        for target in m.deploy_pending(deploy_targets(m, ctx.config)):
            d = m.deployments.get(target)
            detail = d.error if d and d.error else "not deployed with the live certificate"
            problems.append({"name": m.name, "problem": "deploy-failed",
                             "detail": f"{target}: {detail}"})
    if ctx.args.json:
        ctx.ui.result(json.dumps({"ok": not problems, "checked": len(metas) + len(broken),
                                  "problems": problems}, indent=2))
    else:
        for p in problems:
            # One line per problem, whatever a hook printed: monitoring parses lines.
            detail = " ".join(p["detail"].split())
            ctx.ui.result(f"{p['name']}: {p['problem']}: {detail}")
        if not problems:
            n = len(metas)
            ctx.ui.info("1 lineage healthy" if n == 1 else f"all {n} lineages healthy")
    return 1 if problems else 0
