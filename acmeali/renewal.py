"""Which lineages are due, and ``renew_all`` running them in a bounded pool.

Due-ness, in order (certmagic's model, adapted to RFC 9773):
1. a compromised or revoked current certificate is due now;
2. under 1/20 of the lifetime left is due whatever ARI says (emergency);
3. with ARI, a moment chosen uniformly at random inside the CA's suggested window, chosen
   once and kept until the window changes;
4. otherwise ``--days``/``renewal.days_before_expiry`` when set, else a third of the
   lifetime left (half for certificates living under 10 days). A fixed 30 days is wrong
   for 6-day and 45-day certificates.

Module level is stdlib only: a ``renew`` with nothing due reads JSON metadata and decides
without importing cryptography, requests or any Alibaba SDK.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from acmeali.errors import AcmealiError, LockHeld, StoreError
from acmeali.lineage import AriState, LineageMeta, from_iso, to_iso, utcnow

if TYPE_CHECKING:
    from acmeali.config import Config
    from acmeali.issuance import Environment
    from acmeali.plan import LineagePlan
    from acmeali.store.host import HostStore
    from acmeali.ui import UI

log = logging.getLogger(__name__)

SHORT_LIVED = timedelta(days=10)


@dataclass(frozen=True)
class Decision:
    due: bool
    at: datetime | None  # when it becomes (or became) due
    reason: str


def renewal_time(meta: LineageMeta, *, days_before: float | None = None) -> tuple[datetime, str]:
    """When ``meta``'s live certificate should be renewed, and why then."""
    assert meta.current is not None
    nb, na = meta.not_before, meta.not_after
    assert nb is not None and na is not None
    lifetime = na - nb
    emergency = na - lifetime / 20
    if meta.ari is not None and meta.ari.selected:
        selected = from_iso(meta.ari.selected)
        assert selected is not None
        if selected < emergency:
            return selected, "inside the CA's renewal window (ARI)"
        return emergency, "less than 1/20 of its lifetime left"
    if days_before is not None:
        at = na - timedelta(days=days_before)
        if at > emergency:  # a small --days never postpones past the emergency floor
            return emergency, "less than 1/20 of its lifetime left"
        return at, f"{days_before:g} days before expiry"
    if lifetime < SHORT_LIVED:
        return na - lifetime / 2, "half of its lifetime left"
    return na - lifetime / 3, "a third of its lifetime left"


def decide(meta: LineageMeta, now: datetime, *, days_before: float | None = None,
           force: bool = False) -> Decision:
    # Never issued (a first issuance killed mid-way) or revoked by the user: `renew` leaves
    # it alone; only `acmeali issue` (with --force for a revoked one) gets a certificate.
    if meta.current is None:
        return Decision(False, None, "no certificate yet; `acmeali issue` gets one")
    if meta.current.serial in meta.revoked:
        return Decision(False, None, f"revoked ({meta.revoked[meta.current.serial]}); "
                                     f"`acmeali issue --name {meta.name} --force` replaces it")
    if force:
        return Decision(True, now, "forced")
    if meta.current.key_sha256 in meta.compromised_keys:
        return Decision(True, now, "its key is marked compromised")
    at, why = renewal_time(meta, days_before=days_before)
    return Decision(at <= now, at, why)


def parked(meta: LineageMeta) -> bool:
    """Never issued, or revoked by the user: neither renewed nor redeployed by `renew`."""
    return meta.current is None or meta.current.serial in meta.revoked


def choose_ari_moment(ari: AriState, start: datetime, end: datetime, now: datetime,
                      rng: random.Random | None = None) -> None:
    """RFC 9773 §4.2: a uniformly random moment in the window, kept until the window moves."""
    s, e = to_iso(start), to_iso(end)
    if ari.window_start == s and ari.window_end == e and ari.selected:
        return
    ari.window_start, ari.window_end = s, e
    if end <= now:
        ari.selected = to_iso(now)
        return
    lo = max(start, now) if start < now else start
    span = (end - lo).total_seconds()
    offset = (rng or random.SystemRandom()).uniform(0, max(span, 0))
    ari.selected = to_iso(lo + timedelta(seconds=offset))


