"""The deploy targets acmeali knows: kind -> ``"module:Class"``, imported on use.

Adding a target is one module under ``deployers/`` and one line here (see
docs/architecture.md, "Add a deploy target"). Stdlib only, and every listed module is
stdlib only at import time: config validation and ``--help`` import them, a ``renew`` with
nothing due imports none of them, and no Alibaba SDK is imported before a call.

``python -m acmeali.deployers.registry docs/alibaba-cloud.md`` rewrites the docs' target
and service tables from the registry (a test checks the file is up to date).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from acmeali.deployers.base import Target

TARGETS: dict[str, str] = {
    "cas": "acmeali.deployers.cas:Cas",
    "cdn": "acmeali.deployers.cdn:Cdn",
    "dcdn": "acmeali.deployers.cdn:Dcdn",
    "apigateway": "acmeali.deployers.apigateway:ApiGateway",
    "mqtt-server": "acmeali.deployers.mqtt:MqttServer",
    "clb": "acmeali.deployers.clb:Clb",
    "slb": "acmeali.deployers.clb:Clb",
    "alb": "acmeali.deployers.alb:Alb",
    "nlb": "acmeali.deployers.nlb:Nlb",
    "cas-deploy": "acmeali.deployers.casdeploy:CasDeploy",
    "waf": "acmeali.deployers.waf:Waf",
    "esa": "acmeali.deployers.esa:Esa",
    "fc": "acmeali.deployers.fc:Fc",
    "apig": "acmeali.deployers.apig:Apig",
    "oss": "acmeali.deployers.oss:Oss",
    "live": "acmeali.deployers.live:Live",
    "vod": "acmeali.deployers.vod:Vod",
    "ddos": "acmeali.deployers.ddos:Ddos",
    "ga": "acmeali.deployers.ga:Ga",
    "hook": "acmeali.deployers.hook:Hook",
}

_cache: dict[str, type[Target]] = {}


def kinds() -> tuple[str, ...]:
    return tuple(TARGETS)


def target_modules() -> list[str]:
    return list(dict.fromkeys(path.partition(":")[0] for path in TARGETS.values()))


def target_class(kind: str) -> type[Target]:
    """The class registered for ``kind``; ValueError naming the known kinds otherwise."""
    cls = _cache.get(kind)
    if cls is None:
        path = TARGETS.get(kind)
        if path is None:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(TARGETS)}")
        module, _, name = path.partition(":")
        cls = getattr(importlib.import_module(module), name)
        _cache[kind] = cls
    return cls


def parse_target(spec: str) -> Target:
    """Parse one target string; ValueError with one line naming the target and the fix."""
    s = spec.strip()
    kind, _, arg = s.partition(":")
    try:
        cls = target_class(kind)
    except ValueError as exc:
        raise ValueError(f"deploy target {spec!r}: {exc}") from None
    return cls.parse(s, arg)


def target_classes() -> list[type[Target]]:
    """Each registered class once (aliases such as ``slb`` share one), in registry order."""
    return list(dict.fromkeys(target_class(k) for k in TARGETS))


def aliases_of(cls: type[Target]) -> list[str]:
    return [k for k in TARGETS if k != cls.kind and target_class(k) is cls]


def usage_rows() -> list[tuple[str, str]]:
    """(grammar, summary) per target: the source of --help, the epilog and the docs."""
    rows: list[tuple[str, str]] = []
    for cls in target_classes():
        summary = cls.summary
        aliases = aliases_of(cls)
        if aliases:
            summary += f" (alias: {', '.join(a + ':' for a in aliases)})"
        rows.append((" | ".join(cls.usage), summary))
    return rows


def help_text() -> str:
    """The ``--deploy`` option's help: every form, one line."""
    return "deploy target (repeatable): " + ", ".join(
        form for cls in target_classes() for form in cls.usage)


