"""``ddos:[<region>:]<domain>``: the certificate of an Anti-DDoS Pro/Premium website
(a domain with a website forwarding rule).

Wire names from alibabacloud_ddoscoo20200101 (4.0.4):

- ``AssociateWebCert`` takes the CAS certificate by ``CertIdentifier`` =
  ``<CertId>-<CAS region>`` (not together with ``CertId``); it changes the certificate only,
  so the rule's TLS policy, HTTP/2, OCSP, origins and ports stay as they were.
- ``DescribeWebRules`` (``Domain``, ``QueryDomainPattern=exact``) reads it back: the
  rule's ``CertName`` (or ``UserCertName``, "the name of the certificate uploaded to SSL
  Certificates Service") is the CAS name, which names the certificate's fingerprint.
  A rule that forwards no HTTPS (``ProxyTypes``) is refused: acmeali does not switch HTTPS
  on for a website.

The region picks the endpoint: ``cn-hangzhou`` (Anti-DDoS Pro, the default) or
``ap-southeast-1`` (Anti-DDoS Premium), ``ddoscoo.<region>.aliyuncs.com``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from acmeali.aliyun.services import Service
from acmeali.deployers.base import DeployContext, Target, TargetResult, split_region
from acmeali.deployers.cas import CAS
from acmeali.errors import DeployError

DDOS = Service("ddoscoo", "alibabacloud_ddoscoo20200101", "ddoscoo.{region}.aliyuncs.com",
               "yundun-ddoscoo")

DEFAULT_REGION = "cn-hangzhou"
HTTPS_TYPES = frozenset({"https", "websockets"})


@dataclass(frozen=True)
class Ddos(Target):
    """``ddos:[<region>:]<domain>``."""

    kind = "ddos"
    usage = ("ddos:[<region>:]<domain>",)
    summary = ("Anti-DDoS Pro/Premium website (region cn-hangzhou or ap-southeast-1), "
               "by CAS certificate identifier")
    services = (CAS, DDOS)
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
        return f"associate the CAS certificate with Anti-DDoS website {self.domain}"

    def _region(self) -> str:
        return self.region or DEFAULT_REGION

    def rule(self, ctx: DeployContext) -> dict[str, Any]:
        body = ctx.api(DDOS, "DescribeWebRules", {
            "Domain": self.domain, "QueryDomainPattern": "exact", "PageNumber": 1,
            "PageSize": 10}, region=self._region())
        for rule in body.get("WebRules") or []:
            if str(rule.get("Domain") or "").lower() == self.domain:
                return dict(rule)
        raise DeployError(f"Anti-DDoS ({self._region()}) has no website rule for "
                          f"{self.domain}", hint="add the website in the Anti-DDoS console "
                          "first, or name its region: ddos:ap-southeast-1:<domain>")

    def _serves(self, ctx: DeployContext, rule: dict[str, Any]) -> bool:
        name = ctx.cas.ensure().name
        return name in (str(rule.get("CertName") or ""), str(rule.get("UserCertName") or ""))

    def check(self, ctx: DeployContext) -> bool:
        return self._serves(ctx, self.rule(ctx))

    def deploy(self, ctx: DeployContext) -> TargetResult:
        if not ctx.cert.covers(self.domain):
            raise DeployError(f"the certificate ({', '.join(ctx.cert.names)}) does not cover "
                              f"{self.domain}, so Anti-DDoS would serve a name mismatch")
        where = f"Anti-DDoS website {self.domain}"
        rule = self.rule(ctx)
        types = {str(p.get("ProxyType") or "").lower() for p in rule.get("ProxyTypes") or []}
        if not types & HTTPS_TYPES:
            raise DeployError(f"{where} forwards no HTTPS ({', '.join(sorted(types)) or 'none'})",
                              hint="add an HTTPS port to the website rule in the Anti-DDoS "
                                   "console; acmeali does not switch HTTPS on")
        cas = ctx.cas.ensure()
        details = {"cert_id": cas.cert_id, "identifier": cas.identifier,
                   "region": self._region()}
        if self._serves(ctx, rule):
            return TargetResult(f"{where} already serves {cas.name}", details,
                                frozenset({cas.cert_id}))
        ctx.api(DDOS, "AssociateWebCert", {"Domain": self.domain,
                                           "CertIdentifier": cas.identifier},
                region=self._region())
        if ctx.dry_run:
            return TargetResult(f"{where} would serve {cas.identifier}")
        for attempt in range(self.confirm_tries):
            rule = self.rule(ctx)
            if self._serves(ctx, rule):
                return TargetResult(f"{where} now serves {cas.name}", details,
                                    frozenset({cas.cert_id}))
            if attempt + 1 < self.confirm_tries:
                time.sleep(self.confirm_interval)
        raise DeployError(f"{where}: the certificate was associated, but the rule still "
                          f"shows {rule.get('CertName')!r}",
                          hint="run `acmeali deploy` again")
