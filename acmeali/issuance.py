"""One issuance: lock -> recheck -> order -> solve -> finalize -> check -> store -> deploy.

The order of these steps is what keeps a working certificate safe:
- the lineage lock is shared with ``renew`` and ``deploy``; after taking it we re-check
  whether the work is still needed, because another process may have just done it;
- the new key and the order URL are recorded *before* finalization, so a run killed
  after the CA issued can resume the order and download instead of ordering again;
- a new version becomes live only after the whole bundle is written, fsynced and checked
  (key matches, names covered, chain verifies), and the live switch is one atomic rename
  per file; deploys come after, and their outcome is recorded per target so a failed
  deploy is retried by the next run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acmeali.accounts import AccountOptions, ensure_account, load_account
from acmeali.config import LETSENCRYPT, LETSENCRYPT_STAGING, AliyunSettings, CertSettings
from acmeali.errors import AcmealiError, StoreError, UsageError
from acmeali.faults import checkpoint
from acmeali.lineage import AriState, LineageMeta, to_iso, utcnow

if TYPE_CHECKING:
    from acmeali.acme.client import AcmeClient
    from acmeali.acme.messages import Order
    from acmeali.deployers import DeployOutcome
    from acmeali.keys import PrivateKey
    from acmeali.store.host import HostStore
    from acmeali.ui import UI

log = logging.getLogger(__name__)

VALIDATION_TIMEOUT = 300.0
FINALIZE_TIMEOUT = 300.0


def staging_counterpart(server: str) -> str:
    """Where ``--dry-run`` goes: Let's Encrypt's staging for Let's Encrypt, else the same CA."""
    return LETSENCRYPT_STAGING if server == LETSENCRYPT else server


@dataclass(frozen=True)
class IssueSpec:
    name: str
    domains: tuple[str, ...]
    settings: CertSettings
    server: str
    csr_path: str | None = None  # --csr: the user's own CSR (and key, which we never see)
    force_new_key: bool = False
    replaces: str | None = None  # RFC 9773 certificate id of the certificate being replaced
    dry_run: bool = False
    deploy: bool = True
    reason: str = "issue"
    # Settings keys given as `issue` flags (recorded; see plan.lineage_plan).
    flag_keys: tuple[str, ...] = ()
    # Renewal: settings.deploy is the lineage's whole target list, not targets to add.
    deploy_exact: bool = False
    # The forced renewal run this issuance belongs to (HostStore.join_run), recorded so
    # that the other hosts in that run skip the lineage: renewal.renewed_in_run.
    run_id: str | None = None


@dataclass
class IssueResult:
    name: str
    meta: LineageMeta
    skipped: bool = False
    version: int | None = None
    deploy_outcomes: list[DeployOutcome] = field(default_factory=list)
    dry_run: bool = False

    @property
    def deploy_failed(self) -> list[DeployOutcome]:
        return [o for o in self.deploy_outcomes if not o.ok]


@dataclass
class Environment:
    """What an issuance needs from the outside world, built once per run and shared."""

    store: HostStore
    ui: UI
    account: AccountOptions
    ca_bundle: str | None = None
    aliyun: AliyunSettings = field(default_factory=AliyunSettings)
    timeout: float = 30.0
    keep_versions: int = 5
    # Trust roots recorded with lineages (server -> PEM file): a `renew` from cron verifies
    # a private CA's TLS certificate with the bundle `issue --ca-bundle` was given.
    bundles: dict[str, str] = field(default_factory=dict)
    _clients: dict[tuple[str, int], AcmeClient] = field(default_factory=dict)

    def client(self, server: str) -> AcmeClient:
        """One client (keep-alive session, nonce pool) per server and thread for this run.

        Per thread because ``renew`` works on lineages concurrently and a client's nonce
        pool and session are not meant to be shared between threads.
        """
        import threading

        key = (server, threading.get_ident())
        client = self._clients.get(key)
        if client is None:
            from acmeali.acme.client import AcmeClient

            client = AcmeClient(server, ca_bundle=self.ca_bundle or self.bundles.get(server),
                                timeout=self.timeout)
            self._clients[key] = client
        return client

    def account_client(self, server: str) -> AcmeClient:
        client = self.client(server)
        if client.kid is None and load_account(client, self.store, server) is None:
            # `renew` starts lineages in parallel (one client per thread): register one
            # account, not one per thread; the others wait here, then load it.
            with self.store.lock("account-registration", wait=VALIDATION_TIMEOUT):
                ensure_account(client, self.store, server, self.account, self.ui)
        return client