def ari_poll_due(meta: LineageMeta, now: datetime) -> bool:
    if meta.ari is None or meta.current is None:
        return False
    nxt = from_iso(meta.ari.next_poll)
    return nxt is None or nxt <= now


def describe_expiry(meta: LineageMeta, now: datetime | None = None) -> str:
    na = meta.not_after
    if na is None:
        return "no certificate yet"
    now = now or utcnow()
    days = (na - now).total_seconds() / 86400
    when = na.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if days < 0:
        return f"expired {when} ({-days:.1f} days ago)"
    return f"expires {when} (in {days:.1f} days)"


# --------------------------------------------------------------------------- hooks
def lineage_env(meta: LineageMeta, store: HostStore) -> dict[str, str]:
    from acmeali.hooks import deploy_env

    return deploy_env(meta.name, meta.domains, store.live_paths(meta.name))


def run_deploy_hook(command: str, meta: LineageMeta, store: HostStore,
                    ui: UI | None = None) -> None:
    """Run the deploy hook; what it printed is shown (certbot does), not only at -vv."""
    from acmeali.hooks import run_hook, show_output

    result = run_hook(command, lineage_env(meta, store), what=f"deploy hook for {meta.name}")
    if ui is not None:
        show_output(ui, f"{meta.name}: hook 'deploy-hook'", result)


# --------------------------------------------------------------------------- renew_all
@dataclass(frozen=True)
class RenewOptions:
    names: tuple[str, ...] = ()
    force: bool = False
    days: float | None = None
    jitter: float = 0.0
    concurrency: int = 4
    dry_run: bool = False
    pre_hook: str | None = None  # --pre-hook, else [renewal] pre_hook
    post_hook: str | None = None
    deploy_hook: str | None = None  # --deploy-hook only: it outranks every lineage's own
    default_deploy_hook: str | None = None  # [renewal] deploy_hook: for lineages without one
    failure_hook: str | None = None
    run_timeout: float = 0.0  # seconds; 0 = no limit (see acmeali.watchdog)


@dataclass
class Outcome:
    name: str
    action: str  # "renewed" | "redeployed" | "skipped" | "failed" | "dry-run"
    message: str = ""
    meta: LineageMeta | None = None


@dataclass
class RenewReport:
    total: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    next_due: tuple[str, datetime] | None = None
    lock_busy: str | None = None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action == "failed"]


def renew_all(store: HostStore, make_env: Callable[[], Environment], opts: RenewOptions,
              config: Config, *, now: datetime | None = None,
              say: Callable[[str], None] | None = None) -> RenewReport:
    """One ``renew`` run. ``make_env`` is called only when there is network work to do."""
    from acmeali.watchdog import RunWatchdog

    report = RenewReport()
    with RunWatchdog(opts.run_timeout, what="renew run", knob="renew --timeout / "
                     "[renewal] run_timeout", say=say):
        try:
            with store.lock("renew-run", wait=0):
                _renew_locked(store, make_env, opts, config, report, now or utcnow())
        except LockHeld as exc:
            report.lock_busy = exc.message
    return report


