"""``acmeali account``: register, show, update contacts, roll the key over, deactivate.

Accounts are stored per ACME server in the state directory; ``--server`` picks which.
"""

from __future__ import annotations

from acmeali.cli import CommandParsers
from acmeali.config import KEY_TYPES
from acmeali.context import Context
from acmeali.errors import UsageError


def register(cp: CommandParsers) -> None:
    p = cp.add("account", help="manage the ACME account of a server", leaf=False)
    sub = CommandParsers.group(p, "account_command")
    r = sub.add("register", help="create (or find) the account for --server")
    r.add_argument("--email", action="append", metavar="E", help="contact e-mail (repeatable)")
    r.add_argument("--key-type", choices=KEY_TYPES, dest="account_key_type",
                   help="account key type (ec256)")
    r.add_argument("--agree-tos", action="store_true", default=None,
                   help="agree to the CA's terms of service")
    r.add_argument("--eab-kid", metavar="K", help="external account binding key id")
    r.add_argument("--eab-hmac-key", metavar="K",
                   help="external account binding HMAC key, base64url (or $ACMEALI_EAB_HMAC_KEY)")
    r.set_defaults(handler=run_register)
    s = sub.add("show", help="show the stored account and its status at the CA")
    s.set_defaults(handler=run_show)
    u = sub.add("update", help="replace the account's contact e-mails")
    u.add_argument("--email", action="append", metavar="E", required=True,
                   help="contact e-mail (repeatable)")
    u.set_defaults(handler=run_update)
    ro = sub.add("rollover", help="replace the account key (RFC 8555 §7.3.5)")
    ro.add_argument("--key-type", choices=KEY_TYPES, dest="account_key_type",
                    help="new key type (default: same as now)")
    ro.set_defaults(handler=run_rollover)
    d = sub.add("deactivate", help="deactivate the account at the CA (cannot be undone)")
    d.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    d.set_defaults(handler=run_deactivate)


def _client(ctx: Context):  # type: ignore[no-untyped-def]
    from acmeali.acme.client import AcmeClient

    return AcmeClient(ctx.server, ca_bundle=ctx.ca_bundle, timeout=ctx.config.acme.timeout)


def _loaded(ctx: Context):  # type: ignore[no-untyped-def]
    from acmeali.accounts import load_account

    client = _client(ctx)
    record = load_account(client, ctx.store, ctx.server)
    if record is None:
        server = f" --server {ctx.arg('server')}" if ctx.arg("server") else ""
        raise UsageError(f"no account for {ctx.server} in {ctx.state_dir}",
                         hint=f"`acmeali account register{server} --email you@example.com "
                              "--agree-tos`")
    return client, record


def run_register(ctx: Context) -> int:
    from acmeali.accounts import load_account, register_account
    from acmeali.commands.issue import account_options

    client = _client(ctx)
    existing = ctx.store.load_account(ctx.server)
    if existing is not None and existing[0].get("status") != "deactivated":
        load_account(client, ctx.store, ctx.server)
        ctx.ui.result(f"An account for {ctx.server} exists already: {existing[0]['url']}")
        return 0
    record = register_account(client, ctx.store, ctx.server, account_options(ctx), ctx.ui)
    ctx.ui.result(f"Account {record['url']} (contacts: "
                  f"{', '.join(record['contacts']) or 'none'})")
    return 0


def run_show(ctx: Context) -> int:
    from acmeali import keys

    client, record = _loaded(ctx)
    account = client.find_account(client.account_key)
    status = account.status if account is not None else "unknown to the CA"
    contacts = account.contacts if account is not None else record.get("contacts", [])
    ctx.ui.result("\n".join([
        f"server:     {ctx.server}",
        f"account:    {record['url']}",
        f"status:     {status}",
        f"contacts:   {', '.join(contacts) or 'none'}",
        f"key:        {keys.key_type_of(client.account_key)}, "
        f"thumbprint {keys.jwk_thumbprint(client.account_key)}",
        f"created:    {record.get('created', '?')}",
    ]))
    return 0


def run_update(ctx: Context) -> int:
    from acmeali.accounts import contacts_of
    from acmeali.commands.issue import account_options

    client, record = _loaded(ctx)
    emails = account_options(ctx).emails
    account = client.update_contacts(contacts_of(emails))
    record["contacts"] = list(account.contacts)
    ctx.store.save_account(ctx.server, record, None)
    ctx.ui.result(f"Contacts now: {', '.join(account.contacts) or 'none'}")
    return 0


def run_rollover(ctx: Context) -> int:
    from acmeali import keys

    client, record = _loaded(ctx)
    key_type = ctx.arg("account_key_type") or keys.key_type_of(client.account_key)
    new_key = keys.generate_key(key_type)
    client.rollover(new_key)
    record["key_type"] = key_type
    ctx.store.save_account(ctx.server, record, keys.private_key_pem(new_key))
    ctx.ui.result(f"Account key replaced ({key_type}, thumbprint "
                  f"{keys.jwk_thumbprint(new_key)})")
    return 0


def run_deactivate(ctx: Context) -> int:
    import sys

    client, record = _loaded(ctx)
    if not ctx.args.yes:
        if not sys.stdin.isatty():
            raise UsageError("deactivation cannot be undone; pass --yes to confirm")
        if input(f"Deactivate {record['url']} for good? [y/N] ").strip().lower() not in ("y",
                                                                                        "yes"):
            raise UsageError("not deactivated")
    client.deactivate()
    record["status"] = "deactivated"
    ctx.store.save_account(ctx.server, record, None)
    ctx.ui.result(f"Account {record['url']} deactivated; `acmeali account register` creates a "
                  "new one")
    return 0
