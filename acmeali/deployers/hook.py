"""``hook:<command>``: a local command (reload nginx, copy files) after the certificate changed.

Values go to the command only through ``ACMEALI_*`` environment variables, never into the
command string (DESIGN.md, security rules); ``acmeali.hooks.run_hook`` bounds its run time.
The live paths are the stable ``live/<name>/*.pem`` links, so the command can keep them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from acmeali.deployers.base import DeployContext, TargetResult
from acmeali.errors import DeployError

if TYPE_CHECKING:
    from acmeali.targets import Target

HOOK_TIMEOUT = 300.0


def deploy(ctx: DeployContext, target: Target) -> TargetResult:
    from acmeali.hooks import run_hook

    command = target.command or ""
    paths = ctx.live_paths
    if paths is None:
        raise DeployError(f"{target.spec}: no live paths to give the hook (internal: deploy "
                          "was called without live_paths)")
    env = {
        "ACMEALI_LINEAGE": ctx.meta.name,
        "ACMEALI_DOMAINS": " ".join(ctx.meta.domains),
        "ACMEALI_CERT_PATH": str(paths.cert),
        "ACMEALI_KEY_PATH": str(paths.privkey),
        "ACMEALI_FULLCHAIN_PATH": str(paths.fullchain),
        "ACMEALI_CHAIN_PATH": str(paths.chain),
        "ACMEALI_FINGERPRINT": ctx.cert.fingerprint,
    }
    if ctx.dry_run:
        ctx.ui.result(f"  would run {command!r} with {', '.join(sorted(env))}")
        return TargetResult(f"would run {command!r}")
    result = run_hook(command, env, timeout=HOOK_TIMEOUT, what=f"deploy hook {command!r}")
    return TargetResult(f"ran {command!r} ({result.duration:.1f}s)")
