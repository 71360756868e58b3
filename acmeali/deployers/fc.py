"""``fc:`` Function Compute 3.0 custom domains: the certificate as PEM.

- ``fc:[<region>:]<domain>``: ``GetCustomDomain``, then ``UpdateCustomDomain`` with
  ``certConfig`` (name, full chain, PKCS#8 key) and every other setting it read sent back
  unchanged (``routeConfig``, ``tlsConfig``, ``authConfig``, ``wafConfig``,
  ``corsConfig``): an update that leaves one out would clear it. The protocol becomes
  ``HTTP,HTTPS`` only when the domain did not serve HTTPS yet.
- ``fc:[<region>:]auto``: every custom domain of the region (``ListCustomDomains``) that
  already serves HTTPS and whose name the certificate covers.

FC holds the PEM itself (no CAS reference), so the binding is compared by the leaf's
fingerprint (read back from ``certConfig.certificate``) and there is no product-side
certificate left behind to clean up. FC 3.0 is a ROA API (``PUT
/2023-03-30/custom-domains/{domainName}`` with a JSON body). Sources:
alibabacloud_fc20230330 4.8.3 (client.py: endpoint map ``fcv3.<region>.aliyuncs.com``,
get_custom_domain(domain_name), update_custom_domain(domain_name, request); models
_custom_domain.py, _update_custom_domain_input.py, _cert_config.py,
_list_custom_domains_request.py / _output).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from acmeali.aliyun.services import Service
from acmeali.deployers.base import DeployContext, Target, TargetResult, split_region
from acmeali.deployers.cas import name_for
from acmeali.deployers.many import bind_many
from acmeali.errors import DeployError

FC = Service("fc", "alibabacloud_fc20230330", "fcv3.{region}.aliyuncs.com", "fc")

KEPT = ("routeConfig", "tlsConfig", "authConfig", "wafConfig", "corsConfig")
PAGE_LIMIT = 100  # ListCustomDomains: limit 1-100
MAX_PAGES = 100
CONFIRM_TRIES = 10
CONFIRM_INTERVAL = 0.5


def _https(protocol: Any) -> bool:
    return "HTTPS" in str(protocol or "").upper()


@dataclass(frozen=True)
class Fc(Target):
    kind = "fc"
    usage: ClassVar[tuple[str, ...]] = ("fc:[<region>:]<domain>", "fc:[<region>:]auto")
    summary = ("Function Compute 3.0 custom domain(s) (auto: every covered HTTPS one), "
               "certificate as PEM, other settings kept")
    services = (FC,)
    ram_actions = FC.ram_actions("GetCustomDomain", "UpdateCustomDomain", "ListCustomDomains")

    spec: str
    domain: str
    region: str | None = None

    @classmethod
    def parse(cls, spec: str, arg: str) -> Fc:
        region, rest = split_region(arg.split(":"), 1)
        if len(rest) != 1 or not rest[0]:
            raise cls.fail(spec, "malformed")
        return cls(spec, rest[0].lower().rstrip("."), region)

    def plan(self) -> str:
        what = "every covered HTTPS custom domain" if self.domain == "auto" else self.domain
        return f"Function Compute {what}: certificate as PEM, other settings kept"

    def _call(self, ctx: DeployContext, action: str, params: dict[str, Any] | None = None,
              path: tuple[str, ...] = ()) -> dict[str, Any]:
        return ctx.api(FC, action, params, region=self.region, path=path)

    def _get(self, ctx: DeployContext, domain: str) -> dict[str, Any]:
        return self._call(ctx, "GetCustomDomain", None, (domain,))

    def _serves(self, ctx: DeployContext, current: dict[str, Any]) -> bool:
        pem = str((current.get("certConfig") or {}).get("certificate") or "")
        if not pem or not _https(current.get("protocol")):
            return False
        from acmeali.certutil import fingerprint, load_chain

        try:
            chain = load_chain(pem.encode())
        except ValueError:
            return False
        return bool(chain) and fingerprint(chain[0]).lower() == ctx.cert.fingerprint

    def _bind(self, ctx: DeployContext, domain: str) -> tuple[str, Any]:
        if not ctx.cert.covers(domain):
            raise DeployError(f"the certificate ({', '.join(ctx.cert.names)}) does not cover "
                              f"{domain}, so Function Compute would serve a name mismatch")
        current = self._get(ctx, domain)
        if self._serves(ctx, current):
            return f"FC {domain} already serves this certificate", ctx.cert.fingerprint
        body: dict[str, Any] = {k: current[k] for k in KEPT if current.get(k) is not None}
        body["protocol"] = current.get("protocol") if _https(current.get("protocol")) \
            else "HTTP,HTTPS"
        body["certConfig"] = {"certName": name_for(ctx), "certificate": ctx.cert.fullchain_pem,
                              "privateKey": ctx.cert.key_pkcs8_pem}
        self._call(ctx, "UpdateCustomDomain", {"body": body}, (domain,))
        if ctx.dry_run:
            return f"FC {domain} would serve this certificate", None
        for attempt in range(CONFIRM_TRIES):
            if self._serves(ctx, self._get(ctx, domain)):
                return f"FC {domain} now serves this certificate", ctx.cert.fingerprint
            if attempt + 1 < CONFIRM_TRIES:
                time.sleep(CONFIRM_INTERVAL)
        raise DeployError(f"FC {domain}: the certificate was set, but the domain still "
                          "reports another one", hint="run `acmeali deploy` again")

    def _covered(self, ctx: DeployContext) -> list[str]:
        out: list[str] = []
        token = ""
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"limit": PAGE_LIMIT}
            if token:
                params["nextToken"] = token
            body = self._call(ctx, "ListCustomDomains", params)
            for row in body.get("customDomains") or []:
                name = str(row.get("domainName") or "").lower()
                if name and _https(row.get("protocol")) and ctx.cert.covers(name):
                    out.append(name)
            token = str(body.get("nextToken") or "")
            if not token:
                break
        return sorted(set(out))

    def deploy(self, ctx: DeployContext) -> TargetResult:
        if self.domain == "auto":
            return bind_many(ctx, self.spec, "FC custom domain", self._covered(ctx),
                             lambda d: self._bind(ctx, d))
        message, _ = self._bind(ctx, self.domain)
        return TargetResult(message, {"cert_name": name_for(ctx)})

    def check(self, ctx: DeployContext) -> bool:
        if self.domain == "auto":
            dep = ctx.meta.deployments.get(self.spec)
            names = list(((dep.details if dep else {}) or {}).get("bound") or {})
        else:
            names = [self.domain]
        return all(self._serves(ctx, self._get(ctx, d)) for d in names)
