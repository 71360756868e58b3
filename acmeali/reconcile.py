"""The live switch and the lineage record never disagree: roll forward to what is live.

Issuance makes a new version live (one atomic rename) and *then* saves the record. A
``kill -9`` or a full disk between the two leaves ``live/`` on version N+1 and the record
on version N. Nobody but acmeali switches ``current``, and it does so only after the whole
bundle was written, fsynced and checked, so a live version newer than the recorded one is
a finished issuance whose bookkeeping was cut off. Every reader that decides something
from the record (``renew``, ``issue``, ``certs list``/``check``) first calls
:func:`reconcile`: it verifies the live version again (complete, key matches, names
covered, chain consistent) and records it. A live version that fails that check, or one
older than the record, is damage a human must look at: StoreError naming the lineage.

The common case costs one ``readlink`` per lineage and no import beyond the stdlib.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from acmeali.errors import AcmealiError, LockHeld, StoreError
from acmeali.lineage import AriState, LineageMeta, to_iso, utcnow

if TYPE_CHECKING:
    from acmeali.store.host import HostStore

log = logging.getLogger(__name__)


ASK: Literal["ask"] = "ask"  # the live version is not known yet: ask the store


def out_of_step(store: HostStore, meta: LineageMeta,
                live: int | Literal["ask"] | None = ASK) -> bool:
    """Whether ``live/`` points at another version than the record (one readlink, or
    nothing when the caller read the live version already, as ``lineage_records`` does)."""
    if isinstance(live, str):
        live = store.live_version(meta.name)
    recorded = meta.current.version if meta.current is not None else None
    return live is not None and live != recorded


def reconcile(store: HostStore, meta: LineageMeta, *, save: bool = True,
              locked: bool = False, live: int | Literal["ask"] | None = ASK) -> LineageMeta:
    """``meta``, or the record of the version that is live when a run was cut off after
    the switch. ``save`` writes it (taking the lineage lock unless ``locked``); without
    ``save`` (read-only commands such as ``certs check``) the result is in memory only.
    Raises StoreError when the live version is not one acmeali can vouch for. ``live``:
    the live version when the caller read it with the record (it is asked again before
    anything is changed)."""
    if not out_of_step(store, meta, live):
        return meta
    if save and not locked:
        try:
            with store.lock(meta.name, wait=0):
                fresh = store.load_meta(meta.name)
                return reconcile(store, fresh, save=True, locked=True)
        except LockHeld:
            return meta  # the holder is mid-issuance: its own save settles it
    live = store.live_version(meta.name)
    assert live is not None
    recorded = meta.current.version if meta.current is not None else None
    if recorded is not None and live < recorded:
        raise StoreError(f"lineage {meta.name!r}: live/ points at version {live}, older than "
                         f"the recorded version {recorded} (hand-edited?); skipped",
                         hint=_hint(meta.name))
    _roll_forward(store, meta, live)
    if save:
        store.save_meta(meta)
        store.drop_pending_key(meta.name)
        log.info("%s: recorded version %d, made live by a run that was cut off", meta.name,
                 live)
    return meta


def _hint(name: str) -> str:
    return ("restore the state directory from a backup, or re-issue it with "
            f"`acmeali issue --name {name} --force`")


def _roll_forward(store: HostStore, meta: LineageMeta, version: int) -> None:
    """Verify live ``version`` as issuance would before switching; then record it."""
    from acmeali import certutil, keys
    from acmeali.names import covers

    name = meta.name
    try:
        bundle = store.read_live(name)
        if bundle.version != version:
            raise StoreError(f"live/ moved to version {bundle.version} while being read")
        key = None
        if bundle.privkey:
            key = keys.load_private_key(bundle.privkey, source=f"{name} live key")
            certutil.check_bundle(key, bundle.fullchain, meta.domains)
        else:
            leaf = certutil.load_chain(bundle.fullchain)[0]
            have = certutil.names_of(leaf)
            missing = [d for d in meta.domains if not any(covers(h, d) for h in have)]
            if missing:
                raise StoreError(f"the certificate does not cover {', '.join(missing)}")
        if certutil.load_chain(bundle.cert)[0] != certutil.load_chain(bundle.fullchain)[0]:
            raise StoreError("cert.pem is not the leaf of fullchain.pem")
        facts = certutil.cert_facts(bundle.fullchain, key, version)
    except AcmealiError as exc:
        raise StoreError(f"lineage {name!r}: live version {version} is not the recorded one "
                         f"and does not verify ({exc.message}); skipped",
                         hint=_hint(name)) from None
    if key is not None:
        facts.key_type = keys.key_type_of(key)
    had_ari = meta.ari is not None
    meta.current = facts
    meta.pending_order = None
    meta.last_renewal = {"time": to_iso(utcnow()), "ok": True, "error": None}
    # ARI state belongs to a certificate: a CA that offered it for the old one does for
    # the new one; the window is fetched again at the next run.
    meta.ari = AriState(cert_id=facts.ari_cert_id) if had_ari and facts.ari_cert_id else None
