"""``clb:[<region>:]<lb-id>:<port>[:<domain>]`` (alias ``slb:``): the certificate of a
Classic Load Balancer HTTPS listener, or of one of its SNI domain extensions.

CLB does not bind CAS certificates directly: it serves its own *server certificates*,
which ``UploadServerCertificate`` can create from a CAS certificate
(``AliCloudCertificateId`` + ``AliCloudCertificateRegionId``, the CAS region of the site).
So: the CAS copy (shared with every other target of the run), then one server certificate
per region made from it, reused when it is already there (``DescribeServerCertificates``,
matched by ``AliCloudCertificateId`` or fingerprint), then
``SetLoadBalancerHTTPSListenerAttribute`` (default certificate) or
``SetDomainExtensionAttribute`` (the extension found with ``DescribeDomainExtensions``).
Read first (nothing is written when the bound server certificate already has this
fingerprint) and read back after.

A server certificate a deploy replaced goes into the lineage's record at once
(``meta.replaced_certs``, saved with the deploy's outcomes), as does the one a target's
record names when the listener serves another (a run killed before saving). At the end
of the run, and of every later deploy of the lineage whatever its targets, each recorded
one is deleted if acmeali made it (named ``acmeali-...``) and no CLB target of the lineage
records it (a target that failed still serves its old one). It leaves the record once
deleted, once ``DescribeServerCertificates`` no longer lists it, or when it is not
acmeali's; a failed deletion (throttling, an error, CLB refusing one a listener still
uses) is reported and kept for the next deploy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from acmeali.aliyun.errors import AliyunError
from acmeali.aliyun.services import Service
from acmeali.deployers.base import DeployContext, Target, TargetResult, split_region
from acmeali.deployers.cas import CAS, NAME_PREFIX, is_gone, name_for
from acmeali.errors import DeployError
from acmeali.lineage import to_iso, utcnow

log = logging.getLogger(__name__)

# The SDK's endpoint map sends these regions to the central endpoint; the rest are regional.
_CENTRAL = ("cn-qingdao", "cn-beijing", "cn-hangzhou", "cn-shanghai", "cn-shenzhen",
            "cn-hongkong", "ap-southeast-1", "us-east-1", "us-west-1")
SLB = Service("slb", "alibabacloud_slb20140515", "slb.{region}.aliyuncs.com", "slb",
              region_endpoints={r: "slb.aliyuncs.com" for r in _CENTRAL})
KIND = "clb"  # ``meta.replaced_certs`` entries of this module


def _hex(value: Any) -> str:
    return str(value or "").replace(":", "").strip().lower()


class ClbServerCerts:
    """Per run: the server certificate made from the CAS copy, one per region; and the
    deletion of the acmeali server certificates deploys replaced (``meta.replaced_certs``).

    A replaced one is recorded in the lineage's record the moment it is replaced, not only
    deleted at the end of the run: a deletion that fails (throttling, a listener still
    using it, the process killed before the end) is retried by every later deploy of the
    lineage instead of leaving the certificate in the account for good.
    """

    def __init__(self, ctx: DeployContext) -> None:
        self.ctx = ctx
        self.by_region: dict[str, str] = {}

    def describe(self, region: str, cert_id: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"RegionId": region}
        if cert_id:
            params["ServerCertificateId"] = cert_id
        body = self.ctx.api(SLB, "DescribeServerCertificates", params, region=region)
        return list((body.get("ServerCertificates") or {}).get("ServerCertificate") or [])

    def serves(self, row: dict[str, Any] | None) -> bool:
        return bool(row) and _hex((row or {}).get("Fingerprint")) in (self.ctx.cert.sha1,
                                                                       self.ctx.cert.fingerprint)

    def ensure(self, region: str) -> str:
        """The server certificate id for this certificate in ``region``."""
        if region in self.by_region:
            return self.by_region[region]
        cas = self.ctx.cas.ensure()
        for row in self.describe(region):
            if str(row.get("AliCloudCertificateId") or "") == str(cas.cert_id) or self.serves(row):
                self.by_region[region] = str(row["ServerCertificateId"])
                return self.by_region[region]
        body = self.ctx.api(SLB, "UploadServerCertificate", {
            "RegionId": region, "AliCloudCertificateId": str(cas.cert_id),
            "AliCloudCertificateName": cas.name, "AliCloudCertificateRegionId": cas.region,
            "ServerCertificateName": name_for(self.ctx)}, region=region)
        cert_id = str(body.get("ServerCertificateId") or ("<new>" if self.ctx.dry_run else ""))
        if not cert_id:
            raise DeployError("CLB UploadServerCertificate returned no ServerCertificateId")
        self.by_region[region] = cert_id
        return cert_id

    def forget(self, region: str, cert_id: str | None) -> None:
        """``cert_id`` was replaced somewhere: recorded as a deletion candidate at once (no
        call; :meth:`finish` checks it is acmeali's before deleting)."""
        if not cert_id or self.ctx.dry_run or cert_id in self.by_region.values():
            return
        record = self.ctx.meta.replaced_certs
        if any(e.get("kind") == KIND and e.get("id") == cert_id for e in record):
            return
        record.append({"kind": KIND, "id": cert_id, "region": region,
                       "replaced": to_iso(utcnow())})

    def finish(self) -> None:
        """Delete every recorded candidate that acmeali made and nothing of this lineage
        serves; keep (and retry next time) those whose deletion fails; never raises."""
        if self.ctx.dry_run:
            return
        record = self.ctx.meta.replaced_certs
        current = set(self.by_region.values())
        served = {str(d.details.get("server_certificate_id"))
                  for d in self.ctx.meta.deployments.values() if d.details}
        for entry in [e for e in record if e.get("kind") == KIND]:
            cert_id, region = str(entry.get("id") or ""), str(entry.get("region") or "")
            if not cert_id or not region or cert_id in current:
                record.remove(entry)  # unusable, or serving this run's certificate again
                continue
            if cert_id in served:
                continue  # a target that failed to move still serves it: next time
            try:
                self._delete(cert_id, region)
            except Exception as exc:  # clean-up must never fail a deploy
                render = getattr(exc, "render", None)
                self.ctx.ui.warn(f"kept the old CLB server certificate {cert_id} "
                                 f"({render() if callable(render) else exc}); the next "
                                 "deploy of this lineage tries again")
                continue
            record.remove(entry)

    def _delete(self, cert_id: str, region: str) -> None:
        """Delete ``cert_id`` if it is there and acmeali made it; raise if it stays."""
        try:
            rows = self.describe(region, cert_id)
        except AliyunError as exc:
            if not is_gone(exc):
                raise
            rows = []
        if not rows:
            log.info("CLB server certificate %s is gone; forgetting it", cert_id)
            return
        name = str(rows[0].get("ServerCertificateName") or "")
        if not name.startswith(NAME_PREFIX):
            return  # not one acmeali made: never deleted
        try:
            self.ctx.api(SLB, "DeleteServerCertificate",
                         {"RegionId": region, "ServerCertificateId": cert_id}, region=region)
        except AliyunError as exc:
            if not is_gone(exc):
                raise
        self.ctx.ui.info(f"deleted the old CLB server certificate {cert_id} ({name})")


@dataclass(frozen=True)
class Clb(Target):
    """``clb:[<region>:]<lb-id>:<port>[:<domain>]``."""

    kind = "clb"
    usage = ("clb:[<region>:]<lb-id>:<port>", "clb:[<region>:]<lb-id>:<port>:<domain>")
    summary = "CLB (SLB) HTTPS listener's default certificate, or an SNI domain's"
    services = (CAS, SLB)
    leftovers = ClbServerCerts
    ram_actions = SLB.ram_actions(
        "UploadServerCertificate", "DescribeServerCertificates", "DeleteServerCertificate",
        "DescribeLoadBalancerHTTPSListenerAttribute", "SetLoadBalancerHTTPSListenerAttribute",
        "DescribeDomainExtensions", "SetDomainExtensionAttribute")

    spec: str
    lb_id: str
    port: int
    domain: str | None = None
    region: str | None = field(default=None)

    @classmethod
    def parse(cls, spec: str, arg: str) -> Clb:
        region, rest = split_region(arg.split(":"), 2)
        if len(rest) not in (2, 3) or not rest[0]:
            raise cls.fail(spec, "malformed")
        if not rest[1].isdigit() or not 0 < int(rest[1]) < 65536:
            raise cls.fail(spec, f"{rest[1]!r} is not a listener port")
        domain = None
        if len(rest) == 3:
            from acmeali.validate import InvalidValue, target_domain

            try:
                domain = target_domain(rest[2])
            except InvalidValue as exc:
                raise cls.fail(spec, str(exc)) from None
        return cls(spec, rest[0], int(rest[1]), domain, region)

    def plan(self) -> str:
        where = f"SNI domain {self.domain} of" if self.domain else "the default certificate of"
        return f"{where} CLB {self.lb_id} port {self.port}"

    def _region(self, ctx: DeployContext) -> str:
        return self.region or ctx.settings.region

    def _bound(self, ctx: DeployContext) -> tuple[str | None, str | None]:
        """(server certificate id bound now, domain extension id or None)."""
        region = self._region(ctx)
        key = {"RegionId": region, "LoadBalancerId": self.lb_id, "ListenerPort": self.port}
        if self.domain is None:
            body = ctx.api(SLB, "DescribeLoadBalancerHTTPSListenerAttribute", key, region=region)
            return str(body.get("ServerCertificateId") or "") or None, None
        body = ctx.api(SLB, "DescribeDomainExtensions", key, region=region)
        for ext in (body.get("DomainExtensions") or {}).get("DomainExtension") or []:
            if str(ext.get("Domain") or "").lower().rstrip(".") == self.domain:
                return (str(ext.get("ServerCertificateId") or "") or None,
                        str(ext["DomainExtensionId"]))
        raise DeployError(f"CLB {self.lb_id} port {self.port} has no domain extension for "
                          f"{self.domain}", hint="add the SNI domain to the listener in the CLB "
                          "console (Additional Domains) first; acmeali only updates it")

    def check(self, ctx: DeployContext) -> bool:
        bound, _ = self._bound(ctx)
        certs = ctx.service(ClbServerCerts)
        return bool(bound) and any(certs.serves(r)
                                   for r in certs.describe(self._region(ctx), bound or ""))

    def deploy(self, ctx: DeployContext) -> TargetResult:
        region = self._region(ctx)
        if self.domain and not ctx.cert.covers(self.domain):
            raise DeployError(f"the certificate ({', '.join(ctx.cert.names)}) does not cover "
                              f"{self.domain}, so CLB would serve a name mismatch")
        certs = ctx.service(ClbServerCerts)
        cas = ctx.cas.ensure()
        before, extension = self._bound(ctx)
        what = f"CLB {self.lb_id}:{self.port}" + (f" ({self.domain})" if self.domain else "")
        if before and any(certs.serves(r) for r in certs.describe(region, before)):
            self._forget_recorded(ctx, certs, before)
            return self._result(f"{what} already serves this certificate ({before})", before,
                                region, cas.cert_id)
        new = certs.ensure(region)
        if extension is None:
            ctx.api(SLB, "SetLoadBalancerHTTPSListenerAttribute", {
                "RegionId": region, "LoadBalancerId": self.lb_id, "ListenerPort": self.port,
                "ServerCertificateId": new}, region=region)
        else:
            ctx.api(SLB, "SetDomainExtensionAttribute", {
                "RegionId": region, "DomainExtensionId": extension,
                "ServerCertificateId": new}, region=region)
        if ctx.dry_run:
            return TargetResult(f"{what} would serve server certificate {new}")
        after, _ = self._bound(ctx)
        if after != new:
            raise DeployError(f"{what}: the certificate was set, but the listener reports "
                              f"{after!r} instead of {new}",
                              hint="run `acmeali deploy` again")
        certs.forget(region, before)
        self._forget_recorded(ctx, certs, new)
        return self._result(f"{what} now serves {new}", new, region, cas.cert_id)

    def _forget_recorded(self, ctx: DeployContext, certs: ClbServerCerts, bound: str) -> None:
        """The server certificate this target's record names, when the listener no longer
        serves it: a run killed after the switch but before its record (and so its
        deletion candidate) was saved left it behind."""
        dep = ctx.meta.deployments.get(self.spec)
        details = (dep.details if dep else None) or {}
        recorded = str(details.get("server_certificate_id") or "")
        if recorded and recorded != bound:
            certs.forget(str(details.get("region") or self._region(ctx)), recorded)

    @staticmethod
    def _result(message: str, cert_id: str, region: str, cas_id: int) -> TargetResult:
        return TargetResult(message, {"server_certificate_id": cert_id, "region": region},
                            frozenset({cas_id}))