def epilog() -> str:
    rows = usage_rows()
    width = min(44, max(len(g) for g, _ in rows))
    lines = ["targets:"]
    for grammar, summary in rows:
        if len(grammar) > width:
            lines.append(f"  {grammar}")
            lines.append(f"  {'':{width}}  {summary}")
        else:
            lines.append(f"  {grammar:{width}}  {summary}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The docs' target table (docs/alibaba-cloud.md, between the ``targets`` markers): a
    target's own RAM actions, "and the `cas` row's" for those that go through the CAS copy,
    and a note saying so."""
    from acmeali.deployers.cas import CAS

    lines = ["| target | what it does | Alibaba Cloud services | RAM actions |",
             "|---|---|---|---|"]
    for cls in target_classes():
        aliases = aliases_of(cls)
        summary = cls.summary + (f" (alias: {', '.join(f'`{a}:`' for a in aliases)})"
                                 if aliases else "")
        grammar = "<br>".join(f"`{form}`" for form in cls.usage)
        services = ", ".join(f"`{s.name}`" for s in cls.services) or "none"
        actions = [f"`{a}`" for a in cls.ram_actions]
        if CAS in cls.services and cls.kind != "cas":
            actions.append("and the `cas` row's" if actions else "the `cas` row's")
        lines.append(f"| {grammar} | {summary} | {services} | {'<br>'.join(actions) or 'none'} |")
    lines += ["", "RAM actions: every action a target's calls need, for all of its forms "
              "([Least-privilege RAM policies](#least-privilege-ram-policies) says which form "
              "needs which). A target that references the "
              "certificate in CAS goes through the run's one CAS copy and so also needs the "
              "`cas` row's actions: the upload, the look-ups that reuse an earlier upload, and "
              "clean-up's `ListCertificates`/`ListCloudResources` before "
              "`DeleteUserCertificate`. `Target.ram_actions` in each target's module declares "
              "them; the contract tests check every call a target makes is declared."]
    return "\n".join(lines) + "\n"


def services_table() -> str:
    """The docs' service table (between the ``services`` markers): every
    ``[aliyun.endpoints]`` key, its default endpoint and RAM code."""
    from acmeali.aliyun.services import CAS_REGIONS, known_services

    lines = ["| `[aliyun.endpoints]` key | default endpoint | RAM code | SDK package |",
             "|---|---|---|---|"]
    for svc in known_services().values():
        if svc.site_region:
            shown = "; ".join(
                f"{site}: `{svc.site_endpoints.get(site) or svc.endpoint.format(region=reg)}`"
                for site, reg in CAS_REGIONS.items())
        else:
            shown = f"`{svc.endpoint}`"
            if "{region}" in svc.endpoint:
                shown += " (`{region}`: the target's, else `[aliyun] region`)"
            central = sorted(set(svc.region_endpoints.values()))
            if central:
                shown += f"; `{'`, `'.join(central)}` in {', '.join(svc.region_endpoints)}"
        lines.append(f"| `{svc.name}` | {shown} | `{svc.ram_code}` | "
                     f"`{svc.package.replace('_', '-')}` |")
    return "\n".join(lines) + "\n"


DOC_TABLES = {"targets": markdown_table, "services": services_table}


def render_docs(text: str) -> str:
    """``text`` with every generated table replaced by the registry's current one (between
    ``<!-- registry:NAME -->`` and ``<!-- /registry:NAME -->``)."""
    for name, make in DOC_TABLES.items():
        start, end = f"<!-- registry:{name} -->\n", f"<!-- /registry:{name} -->"
        head, found, rest = text.partition(start)
        if not found:
            raise ValueError(f"no {start.strip()} marker")
        _, found, tail = rest.partition(end)
        if not found:
            raise ValueError(f"no {end} marker")
        text = head + start + make() + end + tail
    return text


if __name__ == "__main__":  # pragma: no cover - a docs helper
    import sys
    from pathlib import Path

    # python -m acmeali.deployers.registry docs/alibaba-cloud.md: rewrite the tables there
    for arg in sys.argv[1:] or ["-"]:
        if arg == "-":
            print(markdown_table() + "\n" + services_table(), end="")
        else:
            path = Path(arg)
            path.write_text(render_docs(path.read_text()))
