"""``ga:<accelerator-id>:<listener-id>[:<domain>|:auto]``: a Global Accelerator HTTPS
listener's default certificate, or the additional certificate of one domain (SNI) or of
every covered domain.

Wire names from alibabacloud_ga20191120 (3.0.2). GA is a global service managed from
``cn-hangzhou`` ("RegionId: set the value to cn-hangzhou"; endpoint
``ga.cn-hangzhou.aliyuncs.com``); certificates are CAS identifiers ``<CertId>-<region>``.

- default: ``UpdateListener(RegionId, ListenerId, Certificates.1.Id)``. Only the
  certificate is sent: every other listener setting (ports, security policy, HTTP version,
  timeouts, X-Forwarded-For) is absent and therefore unchanged.
- additional (``...:<domain>``): each domain holds one additional certificate ("Each domain
  name can be bound to only one additional certificate"), so a domain that has one is
  switched in place with ``UpdateAdditionalCertificateWithListener`` — nothing is left
  behind to dissociate — and a domain without one gets
  ``AssociateAdditionalCertificatesWithListener(Certificates.1.Domain/Id)``.
- auto (``...:auto``): every domain of the listener that already has an additional
  certificate and is covered by the certificate, replaced in place one after the other (the
  listener takes one change at a time); one that fails is recorded and retried.
- ``ListListenerCertificates`` reads back ``{CertificateId, Domain, IsDefault, State}``;
  changes are asynchronous (``updating`` -> ``active``), so every change is read back until
  it settles, bounded, before the target counts as deployed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from acmeali.aliyun.services import Service
from acmeali.deployers.base import DeployContext, PartialDeployError, Target, TargetResult
from acmeali.deployers.cas import CAS
from acmeali.errors import DeployError

GA = Service("ga", "alibabacloud_ga20191120", "ga.cn-hangzhou.aliyuncs.com", "ga")

GA_REGION = "cn-hangzhou"
ACTIVE = "active"
PAGE_SIZE = 50  # ListListenerCertificates' maximum
MAX_PAGES = 100

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Ga(Target):
    """``ga:<accelerator-id>:<listener-id>[:<domain>]``."""

    kind = "ga"
    usage = ("ga:<accelerator-id>:<listener-id>", "ga:<accelerator-id>:<listener-id>:<domain>",
             "ga:<accelerator-id>:<listener-id>:auto")
    summary = ("Global Accelerator HTTPS listener's default certificate, or one domain's "
               "additional certificate (auto: every covered domain that has one)")
    services = (CAS, GA)
    ram_actions = GA.ram_actions(
        "UpdateListener", "ListListenerCertificates",
        "AssociateAdditionalCertificatesWithListener",
        "UpdateAdditionalCertificateWithListener")
    settle_tries: ClassVar[int] = 30
    settle_interval: ClassVar[float] = 0.5

    spec: str
    accelerator_id: str
    listener_id: str
    domain: str | None = None

    @classmethod
    def parse(cls, spec: str, arg: str) -> Ga:
        parts = arg.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise cls.fail(spec, "malformed")
        if not parts[0].startswith("ga-"):
            raise cls.fail(spec, f"{parts[0]!r} is not an accelerator id (ga-...)")
        domain = parts[2].lower().rstrip(".") if len(parts) == 3 else None
        return cls(spec, parts[0], parts[1], domain)

    def plan(self) -> str:
        role = ("the additional certificate of every covered domain" if self.domain == "auto"
                else f"the additional certificate for {self.domain}" if self.domain
                else "the default certificate")
        return f"{role} of GA listener {self.listener_id} ({self.accelerator_id})"

    # ------------------------------------------------------------------ wire
    def _call(self, ctx: DeployContext, action: str, params: dict[str, Any]) -> dict[str, Any]:
        return ctx.api(GA, action, {"RegionId": GA_REGION, "ListenerId": self.listener_id,
                                    **params}, region=GA_REGION)

    def rows(self, ctx: DeployContext) -> Rows:
        out: Rows = []
        token = ""
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"AcceleratorId": self.accelerator_id,
                                      "Role": "additional" if self.domain else "default",
                                      "MaxResults": PAGE_SIZE}
            if token:
                params["NextToken"] = token
            body = self._call(ctx, "ListListenerCertificates", params)
            out.extend(dict(r) for r in body.get("Certificates") or [])
            token = str(body.get("NextToken") or "")
            if not token:
                break
        return out

    @staticmethod
    def _slot(rows: Rows, domain: str | None) -> dict[str, Any] | None:
        """The row of a slot: the default certificate (``domain`` None), or the additional
        one of ``domain``."""
        for row in rows:
            default = str(row.get("IsDefault")).lower() == "true"
            if domain is None and default:
                return row
            if (domain is not None and not default
                    and str(row.get("Domain") or "").lower() == domain):
                return row
        return None

    def _serves(self, rows: Rows, ident: str, domain: str | None) -> bool:
        row = self._slot(rows, domain)
        return (row is not None and str(row.get("CertificateId") or "") == ident
                and str(row.get("State") or "").lower() == ACTIVE)

    def _recorded(self, ctx: DeployContext) -> dict[str, Any]:
        dep = ctx.meta.deployments.get(self.spec)
        return dict((dep.details if dep else {}).get("domains") or {})

    def check(self, ctx: DeployContext) -> bool:
        ident = ctx.cas.ensure().identifier
        rows = self.rows(ctx)
        if self.domain == "auto":
            return all(self._serves(rows, ident, d) for d in self._recorded(ctx))
        return self._serves(rows, ident, self.domain)

    def _settle(self, ctx: DeployContext, done: Callable[[Rows], bool], what: str) -> Rows:
        rows: Rows = []
        for attempt in range(self.settle_tries):
            rows = self.rows(ctx)
            if done(rows):
                return rows
            if attempt + 1 < self.settle_tries:
                time.sleep(self.settle_interval)
        shown = ", ".join(f"{r.get('CertificateId')} ({r.get('State')})" for r in rows) or "none"
        raise DeployError(f"GA listener {self.listener_id}: {what} did not settle; it lists "
                          f"{shown}", hint="the listener may still be updating; run "
                                           "`acmeali deploy` again")

    # ------------------------------------------------------------------ deploy
    def deploy(self, ctx: DeployContext) -> TargetResult:
        if self.domain == "auto":
            return self._deploy_auto(ctx)
        if self.domain is not None and not ctx.cert.covers(self.domain):
            raise DeployError(f"the certificate ({', '.join(ctx.cert.names)}) does not cover "
                              f"{self.domain}, so GA would serve a name mismatch")
        cas = ctx.cas.ensure()
        message = self._put(ctx, self.domain, self.rows(ctx))
        if ctx.dry_run:
            return TargetResult(message)
        return TargetResult(message, {"certificate_id": cas.identifier,
                                      "accelerator_id": self.accelerator_id},
                            frozenset({cas.cert_id}))

    def _put(self, ctx: DeployContext, domain: str | None, rows: Rows) -> str:
        """Make one slot serve the certificate (``rows``: the listener's certificates as
        read just before); read back until it settles."""
        ident = ctx.cas.ensure().identifier
        where = f"GA listener {self.listener_id}"
        role = f"additional, {domain}" if domain else "default"
        if self._serves(rows, ident, domain):
            return f"{where} already serves {ident} ({role})"
        slot = self._slot(rows, domain)
        if any(str(r.get("State") or "").lower() != ACTIVE for r in rows):
            # A change still in flight (ours from a run cut short, or someone's): the
            # listener refuses another until it settles.
            rows = self._settle(ctx, lambda rs: all(str(r.get("State") or "").lower() == ACTIVE
                                                    for r in rs), "an earlier change")
            if self._serves(rows, ident, domain):
                return f"{where} already serves {ident} ({role})"
            slot = self._slot(rows, domain)
        if domain is None:
            self._call(ctx, "UpdateListener", {"Certificates": [{"Id": ident}]})
        elif slot is not None:
            self._call(ctx, "UpdateAdditionalCertificateWithListener", {
                "AcceleratorId": self.accelerator_id, "Domain": domain, "CertificateId": ident})
        else:
            self._call(ctx, "AssociateAdditionalCertificatesWithListener", {
                "AcceleratorId": self.accelerator_id,
                "Certificates": [{"Domain": domain, "Id": ident}]})
        if ctx.dry_run:
            return f"{where} would serve {ident} ({role})"
        self._settle(ctx, lambda rs: self._serves(rs, ident, domain), f"{ident} ({role})")
        return f"{where} now serves {ident} ({role})"

    def _deploy_auto(self, ctx: DeployContext) -> TargetResult:
        """Every domain of the listener that has an additional certificate and is covered:
        replaced in place, one at a time (the listener takes one change at a time)."""
        rows = self.rows(ctx)
        covered = sorted({str(r.get("Domain") or "").lower() for r in rows
                          if str(r.get("IsDefault")).lower() != "true" and r.get("Domain")
                          and ctx.cert.covers(str(r["Domain"]).lower())})
        if not covered:
            ctx.ui.warn(f"{self.spec}: no additional certificate of GA listener "
                        f"{self.listener_id} is for a domain the certificate covers "
                        f"({', '.join(ctx.cert.names)})")
            return TargetResult("no covered domain", {"domains": {}})
        cas = ctx.cas.ensure()
        bound = {d: v for d, v in self._recorded(ctx).items() if d in covered}
        failures: list[str] = []
        for domain in covered:
            try:
                self._put(ctx, domain, rows)
                if not ctx.dry_run:
                    rows = self.rows(ctx)
            except Exception as exc:
                how = getattr(exc, "render", None)
                failures.append(f"{domain}: {how() if callable(how) else exc}")
                continue
            if not ctx.dry_run:
                bound[domain] = cas.cert_id
        details = {"domains": bound, "accelerator_id": self.accelerator_id}
        in_use = frozenset(int(v) for v in bound.values() if str(v).isdigit())
        if failures:
            raise PartialDeployError(f"{len(failures)} of {len(covered)} GA domains failed: "
                                     + "; ".join(failures), details, in_use)
        return TargetResult(f"GA listener {self.listener_id}: {len(covered)} domain(s): "
                            f"{', '.join(covered)}", details, in_use)
