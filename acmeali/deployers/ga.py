"""``ga:<accelerator-id>:<listener-id>[:<domain>]``: a Global Accelerator HTTPS listener's
default certificate, or the additional certificate of one domain (SNI).

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
from acmeali.deployers.base import DeployContext, Target, TargetResult
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
    usage = ("ga:<accelerator-id>:<listener-id>", "ga:<accelerator-id>:<listener-id>:<domain>")
    summary = ("Global Accelerator HTTPS listener's default certificate, or one domain's "
               "additional certificate")
    services = (CAS, GA)
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
        role = (f"the additional certificate for {self.domain}" if self.domain
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

    def _slot(self, rows: Rows) -> dict[str, Any] | None:
        """Our row: the default certificate, or the additional one of our domain."""
        for row in rows:
            default = str(row.get("IsDefault")).lower() == "true"
            if self.domain is None and default:
                return row
            if (self.domain is not None and not default
                    and str(row.get("Domain") or "").lower() == self.domain):
                return row
        return None

    def _serves(self, rows: Rows, ident: str) -> bool:
        row = self._slot(rows)
        return (row is not None and str(row.get("CertificateId") or "") == ident
                and str(row.get("State") or "").lower() == ACTIVE)

    def check(self, ctx: DeployContext) -> bool:
        return self._serves(self.rows(ctx), ctx.cas.ensure().identifier)

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
        if self.domain is not None and not ctx.cert.covers(self.domain):
            raise DeployError(f"the certificate ({', '.join(ctx.cert.names)}) does not cover "
                              f"{self.domain}, so GA would serve a name mismatch")
        cas = ctx.cas.ensure()
        ident = cas.identifier
        where = f"GA listener {self.listener_id}"
        role = f"additional, {self.domain}" if self.domain else "default"
        result = TargetResult(f"{where} now serves {ident} ({role})",
                              {"certificate_id": ident, "accelerator_id": self.accelerator_id},
                              frozenset({cas.cert_id}))
        rows = self.rows(ctx)
        if self._serves(rows, ident):
            result.message = f"{where} already serves {ident} ({role})"
            return result
        slot = self._slot(rows)
        if slot is not None and str(slot.get("State") or "").lower() != ACTIVE:
            # A change still in flight (ours from a run cut short, or someone's): the
            # listener refuses another until it settles.
            rows = self._settle(ctx, lambda r: str((self._slot(r) or {}).get("State") or ACTIVE)
                                .lower() == ACTIVE, "an earlier change")
            if self._serves(rows, ident):
                result.message = f"{where} already serves {ident} ({role})"
                return result
            slot = self._slot(rows)
        if self.domain is None:
            self._call(ctx, "UpdateListener", {"Certificates": [{"Id": ident}]})
        elif slot is not None:
            self._call(ctx, "UpdateAdditionalCertificateWithListener", {
                "AcceleratorId": self.accelerator_id, "Domain": self.domain,
                "CertificateId": ident})
        else:
            self._call(ctx, "AssociateAdditionalCertificatesWithListener", {
                "AcceleratorId": self.accelerator_id,
                "Certificates": [{"Domain": self.domain, "Id": ident}]})
        if ctx.dry_run:
            return TargetResult(f"{where} would serve {ident} ({role})")
        self._settle(ctx, lambda r: self._serves(r, ident), ident)
        return result
