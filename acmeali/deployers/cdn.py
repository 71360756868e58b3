"""``cdn:<domain>``, ``cdn:auto`` and ``dcdn:<domain>``: HTTPS certificate of (D)CDN domains.

Both products take the certificate by reference to CAS (``CertType=cas`` + ``CertId``), so
the certificate is uploaded once and any number of domains point at it; the old CertId
stays recorded until every domain has moved. ``CertRegion`` is the CAS region holding the
certificate: ``cn-hangzhou`` on the China site, ``ap-southeast-1`` on the international
site — the wrong one makes the CDN answer that the certificate does not exist.

The binding is read back (``Describe*DomainCertificateInfo``) before the target counts as
deployed, and read *first* too, so a domain already serving this certificate is left alone.

Wildcard acceleration domains are stored and listed with a leading dot, ``.example.com``
(DCDN wildcard FAQ: "added in the formats .test.com and *.test.com ... displayed as
.test.com"). ``cdn:*.example.com`` and ``cdn:.example.com`` name the same domain; the API
always gets ``.example.com``, and the certificate must hold ``*.example.com`` for it.

``cdn:auto`` binds only domains that are ``online`` and already serve HTTPS: switching HTTPS
on changes what the site does and what it costs (HTTPS requests are billed), so that takes
an explicit ``cdn:<domain>`` target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from acmeali.aliyun.services import Service
from acmeali.deployers.base import DeployContext, Target, TargetResult
from acmeali.deployers.cas import CAS, CasCert, ensure_uploaded
from acmeali.deployers.many import bind_each
from acmeali.errors import DeployError

CDN = Service("cdn", "alibabacloud_cdn20180510", "cdn.aliyuncs.com", "cdn")
DCDN = Service("dcdn", "alibabacloud_dcdn20180115", "dcdn.aliyuncs.com", "dcdn")

PAGE_SIZE = 500  # DescribeUserDomains' maximum
MAX_PAGES = 1000
CONFIRM_TRIES = 5
CONFIRM_INTERVAL = 1.0


@dataclass(frozen=True)
class _Product:
    service: Service
    label: str
    set_action: str
    describe_action: str
    list_action: str


PRODUCTS = {
    "cdn": _Product(CDN, "CDN", "SetCdnDomainSSLCertificate", "DescribeDomainCertificateInfo",
                    "DescribeUserDomains"),
    "dcdn": _Product(DCDN, "DCDN", "SetDcdnDomainSSLCertificate",
                     "DescribeDcdnDomainCertificateInfo", "DescribeDcdnUserDomains"),
}


def api_name(domain: str) -> str:
    """The name (D)CDN stores: ``*.example.com`` -> ``.example.com``; others unchanged."""
    domain = domain.strip().lower().rstrip(".")
    return "." + domain[2:] if domain.startswith("*.") else domain


def cert_name(domain: str) -> str:
    """The certificate name that covers a (D)CDN domain: ``.example.com`` -> ``*.example.com``."""
    domain = api_name(domain)
    return "*" + domain if domain.startswith(".") else domain


def _cert_info(ctx: DeployContext, product: _Product, domain: str) -> dict[str, Any] | None:
    body = ctx.api(product.service, product.describe_action, {"DomainName": domain})
    infos = (body.get("CertInfos") or {}).get("CertInfo") or []
    for info in infos:
        if api_name(str(info.get("DomainName", domain))) == domain:
            return dict(info)
    return dict(infos[0]) if infos else None


def _serves(info: dict[str, Any] | None, cas: CasCert) -> bool:
    if not info or str(info.get("CertId") or "") != str(cas.cert_id):
        return False
    status = str(info.get("ServerCertificateStatus") or info.get("SSLProtocol") or "on").lower()
    return status != "off"


def bind_domain(ctx: DeployContext, product: _Product, domain: str) -> str:
    """Point one domain (in its stored form, see :func:`api_name`) at the CAS certificate;
    returns a short description."""
    domain = api_name(domain)
    cas = ensure_uploaded(ctx)
    before = _cert_info(ctx, product, domain)
    if _serves(before, cas):
        return f"{domain} already serves CertId {cas.cert_id}"
    ctx.api(product.service, product.set_action, {
        "DomainName": domain, "SSLProtocol": "on", "CertType": "cas",
        "CertId": cas.cert_id, "CertRegion": cas.region, "CertName": cas.name})
    if ctx.dry_run:
        return f"{domain} would be bound to {cas.identifier}"
    after: dict[str, Any] | None = None
    for attempt in range(CONFIRM_TRIES):
        after = _cert_info(ctx, product, domain)
        if _serves(after, cas):
            return f"{domain} now serves CertId {cas.cert_id}"
        if attempt + 1 < CONFIRM_TRIES:
            time.sleep(CONFIRM_INTERVAL)
    shown = (after or {}).get("CertId")
    raise DeployError(f"{product.label} {domain}: the certificate was set, but the domain "
                      f"still reports CertId {shown!r} instead of {cas.cert_id}",
                      hint="the change may still be propagating; run `acmeali deploy` again")


def deploy_domain(ctx: DeployContext, product: _Product, domain: str) -> TargetResult:
    domain = api_name(domain)
    if not ctx.cert.covers(cert_name(domain)):
        raise DeployError(f"the certificate ({', '.join(ctx.cert.names)}) does not cover "
                          f"{cert_name(domain)}, so {product.label} would serve a name "
                          "mismatch")
    message = bind_domain(ctx, product, domain)
    cas = ensure_uploaded(ctx)
    return TargetResult(message, {"cert_id": cas.cert_id, "identifier": cas.identifier},
                        frozenset({cas.cert_id}))


def list_domains(ctx: DeployContext, product: _Product) -> list[dict[str, Any]]:
    """Every domain of the account (all pages; lego's alidns read only the first)."""
    out: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES + 1):
        body = ctx.api(product.service, product.list_action,
                       {"PageNumber": page, "PageSize": PAGE_SIZE})
        items = (body.get("Domains") or {}).get("PageData") or []
        out.extend(dict(i) for i in items)
        total = int(body.get("TotalCount") or 0)
        if not items or len(out) >= total:
            break
    return out


