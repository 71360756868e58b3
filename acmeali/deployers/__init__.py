"""Deploy a lineage's live certificate to its targets; every outcome recorded per target.

Stdlib only at import time: the target classes (``registry.TARGETS``) load when a target of
their kind is parsed, the Alibaba SDKs when a target first calls its product. One target
failing never stops the others; the caller
saves ``meta`` afterwards, so the next ``deploy`` or ``renew`` retries exactly the failed
ones (``LineageMeta.deploy_pending``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from acmeali.config import AliyunSettings
from acmeali.deployers.base import DeployContext, DeployOutcome
from acmeali.errors import AcmealiError
from acmeali.lineage import Deployment, LineageMeta, to_iso, utcnow
from acmeali.store.base import LiveBundle, LivePaths
from acmeali.ui import UI

__all__ = ["DeployOutcome", "deploy"]

log = logging.getLogger(__name__)

def deploy(meta: LineageMeta, bundle: LiveBundle, targets: Sequence[str], *,
           settings: AliyunSettings, ui: UI, live_paths: LivePaths | None = None,
           dry_run: bool = False) -> list[DeployOutcome]:
    """Deploy ``bundle`` to every target; update ``meta.deployments``/``meta.cas_uploads``/
    ``meta.replaced_certs`` in place (not with ``dry_run``, which changes nothing anywhere)
    and return the outcomes in the order given. Run services (CAS clean-up, ...) finish
    after all targets ran."""
    from acmeali.deployers.registry import parse_target

    ctx = DeployContext(meta, bundle, settings=settings, ui=ui, live_paths=live_paths,
                        dry_run=dry_run)
    outcomes: list[DeployOutcome] = []
    for spec in dict.fromkeys(targets):
        try:
            target = parse_target(spec)
            if dry_run:
                ui.result(f"{spec}: {target.plan()}")
            result = target.deploy(ctx)
        except Exception as exc:
            message = _describe(exc)
            log.debug("deploy %s failed", spec, exc_info=not isinstance(exc, AcmealiError))
            outcomes.append(DeployOutcome(spec, False, message))
            if not dry_run:
                _record_failure(ctx, spec, message, getattr(exc, "details", None),
                                getattr(exc, "cas_ids", None))
            continue
        outcomes.append(DeployOutcome(spec, True, result.message))
        if not dry_run:
            meta.deployments[spec] = Deployment(
                fingerprint=ctx.cert.fingerprint, ok=True, time=to_iso(utcnow()), error=None,
                details=result.details, cas_ids=sorted(result.cas_ids))
    if not dry_run:
        _start_leftover_cleanups(ctx)
        ctx.finish()
    return outcomes


def _start_leftover_cleanups(ctx: DeployContext) -> None:
    """Product-side certificates earlier runs replaced but could not delete
    (``meta.replaced_certs``) are retried by every deploy of the lineage, not only by one
    that deploys to their kind of target again."""
    from acmeali.deployers.registry import target_class

    for kind in dict.fromkeys(str(e.get("kind") or "") for e in ctx.meta.replaced_certs):
        try:
            service = target_class(kind).leftovers
        except ValueError:
            continue  # written by a newer acmeali: left for it
        if service is not None:
            ctx.service(service)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AcmealiError):
        return exc.render()
    if isinstance(exc, ValueError):  # parse_target's messages name the target and the fix
        return str(exc)
    from acmeali.aliyun.errors import scrub

    return scrub(f"unexpected {type(exc).__name__}: {exc}")


def _record_failure(ctx: DeployContext, spec: str, message: str,
                    details: dict[str, Any] | None, cas_ids: frozenset[int] | None) -> None:
    """Keep what the target still serves (fingerprint, details, cas_ids); mark it not ok.
    A partial failure says what it serves now (``details``/``cas_ids`` of the error)."""
    dep = ctx.meta.deployments.get(spec) or Deployment()
    dep.ok = False
    dep.time = to_iso(utcnow())
    dep.error = message
    if details is not None:
        dep.details = details
    if cas_ids is not None:
        dep.cas_ids = sorted(cas_ids)
    ctx.meta.deployments[spec] = dep