def meta_for(spec: IssueSpec, existing: LineageMeta | None) -> LineageMeta:
    """The lineage's metadata after this issuance's settings are applied."""
    settings = _settings_record(spec.settings)
    if spec.csr_path:
        settings["csr"] = str(Path(spec.csr_path).resolve())
    if existing is None:
        return LineageMeta(name=spec.name, domains=list(spec.domains), server=spec.server,
                           key_type=spec.settings.key_type, settings=settings,
                           flag_keys=sorted(spec.flag_keys), deploy=list(spec.settings.deploy))
    existing.domains = list(spec.domains)
    existing.server = spec.server
    existing.key_type = spec.settings.key_type
    existing.settings = settings
    existing.flag_keys = sorted(spec.flag_keys)
    set_deploy_targets(existing, spec.settings.deploy, exact=spec.deploy_exact)
    return existing


def set_deploy_targets(meta: LineageMeta, targets: Sequence[str], *, exact: bool) -> None:
    """``exact``: ``targets`` is the whole list (a config table's ``deploy``); otherwise
    they are added to the lineage's. The deployment records of a dropped target stay: the
    CAS certificate it still points at must not be cleaned up from under it."""
    if exact:
        meta.deploy = list(dict.fromkeys(targets))
        return
    for target in targets:
        if target not in meta.deploy:
            meta.deploy.append(target)


def _settings_record(s: CertSettings) -> dict[str, Any]:
    """The settings worth remembering for renewal (no secrets live in CertSettings)."""
    from dataclasses import asdict

    rec = asdict(s)
    rec.pop("deploy", None)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in rec.items()}


def issue(spec: IssueSpec, env: Environment, *,
          still_needed: Callable[[LineageMeta | None], bool] | None = None,
          lock_wait: float = 0.0) -> IssueResult:
    """Issue (or renew) one lineage. Raises AcmealiError subclasses on failure."""
    store = env.store
    first = False
    try:
        with store.lock(spec.name, wait=lock_wait):
            existing = store.load_meta(spec.name) if spec.name in store.lineage_names() else None
            if existing is not None:
                from acmeali.reconcile import reconcile

                try:
                    # A run cut off after its switch (recorded now; in memory for a dry run).
                    existing = reconcile(store, existing, locked=True, save=not spec.dry_run)
                except StoreError as exc:
                    # Damaged live files: `renew` skips the lineage (still_needed), while an
                    # explicit `issue` replaces them, as the error's hint tells the user to do.
                    log.warning("%s", exc.message)
            if still_needed is not None and not still_needed(existing):
                assert existing is not None
                return IssueResult(spec.name, existing, skipped=True)
            # A lineage exists once its first certificate does: a first issuance that fails
            # leaves nothing behind that `renew` would retry or `certs check` report.
            first = existing is None or existing.current is None
            recorded_bundle = existing.ca_bundle if existing is not None else None
            meta = meta_for(spec, existing)
            if env.ca_bundle:
                meta.ca_bundle = str(Path(env.ca_bundle).resolve())
            elif recorded_bundle:
                env.bundles.setdefault(spec.server, recorded_bundle)
            server = staging_counterpart(spec.server) if spec.dry_run else spec.server
            try:
                result = _issue_locked(spec, meta, server, env)
            except BaseException as exc:  # Ctrl-C too; a kill -9 leaves the order to resume
                if spec.dry_run:
                    raise
                if first and meta.current is None:  # nothing was stored: no lineage
                    forget_lineage(store, spec.name)
                elif isinstance(exc, AcmealiError):
                    meta.last_renewal = {"time": to_iso(utcnow()), "ok": False,
                                         "error": exc.message}
                    store.save_meta(meta)
                raise
            first = False
            return result
    finally:
        if first and spec.name not in store.lineage_names():
            drop_lock_file(store, spec.name)


def forget_lineage(store: HostStore, name: str) -> None:
    """Remove what a failed first issuance stored (record, pending key, empty archive)."""
    store.forget_lineage(name)


def drop_lock_file(store: HostStore, name: str) -> None:
    """Remove the lock of a name that is no lineage (after releasing it)."""
    store.drop_lock_file(name)


