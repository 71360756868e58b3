"""What the ALB and NLB targets share: a TLS listener that takes CAS certificates by
identifier (``<CertId>-<region>``), one default and any number of additional ones.

Both products answer ``ListListenerCertificates`` with ``{CertificateId, IsDefault,
Status}`` rows and change certificates asynchronously (``Associating`` -> ``Associated``;
``Diassociating`` [sic] -> gone), and a listener that is still configuring refuses the
next change. So every change is read back until it settles, bounded, before the target
counts as deployed. Only the wire names differ; a product module gives them as a
:class:`ListenerApi` and subclasses :class:`ListenerTarget` (see alb.py, nlb.py).

- default (``<kind>:[<region>:]<listener-id>``): ``UpdateListenerAttribute``.
- additional (``...:extra``): associate the new certificate, then dissociate the previous
  one acmeali put there (recorded per target); other certificates are never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
from acmeali.errors import DeployError

SETTLED = "Associated"
PAGE_SIZE = 20  # ListListenerCertificates' default; within both products' limits
MAX_PAGES = 50


@dataclass(frozen=True)
class ListenerApi:
    """One product's wire names for the listener certificate actions."""

    service: Service
    label: str
    set_default: Callable[[str], dict[str, Any]]  # identifier -> UpdateListenerAttribute params
    associate: str
    dissociate: str
    additional: Callable[[str], dict[str, Any]]  # identifier -> (dis)associate params
    list_filter: dict[str, str]  # e.g. {"CertificateType": "Server"}
    region_param: bool  # the actions take RegionId too (NLB)


@dataclass(frozen=True)
class ListenerTarget(Target):
    """``<kind>:[<region>:]<listener-id>[:extra]``; subclasses set ``api`` and the texts."""

    api: ClassVar[ListenerApi]
    settle_tries: ClassVar[int] = 30
    settle_interval: ClassVar[float] = 0.5

    spec: str
    listener_id: str
    extra: bool = False
    region: str | None = None

    @classmethod
    def parse(cls, spec: str, arg: str) -> ListenerTarget:
        parts = arg.split(":")
        extra = len(parts) > 1 and parts[-1] == "extra"
        if extra:
            parts = parts[:-1]
        region, rest = split_region(parts, 1)
        if len(rest) != 1 or not rest[0]:
            raise cls.fail(spec, "malformed")
        return cls(spec, rest[0], extra, region)

    def plan(self) -> str:
        role = "an additional certificate" if self.extra else "the default certificate"
        return f"{role} of {self.api.label} listener {self.listener_id}"

    # ------------------------------------------------------------------ wire
    def _call(self, ctx: DeployContext, action: str, params: dict[str, Any]) -> dict[str, Any]:
        region = self.region or ctx.settings.region
        if self.api.region_param:
            params = {"RegionId": region, **params}
        return ctx.api(self.api.service, action, {"ListenerId": self.listener_id, **params},
                       region=region)

    def certificates(self, ctx: DeployContext) -> dict[str, tuple[bool, str]]:
        """identifier -> (is default, status), every page."""
        out: dict[str, tuple[bool, str]] = {}
        token = ""
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {**self.api.list_filter, "MaxResults": PAGE_SIZE}
            if token:
                params["NextToken"] = token
            body = self._call(ctx, "ListListenerCertificates", params)
            for row in body.get("Certificates") or []:
                default = str(row.get("IsDefault")).lower() == "true"
                out[str(row.get("CertificateId") or "")] = (default, str(row.get("Status") or ""))
            token = str(body.get("NextToken") or "")
            if not token:
                break
        return out

    def _serves(self, certs: dict[str, tuple[bool, str]], ident: str) -> bool:
        default, status = certs.get(ident, (not self.extra, ""))
        return ident in certs and default == (not self.extra) and status == SETTLED

    def check(self, ctx: DeployContext) -> bool:
        return self._serves(self.certificates(ctx), ctx.cas.ensure().identifier)

    def _settle(self, ctx: DeployContext, done: Callable[[dict[str, tuple[bool, str]]], bool],
                what: str) -> None:
        certs: dict[str, tuple[bool, str]] = {}
        for attempt in range(self.settle_tries):
            certs = self.certificates(ctx)
            if done(certs):
                return
            if attempt + 1 < self.settle_tries:
                time.sleep(self.settle_interval)
        shown = ", ".join(f"{k} ({s})" for k, (_, s) in certs.items()) or "none"
        raise DeployError(f"{self.api.label} listener {self.listener_id}: {what} did not "
                          f"settle; it lists {shown}",
                          hint="the listener may still be configuring; run `acmeali deploy` "
                               "again")

    # ------------------------------------------------------------------ deploy
    def deploy(self, ctx: DeployContext) -> TargetResult:
        cas = ctx.cas.ensure()
        ident = cas.identifier
        where = f"{self.api.label} listener {self.listener_id}"
        role = "additional" if self.extra else "default"
        certs = self.certificates(ctx)
        previous = self._previous(ctx, ident, certs)
        if self._serves(certs, ident) and not previous:
            return self._result(f"{where} already serves {ident} ({role})", ident, cas.cert_id)
        if not self._serves(certs, ident):
            if self.extra:
                self._call(ctx, self.api.associate, self.api.additional(ident))
            else:
                self._call(ctx, "UpdateListenerAttribute", self.api.set_default(ident))
            if ctx.dry_run:
                return TargetResult(f"{where} would serve {ident} ({role})")
            self._settle(ctx, lambda c: self._serves(c, ident), f"{ident}")
        for old in previous:
            try:
                self._call(ctx, self.api.dissociate, self.api.additional(old))
                if not ctx.dry_run:
                    self._settle(ctx, _gone(old), f"removing {old}")
            except Exception as exc:
                render = getattr(exc, "render", None)
                old_id = old.partition("-")[0]
                raise PartialDeployError(
                    f"{where} serves {ident}, but the previous certificate {old} is still "
                    f"associated: {render() if callable(render) else exc}",
                    {"certificate_id": ident, "previous": old},
                    frozenset({cas.cert_id} | ({int(old_id)} if old_id.isdigit() else set())),
                ) from None
        return self._result(f"{where} now serves {ident} ({role})", ident, cas.cert_id)

    def _previous(self, ctx: DeployContext, ident: str,
                  certs: dict[str, tuple[bool, str]]) -> list[str]:
        """Additional certificates acmeali put on this listener before and that are still
        there (the default one is replaced, not added to)."""
        if not self.extra:
            return []
        dep = ctx.meta.deployments.get(self.spec)
        details = dep.details if dep else {}
        olds = [str(details.get("certificate_id") or ""), str(details.get("previous") or "")]
        return [o for o in dict.fromkeys(olds) if o and o != ident and o in certs
                and not certs[o][0]]

    @staticmethod
    def _result(message: str, ident: str, cas_id: int) -> TargetResult:
        return TargetResult(message, {"certificate_id": ident}, frozenset({cas_id}))


def _gone(ident: str) -> Callable[[dict[str, tuple[bool, str]]], bool]:
    return lambda certs: ident not in certs
