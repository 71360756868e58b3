"""``hook:<command>``: a local command (reload nginx, copy files) after the certificate changed.

Values go to the command only through ``ACMEALI_*`` (and certbot's ``RENEWED_*``)
environment variables, never into the command string (DESIGN.md, security rules);
``acmeali.hooks.run_hook`` bounds its run time.
The live paths are the stable ``live/<name>/*.pem`` links, so the command can keep them.
"""

from __future__ import annotations

from dataclasses import dataclass

from acmeali.deployers.base import DeployContext, Target, TargetResult
from acmeali.errors import DeployError

HOOK_TIMEOUT = 300.0


@dataclass(frozen=True)
class Hook(Target):
    """``hook:<command>``."""

    kind = "hook"
    usage = ("'hook:<command>'",)
    summary = "a local command with ACMEALI_* paths in its environment"

    spec: str
    command: str

    @classmethod
    def parse(cls, spec: str, arg: str) -> Hook:
        if not arg:
            raise cls.fail(spec, "'hook' needs a command, e.g. 'hook:systemctl reload nginx'")
        return cls(spec, arg)

    def deploy(self, ctx: DeployContext) -> TargetResult:
        return _run(ctx, self)

    def plan(self) -> str:
        return f"run {self.command!r}"


def _run(ctx: DeployContext, target: Hook) -> TargetResult:
    from acmeali.hooks import deploy_env, run_hook, show_output

    command = target.command
    paths = ctx.live_paths
    if paths is None:
        raise DeployError(f"{target.spec}: no live paths to give the hook (internal: deploy "
                          "was called without live_paths)")
    env = deploy_env(ctx.meta.name, ctx.meta.domains, paths)
    env["ACMEALI_FINGERPRINT"] = ctx.cert.fingerprint
    if ctx.dry_run:
        ctx.ui.result(f"  would run {command!r} with {', '.join(sorted(env))}")
        return TargetResult(f"would run {command!r}")
    result = run_hook(command, env, timeout=HOOK_TIMEOUT, what=f"deploy hook {command!r}")
    show_output(ctx.ui, f"{ctx.meta.name}: hook {command!r}", result)
    return TargetResult(f"ran {command!r} ({result.duration:.1f}s)")
