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
  ``DescribeCloudResourceAccessPortDetails``. ``...:extra`` adds it as an extension
  certificate (``CreateCloudResourceExtensionCert``) and then deletes the extension
  acmeali added before (``DeleteCloudResourceExtensionCert``); other extensions stay.

WAF takes the CAS certificate by identifier (``<CertId>-<region>``). Sources:
alibabacloud_waf_openapi20211001 7.8.7 models (_describe_instance_*,
_describe_domain_detail_*, _modify_domain_request.py, _describe_domains_*,
_modify_cloud_resource_default_cert_request.py,
_create_cloud_resource_extension_cert_request.py, _delete_cloud_resource_extension_cert_*,
_describe_cloud_resource_access_port_details_*).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from acmeali.aliyun.services import Service, cas_region
from acmeali.deployers.base import (
    DeployContext,
    PartialDeployError,
    Target,
    TargetResult,
    split_region,
)
from acmeali.deployers.cas import CAS, CasCert
from acmeali.deployers.many import bind_many, error_text
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
        "waf:[<region>:]cloud:<resource-instance-id>:<port>",
        "waf:[<region>:]cloud:<resource-instance-id>:<port>:extra")
    summary = ("WAF 3.0 CNAME-access domain(s) (auto: every covered HTTPS one) or a "
               "cloud-native resource port's default (or an extension) certificate, by CAS "
               "identifier")
    services = (CAS, WAF)
    ram_actions = WAF.ram_actions(
        "DescribeInstance", "DescribeDomainDetail", "ModifyDomain", "DescribeDomains",
        "DescribeCloudResourceAccessPortDetails", "ModifyCloudResourceDefaultCert",
        "CreateCloudResourceExtensionCert", "DeleteCloudResourceExtensionCert")

    spec: str
    domain: str = ""
    resource: str = ""
    port: int = 0
    region: str | None = None
    extra: bool = False

    @classmethod
    def parse(cls, spec: str, arg: str) -> Waf:
        region, rest = split_region(arg.split(":"), 1)
        extra = len(rest) == 4 and rest[0] == "cloud" and rest[3] == "extra"
        if (len(rest) == 3 or extra) and rest[0] == "cloud":
            if not rest[1] or not rest[2].isdigit():
                raise cls.fail(spec, "cloud access needs a resource instance id and a port")
            return cls(spec, resource=rest[1], port=int(rest[2]), region=region, extra=extra)
        if len(rest) != 1 or not rest[0] or rest[0] == "cloud":
            raise cls.fail(spec, "malformed")
        return cls(spec, domain=rest[0].lower().rstrip("."), region=region)

    def plan(self) -> str:
        if self.resource:
            role = "an extension" if self.extra else "the default"
            return f"{role} certificate of WAF cloud resource {self.resource} port {self.port}"
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

    @staticmethod
    def _extensions(row: dict[str, Any]) -> list[str]:
        return [str(c.get("CertificateId")) for c in row.get("Certificates") or []
                if str(c.get("AppliedType") or "").lower() == "extension"]

    def _bind_extension(self, ctx: DeployContext, instance: str) -> TargetResult:
        """Add ours as an extension, then delete the one acmeali added before."""
        cas = ctx.cas.ensure()
        where = f"WAF cloud resource {self.resource}:{self.port}"
        row = self._port_row(ctx, instance)
        cloud_id = row.get("CloudResourceId")
        dep = ctx.meta.deployments.get(self.spec)
        details = (dep.details if dep else {}) or {}
        # what acmeali added before: the last one, or the one a failed delete left behind
        olds = [str(details.get(k) or "") for k in ("certificate_id", "previous")]
        previous = next((o for o in olds if o and o != cas.identifier
                         and o in self._extensions(row)), "")
        if cas.identifier not in self._extensions(row):
            self._call(ctx, "CreateCloudResourceExtensionCert", {
                "InstanceId": instance, "CloudResourceId": cloud_id, "CertId": cas.identifier})
            if ctx.dry_run:
                return TargetResult(f"{where} would add {cas.identifier} (extension)")
            self._confirm(ctx, lambda: cas.identifier if cas.identifier in self._extensions(
                self._port_row(ctx, instance)) else None, where, cas)
        elif not previous:
            return TargetResult(f"{where} already serves {cas.identifier} (extension)",
                                {"certificate_id": cas.identifier}, frozenset({cas.cert_id}))
        if previous:
            try:
                self._call(ctx, "DeleteCloudResourceExtensionCert", {
                    "InstanceId": instance, "CloudResourceId": cloud_id, "CertId": previous})
            except Exception as exc:
                old_id = previous.partition("-")[0]
                raise PartialDeployError(
                    f"{where} serves {cas.identifier}, but the previous extension "
                    f"{previous} is still there: {error_text(exc)}",
                    {"certificate_id": cas.identifier, "previous": previous},
                    frozenset({cas.cert_id} | ({int(old_id)} if old_id.isdigit() else set())),
                ) from None
        return TargetResult(f"{where} now serves {cas.identifier} (extension)",
                            {"certificate_id": cas.identifier}, frozenset({cas.cert_id}))

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
        if self.resource and self.extra:
            return self._bind_extension(ctx, instance)
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
        if self.resource and self.extra:
            return cas.identifier in self._extensions(self._port_row(ctx, instance))
        if self.resource:
            return _serves(self._default_cert(self._port_row(ctx, instance)), cas)
        if self.domain == "auto":
            dep = ctx.meta.deployments.get(self.spec)
            names = list(((dep.details if dep else {}) or {}).get("bound") or {})
        else:
            names = [self.domain]
        return all(_serves((self._detail(ctx, instance, d).get("Listen") or {}).get("CertId"),
                           cas) for d in names)
