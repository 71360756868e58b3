"""What the ApsaraVideo targets (``live:``, ``vod:``) share: a product whose accelerated
domains each take one HTTPS certificate, addressed by name, plus an ``auto`` form.

The products are CDN underneath, with CDN's habits: a wildcard domain is listed and
addressed as ``.example.com`` (not ``*.example.com``), a domain passes through
``configuring`` after a change, and HTTPS is billed — so ``auto`` binds only domains
that are ``online`` *and already serve HTTPS*, never switching HTTPS on by itself
(research R5: turning it on changes behaviour and costs money).

A product module subclasses :class:`DomainTarget` with four hooks: ``read`` (the
domain's certificate info), ``serves`` (is that our certificate, by fingerprint where the
answer carries the PEM), ``write`` (bind it) and ``https_domains`` (``auto``'s
candidates). Binding, read-back, partial failures and details are here.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from acmeali.deployers.base import DeployContext, Target, TargetResult
from acmeali.deployers.many import bind_each
from acmeali.errors import DeployError

CONFIRM_TRIES = 10
CONFIRM_INTERVAL = 1.0
MAX_PAGES = 2000


def api_form(domain: str) -> str:
    """``*.example.com`` -> ``.example.com``, how CDN-based products name wildcard domains."""
    domain = domain.strip().lower().rstrip(".")
    return domain[1:] if domain.startswith("*.") else domain


def cert_form(domain: str) -> str:
    """``.example.com`` -> ``*.example.com``, the name a certificate must carry to cover it."""
    return "*" + domain if domain.startswith(".") else domain



def cert_info(body: dict[str, Any], domain: str) -> dict[str, Any] | None:
    """The ``CertInfos.CertInfo`` row of ``domain`` in a Describe*DomainCertificateInfo
    answer (Live and VOD share the shape); None when the domain has none."""
    for info in (body.get("CertInfos") or {}).get("CertInfo") or []:
        if str(info.get("DomainName") or domain).lower() == domain:
            return dict(info)
    return None

def leaf_fingerprint(pem: Any) -> str | None:
    """SHA-256 of the first certificate in ``pem``; None when there is none."""
    if not pem:
        return None
    from acmeali.certutil import fingerprint, load_chain

    try:
        chain = load_chain(str(pem))
    except Exception:
        return None
    return fingerprint(chain[0]).lower() if chain else None


@dataclass(frozen=True)
class DomainTarget(Target):
    """``<kind>:<domain>`` and ``<kind>:auto``; subclasses set ``label`` and the hooks."""

    label: ClassVar[str]
    confirm_tries: ClassVar[int] = CONFIRM_TRIES
    confirm_interval: ClassVar[float] = CONFIRM_INTERVAL

    spec: str
    domain: str  # in the product's form (".example.com" for a wildcard), or "auto"

    @classmethod
    def parse(cls, spec: str, arg: str) -> DomainTarget:
        domain = api_form(arg)
        if not domain or ":" in domain or " " in domain or domain == ".":
            raise cls.fail(spec, f"'{cls.kind}' needs one domain name or 'auto'")
        return cls(spec, domain)

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def read(self, ctx: DeployContext, domain: str) -> dict[str, Any] | None:
        """The domain's certificate info as the product reports it."""

    @abstractmethod
    def serves(self, ctx: DeployContext, info: dict[str, Any] | None) -> bool:
        """Whether ``info`` shows this run's certificate, HTTPS on."""

    @abstractmethod
    def write(self, ctx: DeployContext, domain: str) -> None:
        """Bind this run's certificate to ``domain``."""

    @abstractmethod
    def https_domains(self, ctx: DeployContext) -> dict[str, dict[str, Any] | None]:
        """``auto``'s candidates: online domains that serve HTTPS now (product form), each
        with its certificate info when listing them had to read it anyway (else None)."""

    # ------------------------------------------------------------------ behaviour
    def plan(self) -> str:
        what = ("every online HTTPS domain the certificate covers" if self.domain == "auto"
                else self.domain)
        return f"set the HTTPS certificate of {self.label} {what}"

    def check(self, ctx: DeployContext) -> bool:
        if self.domain != "auto":
            return self.serves(ctx, self.read(ctx, self.domain))
        dep = ctx.meta.deployments.get(self.spec)
        domains = (dep.details if dep else {}).get("domains") or {}
        return all(self.serves(ctx, self.read(ctx, d)) for d in domains)

    def deploy(self, ctx: DeployContext) -> TargetResult:
        if self.domain == "auto":
            return self._deploy_auto(ctx)
        if not ctx.cert.covers(cert_form(self.domain)):
            raise DeployError(f"the certificate ({', '.join(ctx.cert.names)}) does not cover "
                              f"{cert_form(self.domain)}, so {self.label} would serve a name "
                              "mismatch")
        cas = ctx.cas.ensure()
        message = self.bind(ctx, self.domain)
        return TargetResult(message, {"cert_id": cas.cert_id, "cert_name": cas.name},
                            frozenset({cas.cert_id}))

    def bind(self, ctx: DeployContext, domain: str, info: dict[str, Any] | None = None) -> str:
        """Bind one domain unless it already serves the certificate (``info``: its current
        certificate info when already read); read back after."""
        cas = ctx.cas.ensure()
        if self.serves(ctx, info if info is not None else self.read(ctx, domain)):
            return f"{self.label} {domain} already serves {cas.name}"
        self.write(ctx, domain)
        if ctx.dry_run:
            return f"{self.label} {domain} would serve {cas.name}"
        for attempt in range(self.confirm_tries):
            if self.serves(ctx, self.read(ctx, domain)):
                return f"{self.label} {domain} now serves {cas.name}"
            if attempt + 1 < self.confirm_tries:
                time.sleep(self.confirm_interval)
        raise DeployError(f"{self.label} {domain}: the certificate was set, but reading it "
                          "back still shows another one",
                          hint="the domain may still be configuring; run `acmeali deploy` "
                               "again")

    def _deploy_auto(self, ctx: DeployContext) -> TargetResult:
        candidates = self.https_domains(ctx)
        covered = sorted(d for d in candidates if ctx.cert.covers(cert_form(d)))
        previous = ctx.meta.deployments.get(self.spec)
        earlier = dict((previous.details or {}).get("domains") or {}) if previous else {}
        if not covered:
            ctx.ui.warn(f"{self.spec}: no online {self.label} domain serving HTTPS is covered "
                        f"by the certificate ({', '.join(ctx.cert.names)})")
            return TargetResult("no covered HTTPS domain", {"domains": {}})
        cas = ctx.cas.ensure()

        def bind(domain: str) -> Any:
            self.bind(ctx, domain, candidates[domain])
            return cas.cert_id

        return bind_each(ctx, covered, earlier, bind, details_key="domains",
                         failed_noun=f"{self.label} domains",
                         done_noun=f"{self.label} domain(s)")


def pages(fetch: Any, page_size: int) -> list[dict[str, Any]]:
    """Every ``Domains.PageData`` row of a paged Describe*UserDomains (all pages)."""
    out: list[dict[str, Any]] = []
    for number in range(1, MAX_PAGES + 1):
        body = fetch({"PageNumber": number, "PageSize": page_size})
        items = (body.get("Domains") or {}).get("PageData") or []
        out.extend(dict(i) for i in items)
        total = int(body.get("TotalCount") or 0)
        if not items or len(out) >= total:
            break
    return out