def _renew_locked(store: HostStore, make_env: Callable[[], Environment], opts: RenewOptions,
                  config: Config, report: RenewReport, now: datetime) -> None:
    from acmeali.plan import deploy_targets, lineage_plan, names_changed
    from acmeali.reconcile import reconcile

    records = store.lineage_records()  # one query on a database, not two per lineage
    names = list(records)
    if opts.names:
        unknown = [n for n in opts.names if n not in names]
        for n in unknown:
            report.outcomes.append(Outcome(n, "failed", "no such lineage in the state directory"))
        names = [n for n in names if n in opts.names]
    report.total = len(names)

    metas: list[LineageMeta] = []
    for name in names:
        try:
            listed, live = records[name]
            if isinstance(listed, StoreError):
                raise listed
            meta = reconcile(store, listed, save=not opts.dry_run, live=live)
            if meta.current is not None:
                store.check_live_files(name)
        except StoreError as exc:
            report.outcomes.append(Outcome(name, "failed", f"skipped: {exc.message}"))
            continue
        metas.append(meta)
    plans: dict[str, LineagePlan] = {}

    def plan_of(m: LineageMeta) -> LineagePlan:  # built only for lineages worked on
        if m.name not in plans:
            plans[m.name] = lineage_plan(m, config)
        return plans[m.name]

    # --dry-run tries the whole renewal of every selected lineage, as certbot's does:
    # a dry run that skips everything not yet due would prove nothing about the set-up.
    force = opts.force or opts.dry_run

    def decide_now(m: LineageMeta) -> Decision:
        d = decide(m, now, days_before=opts.days, force=force)
        if not d.due and not parked(m) and names_changed(m, config):
            return Decision(True, now, "its names changed in the config file")
        return d

    def to_redeploy(decisions: dict[str, Decision]) -> list[LineageMeta]:
        # Against the targets the config gives now: one added there is deployed to at the
        # next run, one removed there is no longer retried.
        return [m for m in metas if not decisions[m.name].due and not parked(m)
                and m.deploy_pending(deploy_targets(m, config))]

    polls = [m for m in metas if ari_poll_due(m, now)] if not force else []
    decisions = {m.name: decide_now(m) for m in metas}
    due = [m for m in metas if decisions[m.name].due]
    redeploy = to_redeploy(decisions)
    if not (polls or due or redeploy):
        _note_next(report, metas, decisions)
        return

    if opts.jitter > 0:
        time.sleep(random.SystemRandom().uniform(0, opts.jitter))
    env = make_env()
    for m in metas:  # the trust roots each lineage's CA was issued with (issue --ca-bundle)
        if m.ca_bundle:
            env.bundles.setdefault(m.server, m.ca_bundle)
    from acmeali.watchdog import cap_requests

    cap_requests()  # the run's deadline now bounds every request to the CA

    if polls:
        _poll_ari(polls, env, now, report)
        for m in polls:
            decisions[m.name] = decide_now(m)
        due = [m for m in metas if decisions[m.name].due]
        redeploy = to_redeploy(decisions)
    _note_next(report, metas, decisions)
    if not (due or redeploy):
        return

    # Pre- and post-hooks (stop/start the web server holding port 80, say) run once per
    # distinct command, around all renewals; a dry run runs no hooks at all (it must not
    # stop a production server to test a set-up).
    hooks_on = bool(due) and not opts.dry_run
    for m in (*due, *redeploy):
        plan_of(m)  # here, not racing in the worker threads
    pre_hooks = _distinct([opts.pre_hook, *(plan_of(m).settings.pre_hook for m in due)]
                          if hooks_on else [])
    post_hooks = _distinct([opts.post_hook, *(plan_of(m).settings.post_hook for m in due)]
                           if hooks_on else [])
    for command in pre_hooks:
        _run_global_hook(command, "pre hook", report)

    lock = threading.Lock()

    def work(meta: LineageMeta, redeploy_only: bool) -> Outcome:
        try:
            if redeploy_only:
                return _redeploy(meta, env, opts, plans[meta.name])
            return _renew_one(meta, env, opts, plans[meta.name], decisions[meta.name],
                              run_id=run_id)
        except LockHeld as exc:
            return Outcome(meta.name, "skipped", f"busy: {exc.message}")
        except AcmealiError as exc:
            return Outcome(meta.name, "failed", exc.render())
        except Exception as exc:  # a bug in one lineage must not stop the others
            log.exception("unexpected error renewing %s", meta.name)
            return Outcome(meta.name, "failed", f"unexpected error: {exc!r}")

    from concurrent.futures import ThreadPoolExecutor

    jobs = [(m, False) for m in due] + [(m, True) for m in redeploy]
    # `renew --force` on several hosts at once is one run (they join it), so each lineage
    # is renewed once by the fleet: renewed_in_run. Not a dry run: it renews nothing.
    joined: contextlib.AbstractContextManager[str | None] = (
        store.join_run("renew-force") if opts.force and due and not opts.dry_run
        else contextlib.nullcontext(None))
    with joined as run_id, ThreadPoolExecutor(
            max_workers=max(1, min(opts.concurrency, len(jobs)))) as pool:
        for outcome in pool.map(lambda j: work(*j), jobs):
            with lock:
                report.outcomes.append(outcome)
            if outcome.action == "renewed" and not opts.dry_run and outcome.meta is not None:
                # flag > the lineage's own (config file now, else recorded; see
                # plan.lineage_plan) > [renewal] deploy_hook.
                hook = (opts.deploy_hook or plans[outcome.name].settings.deploy_hook
                        or opts.default_deploy_hook)
                if hook:
                    try:
                        run_deploy_hook(hook, outcome.meta, store, env.ui)
                    except AcmealiError as exc:
                        report.outcomes.append(Outcome(outcome.name, "failed", exc.render()))

    for command in post_hooks:
        _run_global_hook(command, "post hook", report)
    if report.failed and opts.failure_hook and not opts.dry_run:
        _run_failure_hook(opts.failure_hook, report)


