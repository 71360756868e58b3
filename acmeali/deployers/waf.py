"""``waf:`` WAF 3.0: CNAME-access domains and cloud-native (cloud resource) access.

Forms (``<region>`` is the WAF region, ``cn-hangzhou`` on the China site and
``ap-southeast-1`` internationally; it defaults to the site's):

- ``waf:[<region>:]<domain>``: a CNAME-access domain. ``DescribeInstance`` finds the
  account's WAF 3.0 instance, ``DescribeDomainDetail`` reads the domain, ``ModifyDomain``
  sends back the *whole* ``Listen`` and ``Redirect`` settings it read with only
  ``Listen.CertId`` changed: the action replaces both objects, so anything left out
  (ports, HSTS, TLS, back ends, timeouts, headers) would be reset. The response shapes
  differ from the request's in two fields (``Redirect.Backends``/``BackupBackends`` are
  ``[{"Backend": ...}]`` when read, plain strings when written), converted here; fields
  the request model does not know are dropped by it.
- ``waf:[<region>:]auto``: every CNAME-access domain (``DescribeDomains``) that has an
  HTTPS listen port and whose name the certificate covers.
- ``waf:[<region>:]cloud:<resource-instance-id>:<port>``: cloud-native access (an ALB,
  CLB, ECS... resource added to WAF): the port's default certificate, through
  ``ModifyCloudResourceDefaultCert``, read back with
  ``DescribeCloudResourceAccessPortDetails``.

WAF takes the CAS certificate by identifier (``<CertId>-<region>``). Sources:
alibabacloud_waf_openapi20211001 7.8.7 models (_describe_instance_*,
_describe_domain_detail_*, _modify_domain_request.py, _describe_domains_*,
_modify_cloud_resource_default_cert_request.py,
_describe_cloud_resource_access_port_details_*).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from acmeali.aliyun.services import Service, cas_region
from acmeali.deployers.base import DeployContext, Target, TargetResult, split_region
from acmeali.deployers.cas import CAS, CasCert
from acmeali.deployers.many import bind_many
from acmeali.errors import DeployError

WAF = Service("waf", "alibabacloud_waf_openapi20211001", "wafopenapi.{region}.aliyuncs.com",
              "yundun-waf")

PAGE_SIZE = 50  # DescribeDomains: PageSize default 10; 50 is within the documented maximum
MAX_PAGES = 200
CONFIRM_TRIES = 10
CONFIRM_INTERVAL = 0.5


def _serves(cert_id: Any, cas: CasCert) -> bool:
    return str(cert_id or "") == cas.identifier


def _redirect_for_write(redirect: dict[str, Any]) -> dict[str, Any]:
    """The read ``Redirect`` in the request's shape."""
    out = dict(redirect)
    for key in ("Backends", "BackupBackends"):
        rows = out.get(key)
        if isinstance(rows, list):
            out[key] = [str(r.get("Backend")) if isinstance(r, dict) else str(r) for r in rows]
    return out


