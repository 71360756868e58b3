"""One target, several bindings: the ``auto`` forms (cdn:, live:, vod:, waf:, esa:, fc:, apig:).

Each binding is tried on its own; one that fails keeps what it served before recorded
(with the CAS CertId it still points at, so CAS clean-up keeps that certificate), the
others move on, and the target raises :class:`PartialDeployError` so the next run retries
it. Stdlib only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from acmeali.deployers.base import DeployContext, PartialDeployError, TargetResult


def error_text(exc: BaseException) -> str:
    render = getattr(exc, "render", None)
    return str(render() if callable(render) else exc)


def bind_many(ctx: DeployContext, spec: str, label: str, keys: list[str],
              bind: Callable[[str], tuple[str, Any]]) -> TargetResult:
    """``bind(key)`` -> (message, what the key serves now: a CAS CertId or a marker).

    ``details["bound"]`` maps every key to what it serves; ``cas_ids`` are the integers
    among them."""
    if not keys:
        ctx.ui.warn(f"{spec}: no {label} of this account serves HTTPS for a name the "
                    f"certificate covers ({', '.join(ctx.cert.names)})")
        return TargetResult(f"no covered {label}", {"bound": {}})
    dep = ctx.meta.deployments.get(spec)
    earlier = dict((dep.details or {}).get("bound") or {}) if dep else {}
    return bind_each(ctx, keys, earlier, lambda key: bind(key)[1], details_key="bound",
                     failed_noun=f"{label}(s)", done_noun=f"{label}(s)")


def bind_each(ctx: DeployContext, keys: list[str], earlier: dict[str, Any],
              bind: Callable[[str], Any], *, details_key: str, failed_noun: str,
              done_noun: str) -> TargetResult:
    """Bind every key on its own: ``bind(key)`` returns what the key serves now (a CAS
    CertId or a marker). One that fails keeps what ``earlier`` recorded for it (it still
    serves that); any failure raises :class:`PartialDeployError` so the next run retries."""
    bound: dict[str, Any] = {k: v for k, v in earlier.items() if k in keys}
    failures: list[str] = []
    for key in keys:
        try:
            serves = bind(key)
        except Exception as exc:
            failures.append(f"{key}: {error_text(exc)}")
            continue
        if not ctx.dry_run:
            bound[key] = serves
    cas_ids = frozenset(int(v) for v in bound.values() if str(v).isdigit())
    details = {details_key: bound}
    if failures:
        raise PartialDeployError(f"{len(failures)} of {len(keys)} {failed_noun} failed: "
                                 + "; ".join(failures), details, cas_ids)
    return TargetResult(f"{len(keys)} {done_noun}: {', '.join(keys)}", details, cas_ids)
