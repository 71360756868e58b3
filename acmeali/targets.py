"""Deploy target strings (``cas``, ``cdn:static.example.com``, ...) parsed once, up front.

Parsing lives here, apart from the deployers, so that config loading and ``renew`` with
nothing due can validate targets without importing any Alibaba Cloud SDK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("cas", "cdn", "dcdn", "apigateway", "mqtt-server", "hook")

_REGION = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+$")
_GROUP = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True)
class Target:
    """One place a certificate goes. ``spec`` is the user's string, the stable key in metadata."""

    kind: str
    spec: str
    domain: str | None = None  # cdn/dcdn/apigateway domain; "auto" for cdn:auto
    group_id: str | None = None  # apigateway
    region: str | None = None  # apigateway (optional; config region otherwise)
    instance_id: str | None = None  # mqtt-server
    command: str | None = None  # hook


def _fail(spec: str, why: str) -> ValueError:
    return ValueError(f"deploy target {spec!r}: {why}")


def parse_target(spec: str) -> Target:
    """Parse one target; raise ValueError with a message naming the target and the fix."""
    s = spec.strip()
    kind, _, rest = s.partition(":")
    if kind not in KINDS:
        raise _fail(spec, f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "cas":
        if rest:
            raise _fail(spec, "'cas' takes no argument")
        return Target("cas", s)
    if not rest:
        raise _fail(spec, f"'{kind}' needs an argument, e.g. {_EXAMPLES[kind]}")
    if kind in ("cdn", "dcdn"):
        if rest == "auto" and kind == "dcdn":
            raise _fail(spec, "'auto' is supported for cdn only")
        return Target(kind, s, domain=rest.lower().rstrip("."))
    if kind == "apigateway":
        parts = rest.split(":")
        region: str | None = None
        if len(parts) == 3:
            region, group, domain = parts
            if not _REGION.match(region):
                raise _fail(spec, f"{region!r} is not a region id such as cn-hangzhou")
        elif len(parts) == 2:
            group, domain = parts
        else:
            raise _fail(spec, "expected apigateway:[<region>:]<group-id>:<domain>")
        if not _GROUP.match(group) or not domain:
            raise _fail(spec, "expected apigateway:[<region>:]<group-id>:<domain>")
        return Target(kind, s, domain=domain.lower().rstrip("."), group_id=group, region=region)
    if kind == "mqtt-server":
        return Target(kind, s, instance_id=rest)
    return Target("hook", s, command=rest)


_EXAMPLES = {
    "cdn": "cdn:static.example.com or cdn:auto",
    "dcdn": "dcdn:www.example.com",
    "apigateway": "apigateway:<group-id>:api.example.com",
    "mqtt-server": "mqtt-server:<instance-id>",
    "hook": "'hook:systemctl reload nginx'",
}
