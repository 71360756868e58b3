"""``ddos:[<region>:]<domain>`` and ``ddos:[<region>:]auto``: the certificate of
Anti-DDoS Pro/Premium websites (domains with a website forwarding rule).

Wire names from alibabacloud_ddoscoo20200101 (4.0.4):

- ``AssociateWebCert`` takes the CAS certificate by ``CertIdentifier`` =
  ``<CertId>-<CAS region>`` (not together with ``CertId``); it changes the certificate only,
  so the rule's TLS policy, HTTP/2, OCSP, origins and ports stay as they were.
- ``DescribeWebRules`` (``Domain``, ``QueryDomainPattern=exact``) reads it back: the
  rule's ``CertName`` (or ``UserCertName``, "the name of the certificate uploaded to SSL
  Certificates Service") is the CAS name, which names the certificate's fingerprint.
  A rule that forwards no HTTPS (``ProxyTypes``) is refused: acmeali does not switch HTTPS
  on for a website.
- ``auto``: every website of the region (all pages of ``DescribeWebRules``, at most 10 a
  page) that forwards HTTPS and is covered by the certificate; one that fails is recorded
  and retried, the others move.

The region picks the endpoint: ``cn-hangzhou`` (Anti-DDoS Pro, the default) or
``ap-southeast-1`` (Anti-DDoS Premium), ``ddoscoo.<region>.aliyuncs.com``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from acmeali.aliyun.services import Service
from acmeali.deployers.base import (
    DeployContext,
    PartialDeployError,
    Target,
    TargetResult,
    split_region,
)
from acmeali.deployers.cas import CAS
from acmeali.errors import DeployError

DDOS = Service("ddoscoo", "alibabacloud_ddoscoo20200101", "ddoscoo.{region}.aliyuncs.com",
               "yundun-ddoscoo")

DEFAULT_REGION = "cn-hangzhou"
HTTPS_TYPES = frozenset({"https", "websockets"})
PAGE_SIZE = 10  # DescribeWebRules' maximum
MAX_PAGES = 1000


@dataclass(frozen=True)
class Ddos(Target):
    """``ddos:[<region>:]<domain>`` / ``ddos:[<region>:]auto``."""

    kind = "ddos"
    usage = ("ddos:[<region>:]<domain>", "ddos:[<region>:]auto")
    summary = ("Anti-DDoS Pro/Premium website(s) (region cn-hangzhou or ap-southeast-1; "
               "auto: every covered HTTPS one), by CAS certificate identifier")
    services = (CAS, DDOS)
    ram_actions = DDOS.ram_actions("AssociateWebCert", "DescribeWebRules")
    confirm_tries: ClassVar[int] = 10
    confirm_interval: ClassVar[float] = 1.0

    spec: str
    domain: str
    region: str | None = None

    @classmethod
    def parse(cls, spec: str, arg: str) -> Ddos:
        region, rest = split_region(arg.split(":"), 1)
        if len(rest) != 1 or not rest[0] or " " in rest[0]:
            raise cls.fail(spec, "malformed")
        return cls(spec, rest[0].lower().rstrip("."), region)

    def plan(self) -> str:
        what = "every covered HTTPS website" if self.domain == "auto" else self.domain
        return f"associate the CAS certificate with Anti-DDoS {what}"

    def _region(self) -> str:
        return self.region or DEFAULT_REGION

    def _rules(self, ctx: DeployContext, domain: str | None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"PageSize": PAGE_SIZE}
        if domain:
            params.update(Domain=domain, QueryDomainPattern="exact")
        out: list[dict[str, Any]] = []
        for number in range(1, MAX_PAGES + 1):
            body = ctx.api(DDOS, "DescribeWebRules", {**params, "PageNumber": number},
                           region=self._region())
            rows = body.get("WebRules") or []
            out.extend(dict(r) for r in rows)
            if domain or not rows or len(out) >= int(body.get("TotalCount") or 0):
                break
        return out

    def rule(self, ctx: DeployContext, domain: str) -> dict[str, Any]:
        for rule in self._rules(ctx, domain):
            if str(rule.get("Domain") or "").lower() == domain:
                return rule
        raise DeployError(f"Anti-DDoS ({self._region()}) has no website rule for "
                          f"{domain}", hint="add the website in the Anti-DDoS console "
                          "first, or name its region: ddos:ap-southeast-1:<domain>")

    @staticmethod
    def _https(rule: dict[str, Any]) -> set[str]:
        types = {str(p.get("ProxyType") or "").lower() for p in rule.get("ProxyTypes") or []}
        return types

    def _serves(self, ctx: DeployContext, rule: dict[str, Any]) -> bool:
        name = ctx.cas.ensure().name
        return name in (str(rule.get("CertName") or ""), str(rule.get("UserCertName") or ""))

    def check(self, ctx: DeployContext) -> bool:
        if self.domain != "auto":
            return self._serves(ctx, self.rule(ctx, self.domain))
        dep = ctx.meta.deployments.get(self.spec)
        domains = (dep.details if dep else {}).get("domains") or {}
        return all(self._serves(ctx, self.rule(ctx, d)) for d in domains)

    def deploy(self, ctx: DeployContext) -> TargetResult:
        if self.domain == "auto":
            return self._deploy_auto(ctx)
        if not ctx.cert.covers(self.domain):
            raise DeployError(f"the certificate ({', '.join(ctx.cert.names)}) does not cover "
                              f"{self.domain}, so Anti-DDoS would serve a name mismatch")
        rule = self.rule(ctx, self.domain)
        types = self._https(rule)
        if not types & HTTPS_TYPES:
            raise DeployError(f"Anti-DDoS website {self.domain} forwards no HTTPS "
                              f"({', '.join(sorted(types)) or 'none'})",
                              hint="add an HTTPS port to the website rule in the Anti-DDoS "
                                   "console; acmeali does not switch HTTPS on")
        cas = ctx.cas.ensure()
        message = self._bind(ctx, rule)
        return TargetResult(message, {"cert_id": cas.cert_id, "identifier": cas.identifier,
                                      "region": self._region()}, frozenset({cas.cert_id}))

    def _bind(self, ctx: DeployContext, rule: dict[str, Any]) -> str:
        """Associate the certificate with one website unless it serves it; read back."""
        cas = ctx.cas.ensure()
        domain = str(rule.get("Domain") or "").lower()
        where = f"Anti-DDoS website {domain}"
        if self._serves(ctx, rule):
            return f"{where} already serves {cas.name}"
        ctx.api(DDOS, "AssociateWebCert", {"Domain": domain, "CertIdentifier": cas.identifier},
                region=self._region())
        if ctx.dry_run:
            return f"{where} would serve {cas.identifier}"
        for attempt in range(self.confirm_tries):
            rule = self.rule(ctx, domain)
            if self._serves(ctx, rule):
                return f"{where} now serves {cas.name}"
            if attempt + 1 < self.confirm_tries:
                time.sleep(self.confirm_interval)
        raise DeployError(f"{where}: the certificate was associated, but the rule still "
                          f"shows {rule.get('CertName')!r}", hint="run `acmeali deploy` again")

    def _deploy_auto(self, ctx: DeployContext) -> TargetResult:
        rules = [r for r in self._rules(ctx, None)
                 if self._https(r) & HTTPS_TYPES
                 and ctx.cert.covers(str(r.get("Domain") or "").lower())]
        if not rules:
            ctx.ui.warn(f"{self.spec}: no Anti-DDoS website forwarding HTTPS is covered by "
                        f"the certificate ({', '.join(ctx.cert.names)})")
            return TargetResult("no covered HTTPS website", {"domains": {}})
        cas = ctx.cas.ensure()
        covered = sorted(str(r["Domain"]).lower() for r in rules)
        previous = ctx.meta.deployments.get(self.spec)
        earlier = dict((previous.details or {}).get("domains") or {}) if previous else {}
        # A website that fails keeps its earlier CertId recorded: it still serves that one.
        bound: dict[str, Any] = {d: v for d, v in earlier.items() if d in covered}
        failures: list[str] = []
        for rule in sorted(rules, key=lambda r: str(r["Domain"]).lower()):
            domain = str(rule["Domain"]).lower()
            try:
                self._bind(ctx, rule)
            except Exception as exc:
                how = getattr(exc, "render", None)
                failures.append(f"{domain}: {how() if callable(how) else exc}")
                continue
            if not ctx.dry_run:
                bound[domain] = cas.cert_id
        details = {"domains": bound, "region": self._region()}
        in_use = frozenset(int(v) for v in bound.values() if str(v).isdigit())
        if failures:
            raise PartialDeployError(f"{len(failures)} of {len(covered)} Anti-DDoS websites "
                                     "failed: " + "; ".join(failures), details, in_use)
        return TargetResult(f"{len(covered)} Anti-DDoS website(s): {', '.join(covered)}",
                            details, in_use)
