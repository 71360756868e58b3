"""``acmeali import certbot``: move certbot's lineages over without re-issuing anything.

Offline: no request goes to the CA. See ``acmeali/certbot_import.py`` for the mapping and
docs/migrating.md for the walk-through.
"""

from __future__ import annotations

from pathlib import Path

from acmeali.cli import CommandParsers
from acmeali.context import Context
from acmeali.errors import AcmealiError, UsageError


def register(cp: CommandParsers) -> None:
    p = cp.add("import", help="take over certificates another ACME client issued", leaf=False)
    sub = CommandParsers.group(p, "import_command")
    c = sub.add("certbot", help="import certbot's lineages and account (no re-issuing)",
                description="Copy certbot's live certificates, keys and renewal settings into "
                            "acmeali lineages of the same names, and certbot's account for "
                            "their server, without contacting the CA. With --state-dir equal "
                            "to --config-dir the live/ paths servers use stay the same.")
    c.add_argument("--config-dir", metavar="DIR", default="/etc/letsencrypt",
                   help="certbot's configuration directory (/etc/letsencrypt)")
    c.add_argument("--cert-name", action="append", dest="names", metavar="NAME",
                   help="only this certbot lineage (repeatable; default: all)")
    c.add_argument("--dry-run", action="store_true",
                   help="show what would be imported and what does not map; write nothing")
    c.set_defaults(handler=run)


def run(ctx: Context) -> int:
    from acmeali import certbot_import as ci

    config_dir = Path(ctx.args.config_dir)
    dry = bool(ctx.args.dry_run)
    store = ctx.store
    in_place = _same_dir(config_dir, ctx.state_dir)
    lineages = ci.find_lineages(config_dir, tuple(ctx.args.names or ()))
    if not lineages:
        ctx.ui.result(f"No certbot lineages in {config_dir / 'renewal'}")
        return 0
    existing = set(store.lineage_names())
    accounts_done: dict[str, str] = {}
    imported = failed = 0
    for lin in lineages:
        try:
            msg = _import_one(ctx, lin, config_dir, existing, accounts_done, dry, in_place)
        except AcmealiError as exc:
            failed += 1
            ctx.ui.error(f"{lin.name}: {exc.render()}")
            continue
        if msg is not None:
            imported += 1
    for line in ci.hook_directories(config_dir):
        ctx.ui.warn(f"not run by acmeali: {line}; give their commands as --deploy-hook / "
                    "--pre-hook / --post-hook or [renewal] hooks")
    verb = "Would import" if dry else "Imported"
    ctx.ui.result(f"{verb} {imported} of {len(lineages)} certbot lineage"
                  f"{'' if len(lineages) == 1 else 's'} into {ctx.state_dir}"
                  + (f"; {failed} failed" if failed else ""))
    if imported and not dry:
        ctx.ui.info("Next: stop certbot's renewal (systemctl disable --now certbot.timer, or "
                    "remove its cron entry), then `acmeali schedule install`")
    return 1 if failed else 0


def _import_one(ctx: Context, lin: object, config_dir: Path, existing: set[str],
                accounts_done: dict[str, str], dry: bool, in_place: bool) -> str | None:
    from acmeali import certbot_import
    from acmeali.config import check_lineage_name
    from acmeali.renewal import describe_expiry

    assert isinstance(lin, certbot_import.CertbotLineage)
    ui = ctx.ui
    if lin.name in existing:
        ui.info(f"{lin.name}: acmeali already has a lineage of this name; left alone")
        return None
    check_lineage_name(lin.name, what="certbot lineage name")
    server = lin.server
    if not server:
        raise UsageError(f"{lin.conf_path} names no server")
    bundle = certbot_import.read_bundle(config_dir, lin)
    mapping = certbot_import.map_settings(lin, config_dir)
    meta, key = certbot_import.build_meta(lin, bundle, mapping, server)
    from acmeali import certutil

    try:
        certutil.check_bundle(key, bundle["fullchain"], meta.domains)
    except AcmealiError as exc:
        if "expired" not in exc.message:
            raise UsageError(f"certbot's live files are not a usable bundle: {exc.message}"
                             ) from None
        ui.warn(f"{lin.name}: {exc.message}; imported anyway, `acmeali renew` renews it now")

    account_note = _account(ctx, lin, config_dir, server, accounts_done, dry)
    for item in mapping.unmapped:
        ui.warn(f"{lin.name}: not mapped: {item}")
    if dry:
        ui.result(f"{lin.name}: would import {', '.join(meta.domains)} from {server} "
                  f"({account_note}); settings {_settings_line(mapping.settings)}")
        return lin.name
    with ctx.store.lock(lin.name, wait=0):
        version = certbot_import.store_lineage(ctx.store, meta, key, bundle)
    paths = ctx.store.live_paths(lin.name)
    ui.result(f"{lin.name}: imported {', '.join(meta.domains)} as version {version} "
              f"({describe_expiry(meta)}); {account_note}\n  fullchain: {paths.fullchain}\n"
              f"  key:       {paths.privkey}")
    if in_place:
        moved = certbot_import.disable_certbot_conf(lin)
        ui.info(f"{lin.name}: certbot's renewal file renamed to {moved.name}; acmeali renews "
                "this lineage now (rename it back to return it to certbot)")
    return lin.name


def _account(ctx: Context, lin: object, config_dir: Path, server: str,
             done: dict[str, str], dry: bool) -> str:
    """Import the lineage's certbot account for its server once; say what happened."""
    from acmeali import certbot_import

    assert isinstance(lin, certbot_import.CertbotLineage)
    if server in done:
        return done[server]
    if ctx.store.load_account(server) is not None:
        note = "acmeali's existing account for the server is used"
    elif not lin.params.get("account"):
        note = "no certbot account named; the first renewal registers one"
    else:
        account = certbot_import.read_account(config_dir, server, lin.params["account"])
        if not dry:
            certbot_import.save_account(ctx.store, account)
        note = f"account {account.url} {'would be ' if dry else ''}imported"
    done[server] = note
    return note


def _settings_line(settings: dict[str, object]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in sorted(settings.items())) or "(defaults)"


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
