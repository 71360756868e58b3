"""``acmeali storage``: set up, inspect and move the storage a fleet of hosts shares.

``init`` creates or upgrades the PostgreSQL schema, ``status`` says what is stored where,
``migrate`` copies a state directory into the database (or back) without re-issuing, and
``rotate-key`` re-encrypts every private key under a new storage key in one transaction.
The database backend (and psycopg) is imported only inside these handlers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from acmeali.cli import CommandParsers
from acmeali.config import STORAGE_BACKEND_NAMES
from acmeali.context import Context
from acmeali.errors import UsageError

if TYPE_CHECKING:
    from acmeali.store.postgres import PostgresStorage
    from acmeali.store.seam import SharedStorage


def register(cp: CommandParsers) -> None:
    p = cp.add("storage", help="shared storage for fleets: init, status, migrate, rotate-key",
               leaf=False)
    sub = CommandParsers.group(p, "storage_command")
    i = sub.add("init", help="create or upgrade acmeali's tables in the [storage] database")
    i.set_defaults(handler=run_init)
    s = sub.add("status", help="the backend, where it is, its schema and what it holds")
    s.set_defaults(handler=run_status)
    m = sub.add("migrate", help="copy accounts, lineages, versions and keys to another backend",
                description="Copy everything from the state directory into the [storage] "
                            "database (--to postgresql), or from the database into the state "
                            "directory (--to files). Nothing is re-issued; running it again "
                            "finishes an interrupted copy and never overwrites differing data.")
    m.add_argument("--to", required=True, choices=STORAGE_BACKEND_NAMES, dest="to_backend",
                   help="the backend to copy into")
    m.set_defaults(handler=run_migrate)
    r = sub.add("rotate-key", help="re-encrypt every private key in the database with a new "
                                   "storage key (one transaction)")
    r.add_argument("--new-key-file", required=True, metavar="FILE",
                   help="32 random bytes in base64, mode 0600 (openssl rand -base64 32)")
    r.set_defaults(handler=run_rotate_key)


def _postgres(ctx: Context) -> PostgresStorage:
    from acmeali.store.seam import backend_factory

    store: PostgresStorage = backend_factory("postgresql")(ctx.config.storage, ctx.state_dir)
    return store


def _configured(ctx: Context) -> SharedStorage:
    from acmeali.store.seam import open_storage

    return open_storage(ctx.config.storage, ctx.state_dir)


def _need_postgres(ctx: Context, what: str) -> None:
    if ctx.config.storage.backend != "postgresql":
        raise UsageError(f"`acmeali storage {what}` works on the PostgreSQL backend; the "
                         "configuration uses the state directory",
                         hint="set [storage] backend = \"postgresql\" and dsn (docs/fleet.md)")


def run_init(ctx: Context) -> int:
    _need_postgres(ctx, "init")
    store = _postgres(ctx)
    try:
        before, now = store.init_schema()
    finally:
        store.close()
    if before == now:
        ctx.ui.result(f"{store.describe()}: schema version {now}, up to date")
    elif before == 0:
        ctx.ui.result(f"{store.describe()}: created acmeali's tables (schema version {now})")
    else:
        ctx.ui.result(f"{store.describe()}: schema upgraded from version {before} to {now}")
    return 0


def run_status(ctx: Context) -> int:
    if ctx.config.storage.backend != "postgresql":
        store = _configured(ctx)
        names = store.lineage_names()
        ctx.ui.result(f"backend files: {store.describe()}, {len(store.account_servers())} "
                      f"account(s), {len(names)} lineage(s)")
        return 0
    pg = _postgres(ctx)
    try:
        version = pg.schema_version()
        if version is None:
            ctx.ui.result(f"backend postgresql: {pg.describe()}, no acmeali tables yet "
                          "(`acmeali storage init` creates them)")
            return 0
        counts = pg.counts()
        opened = pg.check_key()  # StoreError (exit 1) when this host's key is wrong
    finally:
        pg.close()
    ctx.ui.result(f"backend postgresql: {pg.describe()}, schema version {version}, "
                  f"{counts['accounts']} account(s), {counts['lineages']} lineage(s), "
                  f"{counts['versions']} version(s)")
    ctx.ui.result(f"storage key {pg.sealing_key.key_id}: " + (
        "opens the stored private keys" if opened else "no private key stored yet"))
    return 0


def run_migrate(ctx: Context) -> int:
    from acmeali.store.filestorage import FileStorage
    from acmeali.store.migrate import copy_storage

    to = ctx.arg("to_backend")
    files = FileStorage(ctx.state_dir)
    pg = _postgres(ctx)
    source, target = (files, pg) if to == "postgresql" else (pg, files)
    try:
        report = copy_storage(source, target)
    finally:
        pg.close()
    for line in report.warnings:
        ctx.ui.warn(line)
    for line in report.skipped:
        ctx.ui.warn(f"skipped {line}")
    for line in report.failed:
        ctx.ui.error(line)
    ctx.ui.result(f"Copied {report.accounts} account(s) and {report.lineages} lineage(s) "
                  f"({report.versions} version(s)) from {source.describe()} to "
                  f"{target.describe()}.")
    if report.failed or report.skipped:
        ctx.ui.error("not everything was copied; fix what is named above and run the same "
                     "command again (it continues where it stopped)")
        return 1
    if to == "postgresql" and ctx.config.storage.backend != "postgresql":
        ctx.ui.info("The database now holds this host's state. Set [storage] backend = "
                    "\"postgresql\" when every host should use it (docs/fleet.md).")
    return 0


def run_rotate_key(ctx: Context) -> int:
    from acmeali.store.sealing import load_key_file

    _need_postgres(ctx, "rotate-key")
    new = load_key_file(ctx.arg("new_key_file"))
    pg = _postgres(ctx)
    try:
        if new.key_id == pg.sealing_key.key_id:
            raise UsageError("--new-key-file holds the key in use already; make a new one "
                             "with `openssl rand -base64 32`")
        count = pg.rotate_key(new)
    finally:
        pg.close()
    ctx.ui.result(f"Re-encrypted {count} private key(s) with storage key {new.key_id}. "
                  f"Install {ctx.arg('new_key_file')} as [storage] key_file on every host now.")
    return 0