def _issue_locked(spec: IssueSpec, meta: LineageMeta, server: str, env: Environment) -> IssueResult:
    from acmeali import certutil, keys

    store, ui = env.store, env.ui
    from acmeali.preflight import check_before_order

    # Everything that can fail here fails before the CA is asked (or an account made).
    check_before_order(spec.name, spec.settings, env.aliyun,
                       meta.deploy if spec.deploy else (), ui)
    key, csr_der, key_pem = _key_and_csr(spec, meta, store)  # a bad --csr: before any request
    if spec.settings.profile:
        # Before any account exists: a profile the CA lacks must not register one.
        env.client(server).check_profile(spec.settings.profile)
    client = env.account_client(server)
    if not spec.dry_run:
        _clean_dns_leftovers(spec, env)

    order = _resume_order(client, meta, spec) if not spec.dry_run else None
    if order is None:
        identifiers = list(spec.domains)
        profile = spec.settings.profile
        order = client.new_order(identifiers, profile=profile, replaces=spec.replaces)
        if not spec.dry_run:
            if key_pem is not None:
                store.put_pending_key(spec.name, key_pem)
            meta.pending_order = {"url": order.url, "domains": list(spec.domains),
                                  "has_key": key_pem is not None}
            store.save_meta(meta)
            checkpoint("after-order")  # crash tests: the order URL is saved, nothing else

    if order.status == "pending":
        # wait_authorizations returns only when all are valid, so no order re-fetch is needed.
        _solve(client, order, spec, env)
    if order.status in ("ready", "pending"):
        client.require_valid_authorizations(order)  # free: all seen valid by now
        ui.progress(f"{spec.name}: finalizing")
        order = client.finalize(order, csr_der, time.monotonic() + FINALIZE_TIMEOUT)
    elif order.status == "processing":
        order = client.wait_order(order, time.monotonic() + FINALIZE_TIMEOUT)
    if order.status != "valid":
        raise AcmealiError(f"{spec.name}: the order ended in status {order.status!r}",
                           hint="run again; a fresh order will be created")
    chains = client.download(order)
    from acmeali.acme.client import select_chain

    fullchain = select_chain(chains, spec.settings.preferred_chain)
    ui.done_progress()

    if key is not None:
        certutil.check_bundle(key, fullchain.encode(), list(spec.domains))
    else:
        _check_csr_bundle(fullchain, list(spec.domains))
    _check_issued(spec, meta, fullchain, csr_der, env, client)
    cert_pem, chain_pem = certutil.split_fullchain(fullchain)

    if spec.dry_run:
        ui.info(f"{spec.name}: dry run against {server} succeeded; nothing was stored")
        return IssueResult(spec.name, meta, dry_run=True)

    checkpoint("after-download")  # crash tests: issued and downloaded, nothing stored yet
    version = store.write_version(
        spec.name, privkey_pem=key_pem, cert_pem=cert_pem.encode(),
        chain_pem=chain_pem.encode(), fullchain_pem=fullchain.encode())
    store.activate(spec.name, version)
    checkpoint("after-switch")  # crash tests: live is new, the record still the old one
    facts = certutil.cert_facts(fullchain.encode(), key, version)
    if key is not None:
        facts.key_type = keys.key_type_of(key)
    meta.current = facts
    meta.pending_order = None
    meta.last_renewal = {"time": to_iso(utcnow()), "ok": True, "error": None}
    if spec.run_id:
        meta.last_renewal["run"] = spec.run_id
    meta.ari = (AriState(cert_id=facts.ari_cert_id)
                if client.directory.renewal_info and facts.ari_cert_id else None)
    store.save_meta(meta)
    store.drop_pending_key(spec.name)
    store.prune(spec.name, env.keep_versions)

    result = IssueResult(spec.name, meta, version=version)
    if spec.deploy and meta.deploy:
        result.deploy_outcomes = deploy_lineage(meta, env)
    return result


def deploy_lineage(meta: LineageMeta, env: Environment, targets: Sequence[str] | None = None,
                   *, dry_run: bool = False) -> list[DeployOutcome]:
    """Deploy the live bundle to ``targets`` (default: the lineage's own) and save outcomes."""
    from acmeali.deployers import deploy

    store = env.store
    bundle = store.read_live(meta.name)
    outcomes = deploy(meta, bundle, list(targets if targets is not None else meta.deploy),
                      settings=env.aliyun, ui=env.ui, live_paths=store.live_paths(meta.name),
                      dry_run=dry_run)
    if not dry_run:
        store.save_meta(meta)
    return outcomes


def _live_key(store: HostStore, name: str) -> bytes:
    """The current version's key bytes; empty when there is none to reuse."""
    try:
        return store.read_live(name).privkey
    except StoreError:
        return b""


