"""AcmeClient: the RFC 8555 client operations, one method per protocol step.

The client holds the account it acts for (``use_account``) and nothing else between calls
except the lazily fetched directory and a cache of authorizations it has seen valid (so
``wait_authorizations`` does not pay a request to re-read them). Every read is
POST-as-GET (§6.3); every wait honours ``Retry-After`` under a monotonic deadline.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Sequence
from typing import Any

from acmeali.acme import jws
from acmeali.acme.errors import (
    AccountDoesNotExist,
    AcmeError,
    AcmeProblem,
    AcmeTimeout,
    AcmeUsageError,
    AuthorizationFailed,
    ChallengeFailure,
    ExternalAccountRequired,
    OrderFailed,
    TransportError,
)
from acmeali.acme.jws import PrivateKey
from acmeali.acme.messages import (
    Account,
    Authorization,
    Challenge,
    Directory,
    Identifier,
    Order,
    RenewalInfo,
)
from acmeali.acme.transport import USER_AGENT, Response, Transport

log = logging.getLogger("acmeali.acme")

PEM_CHAIN = "application/pem-certificate-chain"

# RFC 5280 §5.3.1 CRLReason codes accepted by RFC 8555 §7.6 / CA policies.
REVOCATION_REASONS: dict[str, int] = {
    "unspecified": 0,
    "keyCompromise": 1,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
}

# Polling when the CA sends no Retry-After: a local or fast CA validates in milliseconds,
# so the first look comes after 0.1 s (measured against Pebble: one poll suffices); later
# looks double up to POLL_CAP, so a slow CA (seconds) costs only a handful of requests.
FIRST_POLL = 0.1
POLL_FACTOR = 2.0
POLL_CAP = 2.5

_FINAL_AUTHZ = {"valid", "invalid", "deactivated", "expired", "revoked"}
# Final states from which an authorization never becomes valid (RFC 8555 §7.1.6): an order
# holding one can never be finalized, whatever status the server still shows for it.
DEAD_AUTHZ = _FINAL_AUTHZ - {"valid"}


def identifier_for(name: str) -> Identifier:
    """``dns`` for names (wildcards too), ``ip`` for IPv4/IPv6 literals (RFC 8738)."""
    text = name.strip()
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        if not text:
            raise AcmeUsageError("empty identifier") from None
        return Identifier("dns", text.lower().rstrip("."))
    return Identifier("ip", str(ip))  # RFC 8738 §3: RFC 5952 text form for IPv6


def mailto(contact: str) -> str:
    """Contacts are ``mailto:`` URIs (§7.3); a bare address gets the scheme added."""
    c = contact.strip()
    if not c:
        raise AcmeUsageError("empty contact address")
    return c if c.lower().startswith("mailto:") else f"mailto:{c}"


def select_chain(chains: Sequence[str], preferred_issuer_cn: str | None) -> str:
    """The chain whose topmost certificate was issued by ``preferred_issuer_cn``.

    Matching the top certificate's issuer (not any certificate's) names the root the
    chain leads to, which is what users choose between. Falls back to the default chain
    (the first) when nothing matches or no preference is given.
    """
    if not chains:
        raise AcmeError("the CA returned no certificate chain")
    if not preferred_issuer_cn:
        return chains[0]
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    want = preferred_issuer_cn.strip()
    for pem in chains:
        try:
            certs = x509.load_pem_x509_certificates(pem.encode())
        except ValueError:
            continue
        if not certs:
            continue
        cns = certs[-1].issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
        if any(str(a.value) == want for a in cns):
            return pem
    log.debug("no chain issued by %r; using the default chain", want)
    return chains[0]


class AcmeClient:
    def __init__(self, directory_url: str, *, ca_bundle: str | None = None,
                 timeout: float = 30.0, user_agent: str = USER_AGENT) -> None:
        if not directory_url.startswith("https://"):
            # RFC 8555 §6.1: ACME is HTTPS only; there is no switch to turn TLS off.
            raise AcmeUsageError(f"ACME directory URL must be https://...: {directory_url!r}")
        self.directory_url = directory_url
        self.transport = Transport(ca_bundle=ca_bundle, timeout=timeout, user_agent=user_agent)
        self._directory: Directory | None = None
        self.account_key: PrivateKey | None = None
        self.kid: str | None = None
        self._valid_authz: dict[str, Authorization] = {}

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> AcmeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def request_count(self) -> int:
        return self.transport.request_count

    # ------------------------------------------------------------------ plumbing
    @property
    def directory(self) -> Directory:
        if self._directory is None:
            self._directory = Directory.from_json(self.transport.get(self.directory_url).json())
        return self._directory

    def use_account(self, key: PrivateKey, kid: str) -> None:
        """Act as this account from now on (kid = account URL)."""
        jws.jwk_of(key)  # validates the key type early
        if not kid:
            raise AcmeUsageError("account URL (kid) is empty")
        self.account_key, self.kid = key, kid

    def _account(self) -> tuple[PrivateKey, str]:
        if self.account_key is None or self.kid is None:
            raise AcmeUsageError("no ACME account selected (register or use_account first)")
        return self.account_key, self.kid

    def _post(self, url: str, payload: Any, *, jwk_key: PrivateKey | None = None,
              accept: str | None = None, retry_safe: bool = False) -> Response:
        """Signed POST; ``payload=None`` is POST-as-GET (always safe to retry).

        With ``jwk_key`` the request carries that public key (newAccount, revocation by
        certificate key, §6.2); otherwise the selected account's ``kid``.
        """
        kid: str | None
        if jwk_key is not None:
            key, kid = jwk_key, None
        else:
            key, kid = self._account()
        nonce_url = self.directory.new_nonce
        return self.transport.post(
            url, lambda nonce: jws.sign(payload, key, url=url, nonce=nonce, kid=kid),
            nonce_url=nonce_url, accept=accept, retry_safe=retry_safe or payload is None)

    # ------------------------------------------------------------------ accounts
    def register(self, key: PrivateKey, *, contacts: Sequence[str] = (),
                 agree_tos: bool = False, eab: tuple[str, str] | None = None) -> Account:
        """newAccount (§7.3). An already registered key answers 200 with its account
        (``Account.created`` False) rather than an error. Selects the account on success.

        ``eab`` is ``(key identifier, base64url HMAC key)`` from the CA (§7.3.4).
        """
        d = self.directory
        if d.external_account_required and eab is None:
            raise ExternalAccountRequired(
                "externalAccountRequired", "this CA only registers accounts bound to an "
                "external account (its directory sets meta.externalAccountRequired)")
        payload: dict[str, Any] = {"contact": [mailto(c) for c in contacts]}
        if agree_tos:
            payload["termsOfServiceAgreed"] = True
        if eab is not None:
            try:
                payload["externalAccountBinding"] = jws.eab_binding(
                    key, eab_kid=eab[0], hmac_key_b64=eab[1], url=d.new_account)
            except ValueError as exc:
                raise AcmeUsageError(f"invalid External Account Binding: {exc}") from exc
        resp = self._post(d.new_account, payload, jwk_key=key)
        return self._account_from(resp, key)

    def find_account(self, key: PrivateKey) -> Account | None:
        """The account registered for ``key``, or None (§7.3.1 onlyReturnExisting).

        Selects the account when found.
        """
        try:
            resp = self._post(self.directory.new_account, {"onlyReturnExisting": True},
                              jwk_key=key, retry_safe=True)
        except AccountDoesNotExist:
            return None
        return self._account_from(resp, key)

    def _account_from(self, resp: Response, key: PrivateKey) -> Account:
        if not resp.location:
            raise TransportError("the CA answered newAccount without a Location (account URL)")
        account = Account.from_json(resp.json(), url=resp.location, created=resp.status == 201)
        self.use_account(key, account.url)
        return account

    def fetch_account(self) -> Account:
        _, kid = self._account()
        resp = self._post(kid, None)
        return Account.from_json(resp.json(), url=kid)

    def update_contacts(self, contacts: Sequence[str]) -> Account:
        """Replace the account's contacts (§7.3.2); an empty list removes them all."""
        _, kid = self._account()
        resp = self._post(kid, {"contact": [mailto(c) for c in contacts]}, retry_safe=True)
        return Account.from_json(resp.json(), url=kid)

    def rollover(self, new_key: PrivateKey) -> None:
        """Replace the account key (§7.3.5); the client then signs with ``new_key``."""
        old_key, kid = self._account()
        url = self.directory.key_change
        if not url:
            raise AcmeUsageError("this CA does not support account key rollover (no keyChange)")
        try:
            inner = jws.key_change_payload(account_url=kid, old_key=old_key, new_key=new_key,
                                           url=url)
        except (ValueError, TypeError) as exc:
            raise AcmeUsageError(f"unusable new account key: {exc}") from exc
        self._post(url, inner)
        self.account_key = new_key

    def deactivate(self) -> Account:
        """Deactivate the account for good (§7.3.6); the CA refuses it afterwards."""
        _, kid = self._account()
        resp = self._post(kid, {"status": "deactivated"})
        return Account.from_json(resp.json(), url=kid)

    # ------------------------------------------------------------------ orders
    def check_profile(self, profile: str) -> None:
        """AcmeUsageError unless the CA's directory lists ``profile`` (needs no account)."""
        d = self.directory
        if not d.profiles:
            raise AcmeUsageError(f"profile {profile!r} requested, but this CA offers no "
                                 "certificate profiles")
        if profile not in d.profiles:
            raise AcmeUsageError(f"this CA has no profile {profile!r}; it offers: "
                                 + ", ".join(sorted(d.profiles)))

    def new_order(self, identifiers: Sequence[str], *, profile: str | None = None,
                  replaces: str | None = None) -> Order:
        """newOrder (§7.4) for DNS names (wildcards too) and IP addresses.

        ``profile`` is sent only when the CA lists it (draft-ietf-acme-profiles);
        ``replaces`` is the ARI certificate id of the certificate being renewed (RFC 9773 §5).
        """
        if not identifiers:
            raise AcmeUsageError("an order needs at least one identifier")
        payload: dict[str, Any] = {"identifiers": [identifier_for(n).to_json()
                                                   for n in identifiers]}
        d = self.directory
        if profile:
            self.check_profile(profile)
            payload["profile"] = profile
        if replaces:
            payload["replaces"] = replaces
        resp = self._post(d.new_order, payload)
        if not resp.location:
            raise TransportError("the CA answered newOrder without a Location (order URL)")
        return Order.from_json(resp.json(), url=resp.location)

    def fetch_order(self, url: str) -> Order:
        return self._fetch_order(url)[0]

    def _fetch_order(self, url: str) -> tuple[Order, float | None]:
        resp = self._post(url, None)
        return Order.from_json(resp.json(), url=url), resp.retry_after

    def fetch_authorization(self, url: str) -> Authorization:
        return self._fetch_authorization(url)[0]

    def _fetch_authorization(self, url: str) -> tuple[Authorization, float | None]:
        resp = self._post(url, None)
        authz = Authorization.from_json(resp.json(), url=url)
        if authz.status == "valid":
            self._valid_authz[url] = authz
        return authz, resp.retry_after

    def pending_authorizations(self, order: Order) -> list[Authorization]:
        """The order's authorizations that still need a challenge answered.

        Already valid ones (reused by the CA) are skipped, as are ones in a final state
        (``wait_authorizations`` reports those).
        """
        out = []
        for url in order.authorizations:
            authz = self._valid_authz.get(url) or self.fetch_authorization(url)
            if authz.status == "pending":
                out.append(authz)
        return out

    def dead_authorizations(self, order: Order, *, settle: float = 0.0
                            ) -> list[Authorization]:
        """The order's authorizations in a final state other than ``valid``.

        §7.1.6 says such an order is ``invalid``, but servers exist that leave it
        ``pending`` until it expires (a day on some CAs): finalizing it fails every time,
        so callers drop the order and place a new one. Costs no request for
        authorizations already seen valid. With ``settle``, an authorization whose
        challenge is still being validated is waited on for up to that many seconds.
        """
        out = []
        for url in order.authorizations:
            authz = self._valid_authz.get(url) or self._settled(url, settle)
            if authz.status in DEAD_AUTHZ:
                out.append(authz)
        return out

    def _settled(self, url: str, within: float) -> Authorization:
        """The authorization, waited on (up to ``within`` seconds) while one of its
        challenges is ``processing``: a run killed right after answering leaves the CA
        validating, and only the outcome says whether the order can still be finalized."""
        deadline = time.monotonic() + within
        interval = FIRST_POLL
        while True:
            authz, retry_after = self._fetch_authorization(url)
            busy = authz.status == "pending" and any(
                c.status == "processing" for c in authz.challenges)
            if not busy or time.monotonic() >= deadline:
                return authz
            self._sleep_until(time.monotonic() + (retry_after if retry_after is not None
                                                  else interval), deadline, f"authorization {url}")
            interval = min(interval * POLL_FACTOR, POLL_CAP)

    def require_valid_authorizations(self, order: Order) -> None:
        """AuthorizationFailed (with the CA's words) unless no authorization is dead."""
        dead = self.dead_authorizations(order)
        if dead:
            raise AuthorizationFailed([_failure(a) for a in dead])

    def answer_challenge(self, challenge: Challenge) -> Challenge:
        """Tell the CA the challenge is ready (§7.5.1: payload is an empty object)."""
        resp = self._post(challenge.url, {}, retry_safe=True)
        return Challenge.from_json(resp.json())

    def wait_authorizations(self, order: Order, deadline: float) -> list[Authorization]:
        """Poll until every authorization of the order is final; ``deadline`` is a
        ``time.monotonic()`` value. Raises ``AuthorizationFailed`` listing every failed
        identifier with the challenge type and the CA's error (§7.5.1, §6.7.1), or
        ``AcmeTimeout``.
        """
        done: dict[str, Authorization] = {}
        now = time.monotonic()
        waiting: dict[str, float] = {}  # url -> when to look next
        interval: dict[str, float] = {}
        for url in order.authorizations:
            if url in self._valid_authz:
                done[url] = self._valid_authz[url]
            else:
                waiting[url] = now + FIRST_POLL
                interval[url] = FIRST_POLL
        while waiting:
            url = min(waiting, key=waiting.__getitem__)
            self._sleep_until(waiting[url], deadline, f"authorization {url}")
            authz, retry_after = self._fetch_authorization(url)
            if authz.status in _FINAL_AUTHZ:
                done[url] = authz
                del waiting[url]
                continue
            if time.monotonic() >= deadline:
                raise AcmeTimeout(f"authorization for {authz.name} still {authz.status} "
                                  "when the deadline passed")
            interval[url] = min(interval[url] * POLL_FACTOR, POLL_CAP)
            waiting[url] = time.monotonic() + (retry_after if retry_after is not None
                                               else interval[url])
        result = [done[u] for u in order.authorizations]
        failures = [_failure(a) for a in result if a.status != "valid"]
        if failures:
            raise AuthorizationFailed(failures)
        return result

    @staticmethod
    def _sleep_until(when: float, deadline: float, what: str) -> None:
        now = time.monotonic()
        if now >= deadline:
            raise AcmeTimeout(f"gave up waiting for {what}: deadline passed")
        # A Retry-After beyond the deadline is clamped: one last look at the deadline.
        wait = min(when, deadline) - now
        if wait > 0:
            time.sleep(wait)

    def finalize(self, order: Order, csr_der: bytes, deadline: float) -> Order:
        """Send the CSR (§7.4) and poll the order until ``valid`` (certificate URL set)."""
        if not csr_der or csr_der[:1] != b"\x30":
            raise AcmeUsageError("finalize needs a DER-encoded CSR")
        resp = self._post(order.finalize, {"csr": jws.b64(csr_der)})
        current = Order.from_json(resp.json(), url=order.url)
        return self._poll_order(current, resp.retry_after, deadline)

    def wait_order(self, order: Order, deadline: float) -> Order:
        """Poll an already finalized (``processing``) order until ``valid``."""
        return self._poll_order(order, None, deadline)

    def _poll_order(self, current: Order, retry_after: float | None, deadline: float) -> Order:
        interval = FIRST_POLL
        while True:
            if current.status == "valid":
                if not current.certificate:
                    raise TransportError("the CA marked the order valid without a certificate")
                return current
            if current.status == "invalid":
                raise OrderFailed(current.url, current.error)
            if current.status != "processing":
                # "pending"/"ready" after finalize means the CA did not take the CSR.
                raise AcmeError(f"order {current.url} is {current.status!r}, not processing",
                                hint="finalize the order first (all authorizations valid)")
            when = time.monotonic() + (retry_after if retry_after is not None else interval)
            self._sleep_until(when, deadline, f"order {current.url}")
            interval = min(interval * POLL_FACTOR, POLL_CAP)
            current, retry_after = self._fetch_order(current.url)

    def download(self, order: Order) -> list[str]:
        """The PEM chain (default first), then every alternate chain (§7.4.2)."""
        if not order.certificate:
            raise AcmeUsageError("the order has no certificate yet (finalize first)")
        resp = self._post(order.certificate, None, accept=PEM_CHAIN)
        chains = [_pem_text(resp)]
        for alt in resp.links("alternate"):
            chains.append(_pem_text(self._post(alt, None, accept=PEM_CHAIN)))
        return chains

    # ------------------------------------------------------------------ revocation, ARI
    def revoke(self, cert_der: bytes, reason: str = "unspecified", *,
               cert_key: PrivateKey | None = None) -> None:
        """revokeCert (§7.6), signed by the account (kid) or, with ``cert_key``, by the
        certificate's own key (jwk) — the latter needs no account at all."""
        code = _reason_code(reason)
        payload: dict[str, Any] = {"certificate": jws.b64(cert_der)}
        if code:
            payload["reason"] = code  # 0 is the default; omitting it is what CAs expect
        url = self.directory.revoke_cert
        try:
            if cert_key is not None:
                self._post(url, payload, jwk_key=cert_key)
            else:
                self._post(url, payload)
        except AcmeProblem as problem:
            problem.hint = _revoke_hint(problem, by_cert_key=cert_key is not None,
                                        reason=reason)
            raise

    def renewal_info(self, cert_id: str) -> RenewalInfo | None:
        """ARI (RFC 9773 §4.1): unauthenticated GET; None when the CA has no renewalInfo."""
        base = self.directory.renewal_info
        if not base:
            return None
        if not cert_id or "/" in cert_id:
            raise AcmeUsageError(f"invalid ARI certificate id {cert_id!r}")
        resp = self.transport.get(f"{base.rstrip('/')}/{cert_id}")
        return RenewalInfo.from_json(resp.json(), retry_after=resp.retry_after)

    # ------------------------------------------------------------------ challenge values
    def key_authorization(self, token: str) -> str:
        key, _ = self._account()
        try:
            return jws.key_authorization(token, key)
        except ValueError as exc:
            raise AcmeError(str(exc)) from exc

    def dns01_value(self, token: str) -> str:
        return jws.dns01_txt_value(self.key_authorization(token))