def _note_next(report: RenewReport, metas: list[LineageMeta],
               decisions: dict[str, Decision]) -> None:
    upcoming = [(m.name, d.at) for m in metas if (d := decisions[m.name]).at and not d.due]
    if upcoming:
        report.next_due = min(((n, at) for n, at in upcoming if at is not None),
                              key=lambda x: x[1])


ARI_DEFAULT_RETRY = 21600  # RFC 9773 §4.3: no Retry-After, poll again in six hours
ARI_ERROR_BACKOFF = 900  # first retry after a failed ARI request, doubling per failure
ARI_ERROR_BACKOFF_MAX = 86400


def ari_error_backoff(failures: int, retry_after: float | None) -> float:
    """Seconds before asking again after ``failures`` failed ARI requests in a row.

    Without a backoff every `renew` (twice a day from cron, or every few minutes from a
    timer) would go online for the lineage, and print the same warning, forever.
    """
    wait = min(float(ARI_ERROR_BACKOFF * 2 ** max(failures - 1, 0)), ARI_ERROR_BACKOFF_MAX)
    return max(wait, min(retry_after or 0.0, ARI_ERROR_BACKOFF_MAX))


def _poll_ari(metas: list[LineageMeta], env: Environment, now: datetime,
              report: RenewReport) -> None:
    """Fetch RFC 9773 renewal info for lineages whose Retry-After has passed.

    Whatever happens to one lineage's request (the CA lacks ARI, answers an error, the
    answer is dropped or cut short) the others are polled, and the outcome is recorded so
    that the next run stays offline until it is worth asking again: a CA without
    ``renewalInfo`` clears the lineage's ARI state, a failure backs off exponentially.
    """
    from concurrent.futures import ThreadPoolExecutor

    def poll(meta: LineageMeta) -> None:
        assert meta.ari is not None
        ari: AriState | None = meta.ari
        try:
            client = env.client(meta.server)
            if not client.directory.renewal_info:
                ari = None  # the CA (no longer) offers ARI: the lifetime rule decides
            else:
                assert ari is not None
                info = client.renewal_info(ari.cert_id)
                assert info is not None
                choose_ari_moment(ari, info.start, info.end, now)
                retry = info.retry_after if info.retry_after is not None else ARI_DEFAULT_RETRY
                ari.next_poll = to_iso(now + timedelta(seconds=retry))
                ari.explanation_url = info.explanation_url
                ari.failures = 0
                if info.explanation_url:
                    env.ui.info(f"{meta.name}: the CA explains its renewal window at "
                                f"{info.explanation_url}")
        except Exception as exc:  # one lineage's ARI never stops the others
            message = exc.message if isinstance(exc, AcmealiError) else repr(exc)
            if not isinstance(exc, AcmealiError):
                log.debug("ARI poll of %s failed", meta.name, exc_info=True)
            ari = meta.ari
            ari.failures += 1
            retry_after = getattr(exc, "retry_after", None)
            wait = ari_error_backoff(ari.failures, retry_after
                                     if isinstance(retry_after, (int, float)) else None)
            ari.next_poll = to_iso(now + timedelta(seconds=wait))
            env.ui.info(f"{meta.name}: renewal info not available ({message}); using the "
                        f"lifetime rule, asking again after {ari.next_poll}")
        meta.ari = ari
        try:
            with env.store.lock(meta.name, wait=0):
                fresh = env.store.load_meta(meta.name)
                if fresh.current and meta.current and fresh.current.serial == meta.current.serial:
                    fresh.ari = ari
                    env.store.save_meta(fresh)
        except (LockHeld, StoreError):
            pass

    with ThreadPoolExecutor(max_workers=min(8, len(metas))) as pool:
        list(pool.map(poll, metas))


