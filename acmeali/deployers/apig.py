"""``apig:`` cloud-native API Gateway (APIG 2024-03-27) domains, by CAS identifier.

- ``apig:[<region>:]<domain-id>``: ``GetDomain``, then ``UpdateDomain`` with
  ``certIdentifier`` = ``<CertId>-<region>`` and every TLS option it read sent back
  (``forceHttps``, ``tlsMin``, ``tlsMax``, ``http2Option``, ``mTLSEnabled``,
  ``caCertIdentifier``, ``clientCACert``, ``tlsCipherSuitesConfig``, ``domainScope``): the
  update replaces them, so one left out would be reset. The protocol becomes ``HTTPS``
  only when the domain did not serve HTTPS yet.
- ``apig:[<region>:]auto``: every domain of the region (``ListDomains``) that already serves
  HTTPS and whose name the certificate covers.

A ROA API (``PUT /v1/domains/{domainId}``, JSON body). Sources: alibabacloud_apig20240327
11.6.0 (client.py get_domain(domain_id, request), update_domain(domain_id, request),
list_domains(request); models _get_domain_response_body.py data{...},
_update_domain_request.py, _list_domains_request.py / _response_body.py
data{items, totalSize}); the "apig.<region>.aliyuncs.com" endpoint from the SDK's rule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from acmeali.aliyun.services import Service
from acmeali.deployers.base import DeployContext, Target, TargetResult, split_region
from acmeali.deployers.cas import CAS, CasCert
from acmeali.deployers.many import bind_many
from acmeali.errors import DeployError

APIG = Service("apig", "alibabacloud_apig20240327", "apig.{region}.aliyuncs.com", "apig")

KEPT = ("forceHttps", "tlsMin", "tlsMax", "http2Option", "mTLSEnabled", "caCertIdentifier",
        "clientCACert", "tlsCipherSuitesConfig", "domainScope")
PAGE_SIZE = 100
MAX_PAGES = 100
CONFIRM_TRIES = 10
CONFIRM_INTERVAL = 0.5


def _serves(data: dict[str, Any], cas: CasCert) -> bool:
    return (str(data.get("protocol") or "").upper() == "HTTPS"
            and str(data.get("certIdentifier") or "") == cas.identifier)


@dataclass(frozen=True)
class Apig(Target):
    kind = "apig"
    usage: ClassVar[tuple[str, ...]] = ("apig:[<region>:]<domain-id>", "apig:[<region>:]auto")
    summary = ("cloud-native API Gateway domain(s) (auto: every covered HTTPS one), by CAS "
               "identifier, TLS options kept")
    services = (CAS, APIG)
    ram_actions = APIG.ram_actions("GetDomain", "UpdateDomain", "ListDomains")

    spec: str
    domain_id: str
    region: str | None = None

    @classmethod
    def parse(cls, spec: str, arg: str) -> Apig:
        region, rest = split_region(arg.split(":"), 1)
        if len(rest) != 1 or not rest[0]:
            raise cls.fail(spec, "malformed")
        return cls(spec, rest[0], region)

    def plan(self) -> str:
        what = "every covered HTTPS domain" if self.domain_id == "auto" else self.domain_id
        return f"point API Gateway (APIG) {what} at the CAS certificate"

    def _get(self, ctx: DeployContext, domain_id: str) -> dict[str, Any]:
        body = ctx.api(APIG, "GetDomain", {}, region=self.region, path=(domain_id,))
        return dict(body.get("data") or {})

    def _bind(self, ctx: DeployContext, domain_id: str) -> tuple[str, Any]:
        cas = ctx.cas.ensure()
        data = self._get(ctx, domain_id)
        name = str(data.get("name") or domain_id).lower()
        if not ctx.cert.covers(name):
            raise DeployError(f"the certificate ({', '.join(ctx.cert.names)}) does not cover "
                              f"APIG domain {name}")
        if _serves(data, cas):
            return f"APIG {name} already serves {cas.identifier}", cas.cert_id
        body: dict[str, Any] = {k: data[k] for k in KEPT if data.get(k) is not None}
        body.update(protocol="HTTPS", certIdentifier=cas.identifier)
        ctx.api(APIG, "UpdateDomain", body, region=self.region, path=(domain_id,))
        if ctx.dry_run:
            return f"APIG {name} would serve {cas.identifier}", cas.cert_id
        for attempt in range(CONFIRM_TRIES):
            if _serves(self._get(ctx, domain_id), cas):
                return f"APIG {name} now serves {cas.identifier}", cas.cert_id
            if attempt + 1 < CONFIRM_TRIES:
                time.sleep(CONFIRM_INTERVAL)
        raise DeployError(f"APIG {name}: the certificate was set, but the domain still "
                          "reports another one", hint="run `acmeali deploy` again")

    def _covered(self, ctx: DeployContext) -> list[str]:
        out: list[str] = []
        seen = 0
        for number in range(1, MAX_PAGES + 1):
            body = ctx.api(APIG, "ListDomains", {"pageNumber": number, "pageSize": PAGE_SIZE},
                           region=self.region)
            data = body.get("data") or {}
            rows = data.get("items") or []
            seen += len(rows)
            for row in rows:
                if str(row.get("protocol") or "").upper() == "HTTPS" and row.get("domainId") \
                        and ctx.cert.covers(str(row.get("name") or "").lower()):
                    out.append(str(row["domainId"]))
            if not rows or seen >= int(data.get("totalSize") or 0):
                break
        return sorted(set(out))

    def deploy(self, ctx: DeployContext) -> TargetResult:
        if self.domain_id == "auto":
            return bind_many(ctx, self.spec, "APIG domain", self._covered(ctx),
                             lambda d: self._bind(ctx, d))
        message, cert_id = self._bind(ctx, self.domain_id)
        return TargetResult(message, {"identifier": ctx.cas.ensure().identifier},
                            frozenset() if ctx.dry_run else frozenset({cert_id}))

    def check(self, ctx: DeployContext) -> bool:
        cas = ctx.cas.ensure()
        if self.domain_id == "auto":
            dep = ctx.meta.deployments.get(self.spec)
            ids = list(((dep.details if dep else {}) or {}).get("bound") or {})
        else:
            ids = [self.domain_id]
        return all(_serves(self._get(ctx, d), cas) for d in ids)