def _key_and_csr(spec: IssueSpec, meta: LineageMeta, store: HostStore
                 ) -> tuple[PrivateKey | None, bytes, bytes | None]:
    """(key, CSR DER, key PEM to store); key is None when the user brought a CSR."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from acmeali import keys

    if spec.csr_path:
        csr_der = _load_user_csr(spec.csr_path, spec.domains)
        csr_key = _csr_public_key(csr_der)
        if keys.public_key_sha256(csr_key) in meta.compromised_keys:
            raise UsageError(f"--csr {spec.csr_path}: its key is recorded as compromised for "
                             f"{spec.name}", hint="make a new key and CSR (`acmeali key "
                             "generate`, `acmeali csr`) and issue with --csr NEW.csr")
        return None, csr_der, None

    key: PrivateKey | None = None
    pending = meta.pending_order
    if pending and pending.get("has_key") and pending.get("domains") == list(spec.domains):
        pending_pem = store.pending_key(spec.name)
        if pending_pem is not None:
            key = keys.load_private_key(pending_pem, source=f"{spec.name} pending key")
    if key is None and spec.settings.reuse_key and not spec.force_new_key and meta.current:
        live_pem = _live_key(store, spec.name)
        if live_pem:
            candidate = keys.load_private_key(live_pem, source=f"{spec.name} live key")
            if keys.public_key_sha256(candidate) not in meta.compromised_keys:
                key = candidate
    if key is None:
        key = keys.generate_key(spec.settings.key_type)
    if keys.public_key_sha256(key) in meta.compromised_keys:
        raise StoreError(f"{spec.name}: refusing to use a key recorded as compromised")
    from cryptography import x509

    csr_pem = keys.build_csr(key, list(spec.domains), must_staple=spec.settings.must_staple)
    csr_der = x509.load_pem_x509_csr(csr_pem).public_bytes(Encoding.DER)
    return key, csr_der, keys.private_key_pem(key)


def _csr_public_key(csr_der: bytes) -> Any:
    from cryptography import x509

    return x509.load_der_x509_csr(csr_der).public_key()


def _load_user_csr(path: str, domains: Sequence[str]) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    csr = read_user_csr(path)
    if not csr.is_signature_valid:
        raise UsageError(f"--csr {path}: the CSR's signature does not verify")
    check_csr_names(path, _names_in(csr), domains)
    der: bytes = csr.public_bytes(Encoding.DER)
    return der


def check_csr_names(path: str, in_csr: Sequence[str], domains: Sequence[str]) -> None:
    """The CA finalizes only a CSR naming exactly the order's identifiers (RFC 8555
    §7.4): a mismatch is found here, before any request, not after an order was placed."""
    from acmeali.names import InvalidName, normalize_name

    try:
        have = {normalize_name(n) for n in in_csr}
    except InvalidName as exc:
        raise UsageError(f"--csr {path}: {exc}") from None
    want = set(domains)
    if have != want:
        extra, missing = sorted(have - want), sorted(want - have)
        what = "; ".join(p for p in (
            f"it also names {', '.join(extra)}" if extra else "",
            f"it lacks {', '.join(missing)}" if missing else "") if p)
        raise UsageError(f"--csr {path}: the CSR's names differ from the names to certify "
                         f"({what})", hint="give the CSR's names with -d (or no -d at all), "
                                           "or make a CSR for these names with `acmeali csr`")


def read_user_csr(path: str) -> Any:
    """The user's CSR (an x509.CertificateSigningRequest): a regular file of at most
    1 MiB, PEM or DER; UsageError naming ``--csr`` otherwise."""
    from cryptography import x509

    from acmeali.validate import InvalidValue, read_input_file

    try:
        raw = read_input_file(path, f"--csr {path}")
    except InvalidValue as exc:
        raise UsageError(str(exc)) from None
    try:
        return (x509.load_pem_x509_csr(raw) if b"-----BEGIN" in raw
                else x509.load_der_x509_csr(raw))
    except ValueError:
        raise UsageError(f"--csr {path}: not a PEM or DER certificate signing request") from None


def csr_names(path: str) -> list[str]:
    """The names a user's CSR asks for (SAN, else CN), for ``issue --csr`` without ``-d``."""
    return _names_in(read_user_csr(path))


def _names_in(csr: Any) -> list[str]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(n) for n in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names


def _check_csr_bundle(fullchain: str, domains: list[str]) -> None:
    from acmeali import certutil

    chain = certutil.load_chain(fullchain)
    have = certutil.names_of(chain[0])
    from acmeali.names import covers

    missing = [d for d in domains if not any(covers(h, d) for h in have)]
    if missing:
        raise StoreError(f"the issued certificate does not cover {', '.join(missing)}")


