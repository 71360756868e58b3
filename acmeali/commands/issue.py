"""``acmeali issue``: one-shot issuance from a terminal (or a script)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from acmeali.cli import CommandParsers
from acmeali.config import (
    CHALLENGES,
    DNS_PROVIDERS,
    KEY_TYPES,
    CertSettings,
    check_lineage_name,
    default_lineage_name,
)
from acmeali.context import Context
from acmeali.errors import AcmealiError, UsageError

if TYPE_CHECKING:
    from acmeali.ui import UI


def add_challenge_options(p: argparse.ArgumentParser) -> None:
    """Challenge flags shared by ``issue`` (and anything else that solves challenges)."""
    g = p.add_argument_group("challenge")
    g.add_argument("--challenge", choices=CHALLENGES, help="challenge type (default http-01)")
    g.add_argument("--http-port", type=int, metavar="P", help="standalone http-01 port (80)")
    g.add_argument("--http-address", metavar="A", help="standalone http-01 bind address (all)")
    g.add_argument("--webroot", metavar="DIR",
                   help="answer http-01 by writing files under DIR/.well-known/acme-challenge")
    from acmeali.solvers.registry import PROVIDERS

    g.add_argument("--dns", choices=DNS_PROVIDERS, metavar="PROVIDER",
                   help="dns-01 provider (implies dns-01): " + "; ".join(
                       f"{name}: {entry.summary}" for name, entry in PROVIDERS.items()))
    g.add_argument("--dns-hook", metavar="CMD",
                   help="command run with ACMEALI_ACTION/DOMAIN/TXT_NAME/TXT_VALUE in its env")
    g.add_argument("--dns-resolver", action="append", metavar="HOST:PORT",
                   help="check propagation on these resolvers instead of the zone's "
                        "authoritative servers (repeatable)")
    g.add_argument("--dns-timeout", type=float, metavar="S",
                   help="how long to wait for DNS propagation (300)")
    g.add_argument("--dns-zone", metavar="ZONE",
                   help="Alidns zone, when it can't be found (or [dns.alidns] zone)")


def register(cp: CommandParsers) -> None:
    p = cp.add("issue", help="get a certificate and store it as a lineage",
               description="Get a certificate for one or more names, store it under "
                           "<state>/live/<name>/ and deploy it to the given targets.")
    p.add_argument("-d", "--domain", action="append", dest="domains", metavar="NAME",
                   help="a name to cover (repeatable; wildcards need dns-01; IPs allowed)")
    p.add_argument("--name", "--cert-name", metavar="LINEAGE",
                   help="lineage name (default: the lineage with these names, else the first "
                        "name); without -d, the lineage's stored names")
    p.add_argument("--force", "--force-renewal", "--renew-by-default", action="store_true",
                   dest="force",
                   help="issue even when the lineage is not due, or when names are dropped")
    p.add_argument("--keep-until-expiring", "--keep", action="store_true",
                   dest="keep_until_expiring",
                   help="certbot's spelling of the default: nothing is done until it is due")
    p.add_argument("--expand", action="store_true",
                   help="certbot's spelling: adding names to a lineage is always allowed")
    p.add_argument("--key-type", choices=KEY_TYPES, help="certificate key type (ec256)")
    p.add_argument("--reuse-key", action="store_true", default=None,
                   help="keep the lineage's current key instead of a fresh one")
    p.add_argument("--no-reuse-key", action="store_false", dest="reuse_key",
                   help="a fresh key at every renewal again (the default)")
    p.add_argument("--csr", metavar="FILE", help="use your own CSR (acmeali never sees the key)")
    p.add_argument("--must-staple", action="store_true", default=None,
                   help="ask for the OCSP must-staple extension")
    add_challenge_options(p)
    p.add_argument("--preferred-chain", metavar="CN",
                   help="pick the chain whose top certificate is issued by this CN")
    p.add_argument("--profile", metavar="P", help="certificate profile the CA offers")
    from acmeali.deployers.registry import help_text

    p.add_argument("--deploy", action="append", metavar="TARGET", help=help_text())
    p.add_argument("--pre-hook", metavar="CMD",
                   help="command run before the challenge (e.g. stop the server on port 80)")
    p.add_argument("--post-hook", metavar="CMD",
                   help="command run afterwards, also when issuance or the pre-hook failed")
    p.add_argument("--deploy-hook", metavar="CMD", help="command run after issuance")
    p.add_argument("--dry-run", action="store_true",
                   help="issue against the staging counterpart and store nothing")
    add_account_options(p)
    p.set_defaults(handler=run)


def add_account_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("account (used when no account exists yet)")
    g.add_argument("--email", "-m", action="append", metavar="E",
                   help="contact e-mail (repeatable)")
    g.add_argument("--agree-tos", action="store_true", default=None,
                   help="agree to the CA's terms of service")
    g.add_argument("--eab-kid", metavar="K", help="external account binding key id")
    g.add_argument("--eab-hmac-key", metavar="K",
                   help="external account binding HMAC key, base64url "
                        "(or $ACMEALI_EAB_HMAC_KEY, which keeps it out of the process list)")


def flag_settings(base: CertSettings, args: argparse.Namespace) -> dict[str, Any]:
    """The CertSettings keys the command line sets, checked against ``base`` (the config's
    settings, which the flags override). A flag that implies another choice sets it too.
    The keys are recorded in the lineage: they outrank ``[defaults]`` at renewal."""
    from acmeali.names import InvalidName, normalize_name

    kw: dict[str, Any] = {}
    simple = {"key_type": "key_type", "reuse_key": "reuse_key", "must_staple": "must_staple",
              "http_port": "http_port", "http_address": "http_address", "webroot": "webroot",
              "dns_hook": "dns_hook", "dns_timeout": "dns_timeout", "dns_zone": "dns_zone",
              "preferred_chain": "preferred_chain", "profile": "profile",
              "pre_hook": "pre_hook", "post_hook": "post_hook", "deploy_hook": "deploy_hook"}
    for arg, key in simple.items():
        value = getattr(args, arg, None)
        if value is not None:
            kw[key] = value
    if getattr(args, "dns_resolver", None):
        kw["dns_resolvers"] = tuple(args.dns_resolver)
    if getattr(args, "webroot", None):
        kw["challenge"] = "http-01"
    if getattr(args, "dns", None):
        kw["dns"] = args.dns
        kw["challenge"] = "dns-01"
    if getattr(args, "dns_hook", None):
        kw.setdefault("dns", "hook")
        kw["challenge"] = "dns-01"
    if getattr(args, "challenge", None):
        kw["challenge"] = args.challenge
    if getattr(args, "deploy", None):
        from acmeali.targets import parse_target

        specs = []
        for t in args.deploy:
            try:
                specs.append(parse_target(t).spec)
            except ValueError as exc:
                raise UsageError(f"--deploy: {exc}") from None
        kw["deploy"] = tuple(dict.fromkeys((*base.deploy, *specs)))
    if kw.get("http_port") is not None and not 0 < kw["http_port"] < 65536:
        raise UsageError(f"--http-port {kw['http_port']}: expected a port from 1 to 65535")
    if kw.get("dns_timeout") is not None:
        from acmeali import validate

        try:
            validate.number(kw["dns_timeout"], lo=validate.TIMEOUT[0], hi=validate.TIMEOUT[1],
                            what="--dns-timeout")
        except validate.InvalidValue as exc:
            raise UsageError(str(exc)) from None
    for r in kw.get("dns_resolvers", ()):
        host, sep, port = r.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise UsageError(f"--dns-resolver {r!r}: expected HOST:PORT such as 127.0.0.1:53")
    if kw.get("dns_zone"):
        try:
            kw["dns_zone"] = normalize_name(kw["dns_zone"])
        except InvalidName as exc:
            raise UsageError(f"--dns-zone: {exc}") from None
    settings = replace(base, **kw)
    if settings.challenge == "dns-01" and settings.dns == "hook" and not (
            settings.dns_hook or settings.dns_options.get("hook", {}).get("command")):
        raise UsageError("dns-01 with the hook provider needs --dns-hook CMD",
                         hint="or choose another --dns: " + ", ".join(DNS_PROVIDERS))
    return kw


def account_options(ctx: Context) -> Any:
    import os

    from acmeali.accounts import AccountOptions

    acme = ctx.config.acme
    emails = tuple(ctx.arg("email") or ()) or acme.email
    hmac = ctx.arg("eab_hmac_key") or os.environ.get("ACMEALI_EAB_HMAC_KEY") or acme.eab_hmac_key
    return AccountOptions(emails=emails, agree_tos=bool(ctx.arg("agree_tos")) or acme.agree_tos,
                          key_type=ctx.arg("account_key_type") or acme.account_key_type,
                          eab_kid=ctx.arg("eab_kid") or acme.eab_kid, eab_hmac_key=hmac)


def make_environment(ctx: Context) -> Any:
    from acmeali.issuance import Environment

    cfg = ctx.config
    return Environment(store=ctx.store, ui=ctx.ui, account=account_options(ctx),
                       ca_bundle=ctx.ca_bundle, aliyun=cfg.aliyun, timeout=cfg.acme.timeout,
                       keep_versions=cfg.renewal.keep_versions)


def run(ctx: Context) -> int:
    from acmeali.issuance import IssueSpec, csr_names, issue
    from acmeali.names import InvalidName, normalize_names

    args = ctx.args
    cfg = ctx.config
    if args.force and args.keep_until_expiring:
        raise UsageError("--force and --keep-until-expiring contradict each other")
    raw_names: list[str] = list(args.domains or [])
    if args.csr and not raw_names:
        try:
            raw_names = csr_names(args.csr)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--csr {args.csr}: cannot read names from it ({exc})") from None
    conf_cert = cfg.certificate(args.name) if args.name else None
    if conf_cert is None and raw_names:
        conf_cert = cfg.certificate(args.name or default_lineage_name(raw_names))
    if not raw_names and conf_cert is not None:
        raw_names = list(conf_cert.domains)
    stored = _stored(ctx, args.name) if args.name and not raw_names else None
    if stored is not None:  # certbot's `certonly --cert-name N`: the lineage's own names
        raw_names = list(stored.domains)
    if not raw_names:
        raise UsageError("no names given", hint="use -d NAME (repeatable), or --name of a "
                                                "certificate in the config file")
    try:
        names, notices = normalize_names(raw_names)
    except InvalidName as exc:
        raise UsageError(str(exc)) from None
    for n in notices:
        ctx.ui.info(f"notice: {n}")
    from acmeali.lifecycle import choose_lineage

    choice = choose_lineage(ctx.store, names, args.name, force=bool(args.force))
    name, existing = choice.name, choice.meta
    check_lineage_name(name)
    for other in choice.also_covering:
        ctx.ui.warn(f"lineage {other} already covers {', '.join(names)}; this issues "
                    f"{name} as well (`acmeali delete --name {other}` removes the other)")
    if conf_cert is None and cfg.certificate(name) is not None:
        conf_cert = cfg.certificate(name)
    flag_keys: tuple[str, ...] = ()
    if conf_cert is not None:
        base = conf_cert.settings
    elif existing is not None:
        from acmeali.plan import lineage_plan

        # Re-issuing a stored lineage keeps what it was issued with (webroot, dns, hooks).
        plan = lineage_plan(existing, cfg)
        base, flag_keys = plan.settings, plan.flag_keys
    else:
        base = cfg.defaults
    flags = flag_settings(base, args)
    settings = replace(base, **flags)

    from acmeali.preflight import check_hooks, hooks_of
    from acmeali.solvers import check_supported

    check_supported(settings, names)
    check_hooks(hooks_of(settings, settings.deploy))
    dry_run = bool(args.dry_run)
    # A stored lineage stays at its CA unless --server/--staging says otherwise (as
    # certbot's renewal configuration does): `issue --name N --force` re-issues where N is.
    server = ctx.server
    if existing is not None and not (ctx.arg("server") or ctx.arg("staging")):
        server = existing.server
    same_server = existing is not None and existing.server == server
    if existing is not None and not same_server:
        ctx.ui.info(f"lineage {name} moves from {existing.server} to {server}")
    if (existing is not None and same_server and not args.force and not dry_run
            and choice.same_names):
        from acmeali.lifecycle import not_due_message

        message = not_due_message(existing, cfg.renewal.days_before_expiry)
        if message is not None:
            ctx.ui.result(message)
            return _deploy_new_targets(ctx, name, list(flags.get("deploy", ())))
    if settings.challenge == "dns-01" and settings.dns == "manual" and not dry_run:
        ctx.ui.warn(f"{name} uses --dns manual: `acmeali renew` cannot renew it unattended; "
                    "renew it at a terminal before it expires, or re-issue it with --dns hook "
                    "or --dns alidns")
    if choice.added and existing is not None:
        ctx.ui.info(f"Expanding lineage {name} with {', '.join(choice.added)}")
    spec = IssueSpec(name=name, domains=tuple(names), settings=settings, server=server,
                     csr_path=args.csr, dry_run=dry_run,
                     flag_keys=tuple(dict.fromkeys((*flag_keys, *flags))))
    env = make_environment(ctx)
    ctx.ui.info(f"Requesting a certificate for {', '.join(names)} from {server}")
    with pre_and_post_hooks(settings, ctx.ui, dry_run=spec.dry_run):
        result = issue(spec, env)
    if result.dry_run:
        return 0
    meta = result.meta
    paths = ctx.store.live_paths(name)
    from acmeali.renewal import describe_expiry

    ctx.ui.result(f"Certificate for {', '.join(names)} saved (lineage {name}, version "
                  f"{result.version}):\n"
                  f"  fullchain: {paths.fullchain}\n"
                  + (f"  key:       {paths.privkey}\n" if not args.csr else "")
                  + f"  {describe_expiry(meta)}")
    failed = report_deploys(ctx, result.deploy_outcomes, indent="  deployed to ")
    if settings.deploy_hook:
        from acmeali.renewal import run_deploy_hook

        run_deploy_hook(settings.deploy_hook, meta, ctx.store, ctx.ui)
    from acmeali.commands.schedule import print_next_step

    print_next_step(ctx)  # "Next: keep it renewed with `acmeali schedule install`"
    return 1 if failed else 0


def _deploy_new_targets(ctx: Context, name: str, targets: list[str]) -> int:
    """`issue --deploy T` on a lineage that is not due: T is recorded and deployed to now,
    so a play that adds a target later gets it without a new certificate."""
    from acmeali.issuance import deploy_lineage

    store = ctx.store
    with store.lock(name, wait=30.0):
        meta = store.load_meta(name)
        new = [t for t in targets if t not in meta.deploy]
        if not new:
            return 0
        meta.deploy.extend(new)
        outcomes = deploy_lineage(meta, make_environment(ctx), new)
    return 1 if report_deploys(ctx, outcomes, indent="  deployed to ") else 0


def _stored(ctx: Context, name: str) -> Any:
    """The stored lineage ``name`` (for `issue --name N` without -d), or None."""
    if name not in ctx.store.lineage_names():
        return None
    return ctx.store.load_meta(name)


@contextmanager
def pre_and_post_hooks(settings: CertSettings, ui: UI, *, dry_run: bool = False
                       ) -> Iterator[None]:
    """The lineage's pre-hook before issuing (its failure stops it: nothing is requested),
    and its post-hook after, also when issuance or the pre-hook failed (restart what the
    pre-hook stopped).

    A failing post-hook after a failed issuance is a warning, not the error: the issuance
    error is the one the user needs to read. A dry run runs neither, as `renew --dry-run`.
    """
    from acmeali.hooks import run_hook

    if dry_run:
        yield
        return
    ok = False
    try:
        # Inside the try: a pre-hook that fails half-way (stopped nginx, then failed) still
        # gets its post-hook, which restarts what it stopped.
        if settings.pre_hook:
            run_hook(settings.pre_hook, {}, what="pre hook")
        yield
        ok = True
    finally:
        if settings.post_hook:
            try:
                run_hook(settings.post_hook, {}, what="post hook")
            except AcmealiError as exc:
                if ok:
                    raise
                ui.warn(exc.message)


def report_deploys(ctx: Context, outcomes: list[Any], *, dry_run: bool = False,
                   indent: str = "", recorded: bool = True) -> int:
    """One line per target (stdout when it worked, stderr when not); returns the failures."""
    failed = 0
    for o in outcomes:
        if o.ok:
            ctx.ui.result(f"{indent}{o.target}: {'plan: ' if dry_run else ''}{o.message}")
        else:
            failed += 1
            ctx.ui.error(f"{o.target}: {o.message}")
    if failed and recorded:
        ctx.ui.info(f"{failed} deploy target(s) failed; `acmeali deploy --name <lineage>` or "
                    "the next `acmeali renew` retries them")
    return failed
