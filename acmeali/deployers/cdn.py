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
from typing import TYPE_CHECKING, Any

from acmeali.deployers.base import CasCert, DeployContext, TargetResult
from acmeali.deployers.cas import ensure_uploaded
from acmeali.errors import DeployError

if TYPE_CHECKING:
    from acmeali.targets import Target

PAGE_SIZE = 500  # DescribeUserDomains' maximum
MAX_PAGES = 1000
CONFIRM_TRIES = 5
CONFIRM_INTERVAL = 1.0


@dataclass(frozen=True)
class _Product:
    service: str
    label: str
    set_action: str
    describe_action: str
    list_action: str


PRODUCTS = {
    "cdn": _Product("cdn", "CDN", "SetCdnDomainSSLCertificate", "DescribeDomainCertificateInfo",
                    "DescribeUserDomains"),
    "dcdn": _Product("dcdn", "DCDN", "SetDcdnDomainSSLCertificate",
                     "DescribeDcdnDomainCertificateInfo", "DescribeDcdnUserDomains"),
}


class PartialDeployError(DeployError):
    """Some domains of a multi-domain target failed; ``details`` records those that did not."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


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


def deploy_domain(ctx: DeployContext, target: Target) -> TargetResult:
    product = PRODUCTS[target.kind]
    domain = api_name(target.domain or "")
    if not ctx.cert.covers(cert_name(domain)):
        raise DeployError(f"the certificate ({', '.join(ctx.cert.names)}) does not cover "
                          f"{cert_name(domain)}, so {product.label} would serve a name "
                          "mismatch")
    message = bind_domain(ctx, product, domain)
    cas = ensure_uploaded(ctx)
    return TargetResult(message, {"cert_id": cas.cert_id, "identifier": cas.identifier})


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


def deploy_auto(ctx: DeployContext, target: Target) -> TargetResult:
    """Every online, HTTPS-serving CDN domain of the account that the certificate covers
    (wildcards one label; a listed ``.x`` is the wildcard domain ``*.x``)."""
    product = PRODUCTS[target.kind]
    rows = [d for d in list_domains(ctx, product) if d.get("DomainName")]
    covered = sorted({api_name(str(d["DomainName"])) for d in rows
                      if _serving_https(d) and ctx.cert.covers(cert_name(str(d["DomainName"])))})
    skipped = sorted({api_name(str(d["DomainName"])) for d in rows
                      if not _serving_https(d)
                      and ctx.cert.covers(cert_name(str(d["DomainName"])))})
    if skipped:
        ctx.ui.info(f"{target.spec}: left alone (not online, or HTTPS off; name them as "
                    f"cdn:<domain> targets to turn HTTPS on): {', '.join(skipped)}")
    if not covered:
        ctx.ui.warn(f"{target.spec}: no {product.label} domain of this account is covered by "
                    f"the certificate ({', '.join(ctx.cert.names)})")
        return TargetResult("no covered domain", {"domains": {}})
    previous = ctx.meta.deployments.get(target.spec)
    earlier = dict((previous.details or {}).get("domains") or {}) if previous else {}
    # A domain that fails keeps its earlier CertId recorded: it still serves that one.
    bound: dict[str, Any] = {d: v for d, v in earlier.items() if d in covered}
    failures: list[str] = []
    done: list[str] = []
    for domain in covered:
        try:
            done.append(bind_domain(ctx, product, domain))
        except Exception as exc:
            render = getattr(exc, "render", None)
            failures.append(f"{domain}: {render() if callable(render) else exc}")
            continue
        if not ctx.dry_run:
            bound[domain] = ensure_uploaded(ctx).cert_id
    details = {"domains": bound}
    if failures:
        raise PartialDeployError(f"{len(failures)} of {len(covered)} {product.label} domains "
                                 "failed: " + "; ".join(failures), details)
    return TargetResult(f"{len(covered)} {product.label} domain(s): {', '.join(covered)}", details)


def deploy(ctx: DeployContext, target: Target) -> TargetResult:
    if target.kind == "cdn" and target.domain == "auto":
        return deploy_auto(ctx, target)
    return deploy_domain(ctx, target)