def _renew_one(meta: LineageMeta, env: Environment, opts: RenewOptions, plan: LineagePlan,
               decision: Decision, *, run_id: str | None = None) -> Outcome:
    from acmeali.issuance import IssueSpec, issue

    compromised = bool(meta.current and meta.current.key_sha256 in meta.compromised_keys)
    spec = IssueSpec(name=meta.name, domains=plan.domains, settings=plan.settings,
                     server=meta.server, csr_path=meta.settings.get("csr"),
                     force_new_key=compromised, flag_keys=plan.flag_keys,
                     deploy_exact=plan.deploy_exact,
                     # Never from a dry run: a staging CA does not know the certificate,
                     # and a finalized order replacing it would use up the replacement.
                     replaces=meta.ari.cert_id if meta.ari and not opts.dry_run else None,
                     dry_run=opts.dry_run, reason=decision.reason, run_id=run_id)
    serial = meta.current.serial if meta.current else None

    def still_needed(fresh: LineageMeta | None) -> bool:
        # Another process may have renewed while we waited for the lock.
        if fresh is None or fresh.current is None:
            return True
        if not opts.force and fresh.current.serial != serial:
            return False
        if opts.force and renewed_in_run(fresh, run_id):
            return False  # --force on several hosts at once: one renewal, not one per host
        check_live_bundle(fresh, env.store)  # a hand-edited lineage is skipped, not renewed
        return (opts.force or opts.dry_run or plan.names_changed
                or decide(fresh, utcnow(), days_before=opts.days).due)

    result = issue(spec, env, still_needed=still_needed)
    if result.skipped:
        return Outcome(meta.name, "skipped", "already renewed by another run")
    if result.dry_run:
        return Outcome(meta.name, "dry-run", "dry run succeeded")
    failed = result.deploy_failed
    msg = describe_expiry(result.meta)
    if failed:
        return Outcome(meta.name, "failed", "renewed, but deploy failed: "
                       + "; ".join(f"{o.target}: {o.message}" for o in failed), result.meta)
    return Outcome(meta.name, "renewed", msg, result.meta)


def renewed_in_run(meta: LineageMeta, run_id: str | None) -> bool:
    """Whether ``meta`` was renewed by the forced run ``run_id`` (``HostStore.join_run``).

    ``renew --force`` run by several hosts at once renews each lineage once: a host that
    gets a lineage's lock after another host of the same run renewed it skips it. An id,
    not a time: a host whose process started late, or whose clock is off, must not take a
    renewal done during the run for one done before it.
    """
    last = meta.last_renewal
    return bool(run_id and last and last.get("ok") and last.get("run") == run_id)


def check_live_bundle(meta: LineageMeta, store: HostStore) -> None:
    """StoreError naming the lineage when its live files are not what the metadata says.

    Run before renewing (the network work needs cryptography anyway): a lineage whose
    files were hand-edited or damaged is reported and left alone, because renewing over it
    would hide the damage from the person who has to look at it.
    """
    from acmeali import certutil, keys

    assert meta.current is not None
    name = meta.name
    hint = ("restore the state directory from a backup, or re-issue it with "
            "`acmeali issue --name " + name + "`")
    bundle = store.read_live(name)
    facts = meta.current
    for kind in ("cert", "fullchain", "chain"):
        data: bytes = getattr(bundle, kind)
        if kind == "chain" and not data.strip():
            continue
        try:
            chain = certutil.load_chain(data)
        except StoreError as exc:
            raise StoreError(f"lineage {name!r}: live {kind}.pem is damaged ({exc.message}); "
                             "skipped", hint=hint) from None
        if kind != "chain" and certutil.fingerprint(chain[0]) != facts.fingerprint:
            raise StoreError(f"lineage {name!r}: live {kind}.pem is not the certificate the "
                             "metadata records (hand-edited?); skipped", hint=hint)
    if meta.settings.get("csr"):
        return  # issued from the user's own CSR: acmeali never had the key
    try:
        key = keys.load_private_key(bundle.privkey, source=f"{name} live key")
    except AcmealiError as exc:
        raise StoreError(f"lineage {name!r}: live privkey.pem is damaged ({exc.message}); "
                         "skipped", hint=hint) from None
    if keys.public_key_sha256(key) != facts.key_sha256:
        raise StoreError(f"lineage {name!r}: live privkey.pem does not match the live "
                         "certificate; skipped", hint=hint)