@dataclass(frozen=True)
class Waf(Target):
    kind = "waf"
    usage: ClassVar[tuple[str, ...]] = (
        "waf:[<region>:]<domain>", "waf:[<region>:]auto",
        "waf:[<region>:]cloud:<resource-instance-id>:<port>")
    summary = ("WAF 3.0 CNAME-access domain(s) (auto: every covered HTTPS one) or a "
               "cloud-native resource port's default certificate, by CAS identifier")
    services = (CAS, WAF)

    spec: str
    domain: str = ""
    resource: str = ""
    port: int = 0
    region: str | None = None

    @classmethod
    def parse(cls, spec: str, arg: str) -> Waf:
        region, rest = split_region(arg.split(":"), 1)
        if len(rest) == 3 and rest[0] == "cloud":
            if not rest[1] or not rest[2].isdigit():
                raise cls.fail(spec, "cloud access needs a resource instance id and a port")
            return cls(spec, resource=rest[1], port=int(rest[2]), region=region)
        if len(rest) != 1 or not rest[0] or rest[0] == "cloud":
            raise cls.fail(spec, "malformed")
        return cls(spec, domain=rest[0].lower().rstrip("."), region=region)

    def plan(self) -> str:
        if self.resource:
            return f"default certificate of WAF cloud resource {self.resource} port {self.port}"
        what = "every covered HTTPS domain" if self.domain == "auto" else self.domain
        return f"point WAF {what} at the CAS certificate (Listen.CertId)"

    # ------------------------------------------------------------------ wire
    def _region(self, ctx: DeployContext) -> str:
        return self.region or cas_region(ctx.settings)

    def _call(self, ctx: DeployContext, action: str, params: dict[str, Any]) -> dict[str, Any]:
        region = self._region(ctx)
        return ctx.api(WAF, action, {"RegionId": region, **params}, region=region)

    def _instance(self, ctx: DeployContext) -> str:
        body = self._call(ctx, "DescribeInstance", {})
        instance = str(body.get("InstanceId") or "")
        if not instance:
            raise DeployError(f"{self.spec}: no WAF 3.0 instance in {self._region(ctx)}",
                              hint="WAF 2.0 instances are not supported; check the region "
                                   "(cn-hangzhou on the China site, ap-southeast-1 "
                                   "internationally)")
        return instance

    def _detail(self, ctx: DeployContext, instance: str, domain: str) -> dict[str, Any]:
        return self._call(ctx, "DescribeDomainDetail", {"InstanceId": instance, "Domain": domain})

    # ------------------------------------------------------------------ CNAME access
    def _bind_domain(self, ctx: DeployContext, instance: str, domain: str) -> tuple[str, Any]:
        cas = ctx.cas.ensure()
        if not ctx.cert.covers(domain):
            raise DeployError(f"the certificate ({', '.join(ctx.cert.names)}) does not cover "
                              f"{domain}, so WAF would serve a name mismatch")
        detail = self._detail(ctx, instance, domain)
        listen = dict(detail.get("Listen") or {})
        if _serves(listen.get("CertId"), cas):
            return f"WAF {domain} already serves {cas.identifier}", cas.cert_id
        if not listen.get("HttpsPorts"):
            raise DeployError(f"WAF {domain} has no HTTPS listen port, so it cannot serve a "
                              "certificate", hint="add an HTTPS port to the domain in the WAF "
                                                  "console, then run `acmeali deploy` again")
        listen["CertId"] = cas.identifier
        params: dict[str, Any] = {
            "InstanceId": instance, "Domain": domain, "Listen": listen,
            "Redirect": _redirect_for_write(dict(detail.get("Redirect") or {}))}
        if detail.get("DomainId"):
            params["DomainId"] = detail["DomainId"]
        self._call(ctx, "ModifyDomain", params)
        if ctx.dry_run:
            return f"WAF {domain} would serve {cas.identifier}", cas.cert_id
        self._confirm(ctx, lambda: (self._detail(ctx, instance, domain).get("Listen")
                                    or {}).get("CertId"), f"WAF {domain}", cas)
        return f"WAF {domain} now serves {cas.identifier}", cas.cert_id

    def _confirm(self, ctx: DeployContext, read: Any, where: str, cas: CasCert) -> None:
        shown: Any = None
        for attempt in range(CONFIRM_TRIES):
            shown = read()
            if _serves(shown, cas):
                return
            if attempt + 1 < CONFIRM_TRIES:
                time.sleep(CONFIRM_INTERVAL)
        raise DeployError(f"{where}: the certificate was set, but it still reports "
                          f"{shown!r} instead of {cas.identifier}",
                          hint="the change may still be propagating; run `acmeali deploy` "
                               "again")

    def _https_domains(self, ctx: DeployContext, instance: str) -> list[str]:
        out: list[str] = []
        seen = 0
        for page in range(1, MAX_PAGES + 1):
            body = self._call(ctx, "DescribeDomains", {"InstanceId": instance,
                                                       "PageNumber": page,
                                                       "PageSize": PAGE_SIZE})
            rows = body.get("Domains") or []
            seen += len(rows)
            for row in rows:
                name = str(row.get("Domain") or "").lower()
                if name and (row.get("ListenPorts") or {}).get("Https") \
                        and ctx.cert.covers(name):
                    out.append(name)
            if not rows or seen >= int(body.get("TotalCount") or 0):
                break
        return sorted(set(out))

    # ------------------------------------------------------------------ cloud-native
    def _port_row(self, ctx: DeployContext, instance: str) -> dict[str, Any]:
        body = self._call(ctx, "DescribeCloudResourceAccessPortDetails", {
            "InstanceId": instance, "ResourceInstanceId": self.resource, "Port": self.port})
        for row in body.get("AccessPortDetails") or []:
            if int(row.get("Port") or 0) == self.port:
                return dict(row)
        raise DeployError(f"WAF cloud resource {self.resource} has no port {self.port} "
                          "added to WAF", hint="add the port in the WAF console "
                                               "(cloud native access) first")

    @staticmethod
    def _default_cert(row: dict[str, Any]) -> Any:
        for cert in row.get("Certificates") or []:
            if str(cert.get("AppliedType") or "").lower() == "default":
                return cert.get("CertificateId")
        return None

    def _bind_cloud(self, ctx: DeployContext, instance: str) -> TargetResult:
        cas = ctx.cas.ensure()
        where = f"WAF cloud resource {self.resource}:{self.port}"
        row = self._port_row(ctx, instance)
        result = TargetResult(f"{where} serves {cas.identifier}",
                              {"certificate_id": cas.identifier}, frozenset({cas.cert_id}))
        if _serves(self._default_cert(row), cas):
            result.message = f"{where} already serves {cas.identifier}"
            return result
        self._call(ctx, "ModifyCloudResourceDefaultCert", {
            "InstanceId": instance, "CloudResourceId": row.get("CloudResourceId"),
            "CertId": cas.identifier})
        if ctx.dry_run:
            return TargetResult(f"{where} would serve {cas.identifier}")
        self._confirm(ctx, lambda: self._default_cert(self._port_row(ctx, instance)), where, cas)
        return result

    # ------------------------------------------------------------------ Target
    def deploy(self, ctx: DeployContext) -> TargetResult:
        instance = self._instance(ctx)
        if self.resource:
            return self._bind_cloud(ctx, instance)
        if self.domain == "auto":
            return bind_many(ctx, self.spec, "WAF domain", self._https_domains(ctx, instance),
                             lambda d: self._bind_domain(ctx, instance, d))
        message, cert_id = self._bind_domain(ctx, instance, self.domain)
        cas = ctx.cas.ensure()
        return TargetResult(message, {"certificate_id": cas.identifier},
                            frozenset({cert_id}) if not ctx.dry_run else frozenset())

    def check(self, ctx: DeployContext) -> bool:
        cas = ctx.cas.ensure()
        instance = self._instance(ctx)
        if self.resource:
            return _serves(self._default_cert(self._port_row(ctx, instance)), cas)
        if self.domain == "auto":
            dep = ctx.meta.deployments.get(self.spec)
            names = list(((dep.details if dep else {}) or {}).get("bound") or {})
        else:
            names = [self.domain]
        return all(_serves((self._detail(ctx, instance, d).get("Listen") or {}).get("CertId"),
                           cas) for d in names)
