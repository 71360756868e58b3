"""``esa:`` Edge Security Acceleration: a site's certificate, or SaaS custom hostnames.

- ``esa:<site>`` (site name or numeric SiteId): the site certificate, by CAS reference
  (``SetCertificate`` ``Type=cas``, ``CasId``, ``Region``). A site holds a small number of
  custom certificates (the plan's ``customHttpCert`` quota), so a renewal *replaces* the
  certificate acmeali set before (``Id`` = that ESA certificate's id, recorded per target)
  instead of adding one: after a year of renewals the site still holds one acmeali
  certificate. Read back with ``ListCertificates``.
- ``esa:hostname:<hostname-id>``: a SaaS custom hostname (``UpdateCustomHostname``
  ``SslFlag=on``, ``CertType=cas``, ``CasId``, ``CasRegion``; its ``RecordId`` read by
  ``GetCustomHostname`` is sent back unchanged), read back with ``GetCustomHostname``.
- ``esa:hostnames:<site>``: every custom hostname of the site with HTTPS on
  (``SslFlag=on``) that the certificate covers.

The ESA API has two endpoints, ``esa.cn-hangzhou`` (China site) and
``esa.ap-southeast-1`` (international), so the region follows the account's site. Sources:
alibabacloud_esa20240910 3.16.0 models (_set_certificate_request.py: SiteId and Type
required, CasId/Region with cas, Id to update; _list_certificates_*: SiteId required,
Result[{Id, CasId, Type, Status, FingerprintSha256}]; _list_sites_*;
_update_custom_hostname_request.py: HostnameId required; _get_custom_hostname_*;
_list_custom_hostnames_*).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from acmeali.aliyun.services import Service
from acmeali.deployers.base import DeployContext, Target, TargetResult
from acmeali.deployers.cas import CAS, CasCert
from acmeali.deployers.many import bind_many
from acmeali.errors import DeployError

ESA = Service("esa", "alibabacloud_esa20240910", "esa.{region}.aliyuncs.com", "esa",
              site_region=True)

PAGE_SIZE = 100  # ListCertificates / ListCustomHostnames / ListSites: 1-500
MAX_PAGES = 100
CONFIRM_TRIES = 10
CONFIRM_INTERVAL = 0.5


def _pages(ctx: DeployContext, action: str, params: dict[str, Any], key: str
           ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for number in range(1, MAX_PAGES + 1):
        body = ctx.api(ESA, action, {**params, "PageNumber": number, "PageSize": PAGE_SIZE})
        rows = body.get(key) or []
        out.extend(dict(r) for r in rows)
        if not rows or len(out) >= int(body.get("TotalCount") or 0):
            break
    return out


@dataclass(frozen=True)
class Esa(Target):
    kind = "esa"
    usage: ClassVar[tuple[str, ...]] = ("esa:<site>", "esa:hostname:<hostname-id>",
                                        "esa:hostnames:<site>")
    summary = ("ESA site certificate (replacing acmeali's previous one) or SaaS custom "
               "hostname(s) (hostnames: every covered HTTPS one), by CAS reference")
    services = (CAS, ESA)
    ram_actions = ESA.ram_actions(
        "ListSites", "ListCertificates", "SetCertificate", "GetCustomHostname",
        "ListCustomHostnames", "UpdateCustomHostname")

    spec: str
    site: str = ""
    hostname_id: str = ""
    all_hostnames: bool = False

    @classmethod
    def parse(cls, spec: str, arg: str) -> Esa:
        parts = arg.split(":")
        if len(parts) == 2 and parts[0] == "hostname" and parts[1].isdigit():
            return cls(spec, hostname_id=parts[1])
        if len(parts) == 2 and parts[0] == "hostnames" and parts[1]:
            return cls(spec, site=parts[1].lower().rstrip("."), all_hostnames=True)
        if len(parts) != 1 or not parts[0] or parts[0] in ("hostname", "hostnames"):
            raise cls.fail(spec, "malformed")
        return cls(spec, site=parts[0].lower().rstrip("."))

    def plan(self) -> str:
        if self.hostname_id:
            return f"ESA custom hostname {self.hostname_id} by CAS reference"
        if self.all_hostnames:
            return f"every covered HTTPS custom hostname of ESA site {self.site}"
        return f"ESA site {self.site} certificate (replacing acmeali's previous one)"

    # ------------------------------------------------------------------ sites
    def _site_id(self, ctx: DeployContext) -> int:
        if self.site.isdigit():
            return int(self.site)
        rows = _pages(ctx, "ListSites", {"SiteName": self.site, "SiteSearchType": "exact"},
                      "Sites")
        for row in rows:
            if str(row.get("SiteName") or "").lower() == self.site:
                return int(row["SiteId"])
        raise DeployError(f"{self.spec}: no ESA site named {self.site}",
                          hint="give the site's name as shown in the ESA console, or its "
                               "SiteId")

    def _certs(self, ctx: DeployContext, site_id: int) -> list[dict[str, Any]]:
        return _pages(ctx, "ListCertificates", {"SiteId": site_id}, "Result")

    @staticmethod
    def _ours(rows: list[dict[str, Any]], cas: CasCert) -> dict[str, Any] | None:
        return next((r for r in rows if str(r.get("CasId") or "") == str(cas.cert_id)
                     and str(r.get("Type") or "cas").lower() == "cas"), None)

    def _deploy_site(self, ctx: DeployContext) -> TargetResult:
        cas = ctx.cas.ensure()
        site_id = self._site_id(ctx)
        where = f"ESA site {self.site}"
        rows = self._certs(ctx, site_id)
        found = self._ours(rows, cas)
        if found is not None:
            return self._site_result(f"{where} already holds {cas.identifier}", found, cas)
        dep = ctx.meta.deployments.get(self.spec)
        earlier = (dep.details if dep else {}) or {}
        previous = str(earlier.get("esa_cert_id") or "")
        if previous and not any(str(r.get("Id")) == previous for r in rows):
            previous = ""  # deleted in the console meanwhile: add instead
        params: dict[str, Any] = {"SiteId": site_id, "Type": "cas", "CasId": cas.cert_id,
                                  "Region": cas.region}
        if previous:
            params["Id"] = previous
        ctx.api(ESA, "SetCertificate", params)
        if ctx.dry_run:
            verb = f"replace certificate {previous} with" if previous else "add"
            return TargetResult(f"{where} would {verb} {cas.identifier}")
        for attempt in range(CONFIRM_TRIES):
            found = self._ours(self._certs(ctx, site_id), cas)
            if found is not None:
                return self._site_result(f"{where} now holds {cas.identifier}"
                                         + (f" (replaced {previous})" if previous else ""),
                                         found, cas)
            if attempt + 1 < CONFIRM_TRIES:
                time.sleep(CONFIRM_INTERVAL)
        raise DeployError(f"{where}: the certificate was set, but ListCertificates does not "
                          f"show CAS certificate {cas.cert_id}",
                          hint="the change may still be propagating; run `acmeali deploy` "
                               "again")

    @staticmethod
    def _site_result(message: str, row: dict[str, Any], cas: CasCert) -> TargetResult:
        return TargetResult(message, {"esa_cert_id": str(row.get("Id") or ""),
                                      "identifier": cas.identifier}, frozenset({cas.cert_id}))

    # ------------------------------------------------------------------ hostnames
    def _hostname(self, ctx: DeployContext, hostname_id: str) -> dict[str, Any]:
        body = ctx.api(ESA, "GetCustomHostname", {"HostnameId": int(hostname_id)})
        return dict(body.get("CustomHostnameModel") or {})

    @staticmethod
    def _host_serves(model: dict[str, Any], cas: CasCert) -> bool:
        return (str(model.get("SslFlag") or "").lower() == "on"
                and str(model.get("CertType") or "").lower() == "cas"
                and str(model.get("CasId") or "") == str(cas.cert_id))

    def _bind_hostname(self, ctx: DeployContext, hostname_id: str) -> tuple[str, Any]:
        cas = ctx.cas.ensure()
        model = self._hostname(ctx, hostname_id)
        name = str(model.get("Hostname") or hostname_id).lower()
        if not ctx.cert.covers(name):
            raise DeployError(f"the certificate ({', '.join(ctx.cert.names)}) does not cover "
                              f"ESA custom hostname {name}")
        if self._host_serves(model, cas):
            return f"ESA {name} already serves {cas.identifier}", cas.cert_id
        params: dict[str, Any] = {"HostnameId": int(hostname_id), "SslFlag": "on",
                                  "CertType": "cas", "CasId": cas.cert_id,
                                  "CasRegion": cas.region}
        if model.get("RecordId"):
            params["RecordId"] = model["RecordId"]
        ctx.api(ESA, "UpdateCustomHostname", params)
        if ctx.dry_run:
            return f"ESA {name} would serve {cas.identifier}", cas.cert_id
        for attempt in range(CONFIRM_TRIES):
            if self._host_serves(self._hostname(ctx, hostname_id), cas):
                return f"ESA {name} now serves {cas.identifier}", cas.cert_id
            if attempt + 1 < CONFIRM_TRIES:
                time.sleep(CONFIRM_INTERVAL)
        raise DeployError(f"ESA custom hostname {name}: the certificate was set, but it "
                          f"does not report CAS certificate {cas.cert_id}",
                          hint="run `acmeali deploy` again")

    def _covered_hostnames(self, ctx: DeployContext) -> list[str]:
        site_id = self._site_id(ctx)
        rows = _pages(ctx, "ListCustomHostnames", {"SiteId": site_id}, "Hostnames")
        return sorted(str(r["HostnameId"]) for r in rows
                      if str(r.get("SslFlag") or "").lower() == "on" and r.get("HostnameId")
                      and ctx.cert.covers(str(r.get("Hostname") or "").lower()))

    # ------------------------------------------------------------------ Target
    def deploy(self, ctx: DeployContext) -> TargetResult:
        if self.hostname_id:
            message, cert_id = self._bind_hostname(ctx, self.hostname_id)
            return TargetResult(message, {"identifier": ctx.cas.ensure().identifier},
                                frozenset() if ctx.dry_run else frozenset({cert_id}))
        if self.all_hostnames:
            return bind_many(ctx, self.spec, "ESA custom hostname",
                             self._covered_hostnames(ctx),
                             lambda h: self._bind_hostname(ctx, h))
        return self._deploy_site(ctx)

    def check(self, ctx: DeployContext) -> bool:
        cas = ctx.cas.ensure()
        if self.hostname_id:
            return self._host_serves(self._hostname(ctx, self.hostname_id), cas)
        if self.all_hostnames:
            dep = ctx.meta.deployments.get(self.spec)
            ids = list(((dep.details if dep else {}) or {}).get("bound") or {})
            return all(self._host_serves(self._hostname(ctx, h), cas) for h in ids)
        return self._ours(self._certs(ctx, self._site_id(ctx)), cas) is not None