def _pem_text(resp: Response) -> str:
    """A certificate answer as text: PEM is ASCII (RFC 7468 §2), anything else is refused."""
    try:
        return resp.content.decode("ascii")
    except UnicodeDecodeError as exc:
        raise TransportError(
            f"the certificate chain from {resp.url} is not ASCII PEM (byte 0x"
            f"{resp.content[exc.start]:02x} at offset {exc.start}); nothing was stored",
            hint="the CA (or a proxy in between) sent a damaged certificate; run again "
                 "later, the order is kept and resumed") from None


def _revoke_hint(problem: AcmeProblem, *, by_cert_key: bool, reason: str) -> str:
    """What is true when the CA refuses a revocation (RFC 8555 §7.6).

    The problem types' default hints assume an account request: "register an account
    first" after a revocation signed by the certificate's key would send the user to
    register that key as an account, which is exactly what must not happen.
    """
    if problem.type == "alreadyRevoked":
        return "the CA already lists this certificate as revoked; nothing more to do"
    if problem.type == "badRevocationReason":
        return (f"this CA does not accept the reason {reason!r}; try --reason unspecified "
                "(or keyCompromise, when the key leaked)")
    if by_cert_key:
        return ("the CA refused a revocation signed by the certificate's own key (acmeali "
                "checked the key belongs to the certificate): check that --server is the CA "
                "that issued it, or revoke with the ACME account that ordered it (leave out "
                "--key / --use-cert-key)")
    if problem.type in ("unauthorized", "accountDoesNotExist"):
        return ("this account may not revoke the certificate (it did not order it and holds "
                "no valid authorization for all its names): revoke with the certificate's "
                "own key (--key FILE, or --use-cert-key for a lineage)")
    return ("the CA refused the revocation; its words are above. Check that --server is "
            "the CA that issued the certificate")


def _reason_code(reason: str) -> int:
    for name, code in REVOCATION_REASONS.items():
        if name.lower() == reason.strip().lower():
            return code
    raise AcmeUsageError(f"unknown revocation reason {reason!r}; use one of: "
                         + ", ".join(REVOCATION_REASONS))


def _failure(authz: Authorization) -> ChallengeFailure:
    """The challenge that carries the CA's error, else the one that was attempted."""
    chosen: Challenge | None = None
    for ch in authz.challenges:
        if ch.error is not None:
            chosen = ch
            break
    if chosen is None:
        chosen = next((c for c in authz.challenges if c.status != "pending"), None)
    problem: AcmeProblem | None = chosen.error if chosen else None
    return ChallengeFailure(identifier=authz.name,
                            challenge_type=chosen.type if chosen else None,
                            problem=problem, status=authz.status)