def _redeploy(meta: LineageMeta, env: Environment, opts: RenewOptions, plan: LineagePlan
              ) -> Outcome:
    from acmeali.issuance import deploy_lineage, set_deploy_targets

    targets = plan.settings.deploy
    if opts.dry_run:
        return Outcome(meta.name, "dry-run",
                       "would redeploy " + ", ".join(meta.deploy_pending(targets)))
    with env.store.lock(meta.name, wait=0):
        fresh = env.store.load_meta(meta.name)
        set_deploy_targets(fresh, targets, exact=plan.deploy_exact)
        pending = fresh.deploy_pending()
        if not pending:
            return Outcome(meta.name, "skipped", "already deployed by another run")
        outcomes = deploy_lineage(fresh, env, pending)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        return Outcome(meta.name, "failed", "redeploy failed: "
                       + "; ".join(f"{o.target}: {o.message}" for o in failed), fresh)
    return Outcome(meta.name, "redeployed", ", ".join(pending), fresh)


def _distinct(commands: Sequence[str | None]) -> list[str]:
    return list(dict.fromkeys(c for c in commands if c))


def _run_global_hook(command: str, what: str, report: RenewReport) -> None:
    from acmeali.hooks import run_hook

    try:
        run_hook(command, {}, what=what)
    except AcmealiError as exc:
        report.outcomes.append(Outcome(f"({what})", "failed", exc.render()))


def _run_failure_hook(command: str, report: RenewReport) -> None:
    from acmeali.hooks import run_hook

    env = {
        "ACMEALI_FAILED_LINEAGES": " ".join(o.name for o in report.failed),
        "ACMEALI_FAILURES": "\n".join(f"{o.name}: {o.message}" for o in report.failed),
    }
    try:
        run_hook(command, env, what="failure hook")
    except AcmealiError as exc:
        log.error("failure hook failed: %s", exc.message)


def status_of(meta: LineageMeta, now: datetime, warn_days: float | None = None) -> str:
    """valid | expiring | expired | revoked | none, as ``certs list`` shows it."""
    if meta.current is None:
        return "none"
    if meta.current.serial in meta.revoked:
        return "revoked"
    na = meta.not_after
    assert na is not None
    if na <= now:
        return "expired"
    if warn_days is not None:
        if na - now < timedelta(days=warn_days):
            return "expiring"
        return "valid"
    at, _ = renewal_time(meta)
    return "expiring" if at <= now else "valid"


def to_summary(meta: LineageMeta, now: datetime, days_before: float | None = None,
               *, names_changed: bool = False) -> dict[str, Any]:
    """``names_changed``: its config table lists other names, so `renew` renews it now."""
    d = decide(meta, now, days_before=days_before)
    if names_changed and not d.due and not parked(meta):
        d = Decision(True, now, "its names changed in the config file")
    na = meta.not_after
    return {
        "name": meta.name,
        "domains": meta.domains,
        "not_after": meta.current.not_after if meta.current else None,
        "days_left": round((na - now).total_seconds() / 86400, 1) if na else None,
        "key_type": meta.current.key_type if meta.current else meta.key_type,
        "issuer": meta.current.issuer if meta.current else None,
        "serial": meta.current.serial if meta.current else None,
        "status": status_of(meta, now),
        "next_renewal": to_iso(d.at) if d.at else None,
        "renewal_reason": d.reason,
        "deploy": meta.deploy,
        "deploy_pending": meta.deploy_pending(),
        "last_renewal": meta.last_renewal,
    }