def _check_issued(spec: IssueSpec, meta: LineageMeta, fullchain: str, csr_der: bytes,
                  env: Environment, client: AcmeClient) -> None:
    """Issue 12 items 5 and 17: a chain clients can follow, and what the CSR asked for."""
    from acmeali import certutil
    from acmeali.acme.transport import trust_anchors

    previous = 0
    if meta.current is not None and not spec.dry_run:
        try:
            previous = len(certutil.load_chain(env.store.read_live(spec.name).chain))
        except (AcmealiError, OSError):
            previous = 0  # no (readable) chain.pem before: nothing to compare with
    certutil.check_chain_complete(fullchain, anchors=trust_anchors(client.transport.ca_bundle),
                                  previous_intermediates=previous)
    for what in certutil.dropped_extensions(csr_der, fullchain):
        env.ui.warn(f"{spec.name}: the CA left out the {what} extension the request asked "
                    "for; the certificate was stored without it")


def _resume_order(client: AcmeClient, meta: LineageMeta, spec: IssueSpec) -> Order | None:
    """Reuse the order a killed run left behind, when the CA still has it usable."""
    pending = meta.pending_order
    if not pending or pending.get("domains") != list(spec.domains):
        return None
    if pending.get("has_key") != (spec.csr_path is None):
        return None
    try:
        order = client.fetch_order(pending["url"])
        dead = (client.dead_authorizations(order, settle=60.0)
                if order.status in ("pending", "ready") else [])
    except AcmealiError as exc:
        log.info("%s: stored order not usable (%s); starting a new one", spec.name, exc)
        return None
    if dead:
        # Issue 12 item 1: a server may leave such an order pending; it is dead anyway.
        log.info("%s: stored order can never be finalized (%s); starting a new one",
                 spec.name, ", ".join(f"{a.name} {a.status}" for a in dead))
        return None
    if order.status in ("pending", "ready", "processing", "valid"):
        env_msg = f"{spec.name}: resuming the interrupted order ({order.status})"
        log.info(env_msg)
        return order
    return None


def _clean_dns_leftovers(spec: IssueSpec, env: Environment) -> None:
    """TXT records a killed earlier run of this lineage left in its zone go first."""
    from acmeali.solvers.ledger import RecordLedger

    ledger = RecordLedger(env.store, spec.name)
    if ledger.path.exists():
        from acmeali.solvers.dns01 import clean_leftovers

        clean_leftovers(ledger, spec.settings, env.ui, env.aliyun)


def _solve(client: AcmeClient, order: Order, spec: IssueSpec, env: Environment) -> None:
    """Present every challenge, wait until ready, answer all, poll, clean up in finally."""
    from acmeali.solvers import make_solver
    from acmeali.solvers.base import ChallengeTask

    ui = env.ui
    pending = client.pending_authorizations(order)
    if not pending:
        return
    from acmeali.solvers.ledger import RecordLedger

    ledger = None if spec.dry_run else RecordLedger(env.store, spec.name)
    solver = make_solver(spec.settings, ui, env.aliyun, ledger=ledger)
    if getattr(solver, "sequential", False) and len(pending) > 1:
        # A provider holding one TXT value per name (lego's "sequential"): one authorization
        # at a time, each presented, validated and cleaned up before the next one.
        from dataclasses import replace

        for authz in pending:
            _solve(client, replace(order, authorizations=(authz.url,)), spec, env)
        return
    tasks: list[ChallengeTask] = []
    chosen = []
    for authz in pending:
        chall = authz.challenge(solver.challenge_type)
        if chall is None:
            offered = ", ".join(c.type for c in authz.challenges) or "none"
            raise UsageError(
                f"{authz.identifier.value}: the CA does not offer {solver.challenge_type} "
                f"(offered: {offered})", hint="choose another --challenge")
        ident = authz.identifier.value
        tasks.append(ChallengeTask(
            identifier=ident, token=chall.token,
            key_authorization=client.key_authorization(chall.token),
            txt_name=f"_acme-challenge.{ident}",
            txt_value=client.dns01_value(chall.token)))
        chosen.append(chall)
    from acmeali.solvers.base import HasReadyTimeout

    ready = (solver.ready_timeout() if isinstance(solver, HasReadyTimeout)
             else spec.settings.dns_timeout)
    deadline = time.monotonic() + max(VALIDATION_TIMEOUT, ready + 60)
    try:
        ui.progress(f"{spec.name}: publishing {len(tasks)} {solver.challenge_type} answer(s)")
        solver.present(tasks)
        solver.wait_ready(tasks, time.monotonic() + ready)
        for chall in chosen:
            client.answer_challenge(chall)
        checkpoint("after-answer")  # crash tests: answered, not yet validated
        ui.progress(f"{spec.name}: waiting for the CA to validate")
        client.wait_authorizations(order, deadline)
    finally:
        solver.cleanup(tasks)
        ui.done_progress()
