"""ACME accounts kept per server in the state directory.

An account is a key plus the URL (``kid``) the CA gave it. We store both; on first use
against a server we register (or find, via onlyReturnExisting, a key the CA already
knows). Terms of service need an explicit yes: ``--agree-tos``/``acme.agree_tos``, or a
prompt when a person is at the terminal. Cron without either gets a clear refusal.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from acmeali.errors import UsageError
from acmeali.lineage import to_iso, utcnow

if TYPE_CHECKING:
    from acmeali.acme.client import AcmeClient
    from acmeali.keys import PrivateKey
    from acmeali.store.host import HostStore
    from acmeali.ui import UI


@dataclass(frozen=True)
class AccountOptions:
    emails: tuple[str, ...] = ()
    agree_tos: bool = False
    key_type: str = "ec256"
    eab_kid: str | None = None
    eab_hmac_key: str | None = None


def contacts_of(emails: Sequence[str]) -> list[str]:
    return [e if e.startswith("mailto:") else f"mailto:{e}" for e in emails]


def load_account(client: AcmeClient, store: HostStore, server: str) -> dict[str, Any] | None:
    """Load the stored account for ``server`` into ``client``; None when there is none."""
    from acmeali.keys import load_private_key

    found = store.load_account(server)
    if found is None:
        return None
    record, key_pem = found
    if record.get("status") == "deactivated":
        raise UsageError(f"the account {record['url']} for {server} was deactivated",
                         hint="`acmeali account register` creates a new one")
    key = load_private_key(key_pem, source=f"account key for {server}")
    client.use_account(key, record["url"])
    return record


def confirm_tos(client: AcmeClient, opts: AccountOptions, ui: UI) -> bool:
    """True when the user agreed to the CA's terms (or the CA has none)."""
    tos = client.directory.meta.terms_of_service
    if not tos or opts.agree_tos:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"the CA's terms of service must be accepted: {tos}",
                         hint="read them, then pass --agree-tos (or set acme.agree_tos = true)")
    ui.info(f"The CA's terms of service: {tos}")
    answer = input("Do you agree? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise UsageError("terms of service not accepted; no account was created")
    return True


def ensure_account(client: AcmeClient, store: HostStore, server: str, opts: AccountOptions,
                   ui: UI) -> dict[str, Any]:
    """Use the stored account, or register one (finding an already-registered key)."""
    record = load_account(client, store, server)
    if record is not None:
        return record
    return register_account(client, store, server, opts, ui)


def register_account(client: AcmeClient, store: HostStore, server: str, opts: AccountOptions,
                     ui: UI, key: PrivateKey | None = None) -> dict[str, Any]:
    from acmeali.keys import generate_key, private_key_pem

    meta = client.directory.meta
    eab = None
    if opts.eab_kid or opts.eab_hmac_key:
        if not (opts.eab_kid and opts.eab_hmac_key):
            raise UsageError("external account binding needs both --eab-kid and --eab-hmac-key")
        eab = (opts.eab_kid, opts.eab_hmac_key)
    elif meta.external_account_required:
        raise UsageError(f"{server} requires external account binding",
                         hint="get an EAB key id and HMAC key from your CA and pass "
                              "--eab-kid and --eab-hmac-key")
    key = key or generate_key(opts.key_type)
    existing = client.find_account(key)
    if existing is not None:
        account = existing
        ui.info(f"Found the existing account {account.url}")
    else:
        confirm_tos(client, opts, ui)
        account = client.register(key, contacts=contacts_of(opts.emails), agree_tos=True, eab=eab)
        ui.info(f"Registered account {account.url}")
    record = {"url": account.url, "contacts": list(account.contacts), "created": to_iso(utcnow()),
              "key_type": opts.key_type, "server": server}
    store.save_account(server, record, private_key_pem(key))
    return record
