"""The settings a stored lineage is renewed with: the config file now, and the record.

Stdlib only (plus config and lineage, loaded anyway): ``renew`` consults it for every
lineage, including on the nothing-due path that must stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from acmeali.config import CertSettings, Config
from acmeali.lineage import LineageMeta


@dataclass(frozen=True)
class LineagePlan:
    """What a stored lineage is renewed (or re-issued) with."""

    settings: CertSettings
    domains: tuple[str, ...]
    flag_keys: tuple[str, ...]
    names_changed: bool
    deploy_exact: bool


def lineage_plan(meta: LineageMeta, config: Config) -> LineagePlan:
    """The settings for renewing ``meta``, from the config file as it is now and the record.

    Lowest to highest: built-in defaults; everything recorded at issuance (so `renew` works
    from cron without the config file); keys set in ``[defaults]`` now; keys given as flags
    to `issue` (recorded); keys set in the lineage's own ``[[certificates]]`` table now.
    Such a table is the declared state: its ``domains`` replace the certificate's names
    (the renewal then adds or drops them) and its ``deploy`` list, when set, is the whole
    target list; without one, `issue --deploy` targets accumulate.
    """
    known = {f.name for f in fields(CertSettings)}
    recorded = {k: (tuple(v) if isinstance(v, list) else v)
                for k, v in meta.settings.items() if k in known and k != "deploy"}
    flags = {k: recorded[k] for k in meta.flag_keys if k in recorded}
    from_defaults = {k: getattr(config.defaults, k) for k in config.defaults_explicit}
    entry = config.certificate(meta.name)
    from_entry = ({k: getattr(entry.settings, k) for k in entry.explicit}
                  if entry is not None else {})
    merged: dict[str, Any] = {**recorded, **from_defaults, **flags, **from_entry}
    merged["deploy"] = deploy_targets(meta, config)
    settings = replace(CertSettings(), **merged)
    changed = names_changed(meta, config)
    domains = entry.domains if changed and entry is not None else tuple(meta.domains)
    return LineagePlan(settings, domains, tuple(meta.flag_keys), changed,
                       "deploy" in from_entry)


# The two below are what `renew` needs of every lineage to decide; cheaper than a plan.
def deploy_targets(meta: LineageMeta, config: Config) -> tuple[str, ...]:
    """The lineage's deploy targets: its config table's list when it sets one, else the
    recorded ones and ``[defaults]`` ones together."""
    entry = config.certificate(meta.name)
    if entry is not None and "deploy" in entry.explicit:
        return tuple(entry.settings.deploy)
    if not config.defaults.deploy:
        return tuple(meta.deploy)
    return tuple(dict.fromkeys((*meta.deploy, *config.defaults.deploy)))


def names_changed(meta: LineageMeta, config: Config) -> bool:
    """Whether the lineage's config table lists other names than its certificate has."""
    entry = config.certificate(meta.name)
    return entry is not None and set(entry.domains) != set(meta.domains)