def _serving_https(row: dict[str, Any]) -> bool:
    """An online domain with HTTPS on (DescribeUserDomains: SslProtocol; DCDN: SSLProtocol)."""
    https = str(row.get("SslProtocol") or row.get("SSLProtocol") or "").lower()
    return str(row.get("DomainStatus", "")).lower() == "online" and https == "on"


def deploy_auto(ctx: DeployContext, product: _Product, spec: str) -> TargetResult:
    """Every online, HTTPS-serving CDN domain of the account that the certificate covers
    (wildcards one label; a listed ``.x`` is the wildcard domain ``*.x``)."""
    rows = [d for d in list_domains(ctx, product) if d.get("DomainName")]
    covered = sorted({api_name(str(d["DomainName"])) for d in rows
                      if _serving_https(d) and ctx.cert.covers(cert_name(str(d["DomainName"])))})
    skipped = sorted({api_name(str(d["DomainName"])) for d in rows
                      if not _serving_https(d)
                      and ctx.cert.covers(cert_name(str(d["DomainName"])))})
    if skipped:
        ctx.ui.info(f"{spec}: left alone (not online, or HTTPS off; name them as "
                    f"cdn:<domain> targets to turn HTTPS on): {', '.join(skipped)}")
    if not covered:
        ctx.ui.warn(f"{spec}: no {product.label} domain of this account is covered by "
                    f"the certificate ({', '.join(ctx.cert.names)})")
        return TargetResult("no covered domain", {"domains": {}})
    previous = ctx.meta.deployments.get(spec)
    earlier = dict((previous.details or {}).get("domains") or {}) if previous else {}
    def bind(domain: str) -> Any:
        bind_domain(ctx, product, domain)
        return None if ctx.dry_run else ensure_uploaded(ctx).cert_id

    return bind_each(ctx, covered, earlier, bind, details_key="domains",
                     failed_noun=f"{product.label} domains",
                     done_noun=f"{product.label} domain(s)")


@dataclass(frozen=True)
class Cdn(Target):
    """``cdn:<domain>`` and ``cdn:auto``."""

    kind = "cdn"
    usage: ClassVar[tuple[str, ...]] = ("cdn:<domain>", "cdn:auto")
    summary = "CDN domain(s) (auto: every covered one), by reference to the CAS certificate"
    services = (CAS, CDN)
    ram_actions: ClassVar[tuple[str, ...]] = CDN.ram_actions(
        "SetCdnDomainSSLCertificate", "DescribeDomainCertificateInfo", "DescribeUserDomains")
    product: ClassVar[_Product] = PRODUCTS["cdn"]

    spec: str
    domain: str

    @classmethod
    def parse(cls, spec: str, arg: str) -> Cdn:
        if not arg:
            raise cls.fail(spec, f"'{cls.kind}' needs a domain")
        if arg == "auto" and cls.kind != "cdn":
            raise cls.fail(spec, "'auto' is supported for cdn only")
        if arg == "auto":
            return cls(spec, arg)
        from acmeali.validate import InvalidValue, target_domain

        try:
            return cls(spec, target_domain(arg))
        except InvalidValue as exc:
            raise cls.fail(spec, str(exc)) from None

    def deploy(self, ctx: DeployContext) -> TargetResult:
        if self.domain == "auto":
            return deploy_auto(ctx, self.product, self.spec)
        return deploy_domain(ctx, self.product, self.domain)

    def check(self, ctx: DeployContext) -> bool:
        cas = ensure_uploaded(ctx)
        if self.domain != "auto":
            return _serves(_cert_info(ctx, self.product, api_name(self.domain)), cas)
        dep = ctx.meta.deployments.get(self.spec)
        domains = (dep.details if dep else {}).get("domains") or {}
        return all(_serves(_cert_info(ctx, self.product, d), cas) for d in domains)

    def plan(self) -> str:
        what = "every covered domain" if self.domain == "auto" else self.domain
        return f"point {self.product.label} {what} at the CAS certificate"


@dataclass(frozen=True)
class Dcdn(Cdn):
    """``dcdn:<domain>``: the same binding through DCDN's actions."""

    kind = "dcdn"
    usage = ("dcdn:<domain>",)
    summary = "DCDN domain, by reference to the CAS certificate"
    services = (CAS, DCDN)
    ram_actions = DCDN.ram_actions("SetDcdnDomainSSLCertificate",
                                   "DescribeDcdnDomainCertificateInfo")
    product = PRODUCTS["dcdn"]
