"""A lineage's life: which lineage an `issue` means, whether it is due, and its end.

certbot users re-run ``certonly`` from scripts and Ansible and expect nothing to happen
until the certificate is due; they expect the same names in another order to be the
same certificate, and ``delete`` (or ``revoke``) to end a lineage for good. These rules
live here, apart from the commands, so `issue`, `revoke` and `delete` share them.

Stdlib only (plus the store and lineage modules, loaded anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from acmeali.errors import StoreError, UsageError
from acmeali.lineage import LineageMeta, utcnow

if TYPE_CHECKING:
    from acmeali.config import Config
    from acmeali.store.host import HostStore


@dataclass
class LineageChoice:
    """The lineage an `issue` works on, and how its names relate to the stored ones."""

    name: str
    meta: LineageMeta | None  # None: a new lineage
    same_names: bool = False
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    also_covering: list[str] = field(default_factory=list)  # other lineages with all names


def _load_all(store: HostStore) -> list[LineageMeta]:
    metas = []
    for n in store.lineage_names():
        try:
            metas.append(store.load_meta(n))
        except StoreError:
            continue
    return metas


def choose_lineage(store: HostStore, names: Sequence[str], explicit: str | None, *,
                   force: bool = False) -> LineageChoice:
    """The lineage for ``names`` (already normalized: lower case, no trailing dot).

    ``--name`` wins. Otherwise a lineage whose names are the same set (any order) is
    reused, else the one named after the first name. Dropping names from an existing
    lineage needs ``--force`` or an explicit ``--name``: a typo must not silently take a
    name off a certificate a server still uses. Adding names is allowed (``--expand``).
    """
    from acmeali.config import default_lineage_name

    wanted = {n.lower() for n in names}
    metas = _load_all(store)
    by_name = {m.name: m for m in metas}
    name = explicit
    if name is None:
        same = [m for m in metas if {d.lower() for d in m.domains} == wanted]
        preferred = default_lineage_name(list(names))
        if any(m.name == preferred for m in same):
            name = preferred
        elif same:
            name = same[0].name
        else:
            name = preferred
    meta = by_name.get(name)
    choice = LineageChoice(name=name, meta=meta)
    if meta is not None:
        have = {d.lower() for d in meta.domains}
        choice.same_names = have == wanted
        choice.added = [n for n in names if n not in have]
        choice.removed = [d for d in meta.domains if d.lower() not in wanted]
        if choice.removed and explicit is None and not force and meta.current is not None:
            raise UsageError(
                f"lineage {name} also covers {', '.join(choice.removed)}, which this request "
                "leaves out",
                hint=f"to drop them, add --force (or --name {name}); to keep them, add "
                     f"-d {' -d '.join(choice.removed)}")
    from acmeali.names import covers

    for m in metas:
        if m.name == name or m.current is None:
            continue
        if all(any(covers(h.lower(), n) for h in m.domains) for n in names):
            choice.also_covering.append(m.name)
    return choice


def not_due_message(meta: LineageMeta, days_before: float | None) -> str | None:
    """certbot's "not yet due": the line to print when `issue` has nothing to do, or None.

    A revoked lineage is refused: it needs ``--force`` (a new certificate) or ``delete``.
    """
    from acmeali.renewal import decide

    if meta.current is None:
        return None
    if meta.current.serial in meta.revoked:
        raise UsageError(f"lineage {meta.name}: its certificate was revoked "
                         f"({meta.revoked[meta.current.serial]})",
                         hint=f"`acmeali issue --name {meta.name} --force` gets a new one; "
                              f"`acmeali delete --name {meta.name}` removes it")
    d = decide(meta, utcnow(), days_before=days_before)
    if d.due:
        return None
    when = d.at.strftime("%Y-%m-%d %H:%M UTC") if d.at else "later"
    return (f"{meta.name}: not due yet, nothing done (renewal from {when}: {d.reason}); "
            "--force issues a new certificate now")


def delete_lineage(store: HostStore, name: str, *, keep_files: bool = False) -> None:
    """Remove the lineage's renewal record, live and archive directories, and lock file.

    The record goes first: once it is gone, `renew` and `certs` no longer see the
    lineage, so a crash half-way leaves at worst some PEM files nobody renews. The caller
    holds the lineage lock. ``keep_files`` leaves ``live/`` and ``archive/`` in place.
    On a shared storage the record and versions go for every host.
    """
    store.delete_lineage(name, keep_files=keep_files)


def remove_targets(meta: LineageMeta, specs: Sequence[str], config: Config) -> list[str]:
    """Drop deploy targets from ``meta.deploy`` (in place); one line per target removed.

    The deployment record stays: a CDN domain removed here may still serve the CAS
    certificate it points at, which CAS cleanup must therefore not delete. A target that
    comes from the config file cannot be removed here; the message says where it is.
    """
    from acmeali.targets import parse_target

    entry = config.certificate(meta.name)
    lines = []
    for raw in specs:
        try:
            spec = parse_target(raw).spec
        except ValueError as exc:
            raise UsageError(f"--remove-target: {exc}") from None
        if entry is not None and "deploy" in entry.explicit:
            raise UsageError(f"lineage {meta.name}: its deploy targets are the `deploy` list of "
                             "its [[certificates]] table in the config file",
                             hint=f"remove {spec!r} there")
        if spec not in meta.deploy:
            if spec in config.defaults.deploy:
                raise UsageError(f"{spec!r} comes from [defaults] deploy in the config file",
                                 hint="remove it there (it applies to every lineage)")
            have = ", ".join(meta.deploy) or "none"
            raise UsageError(f"lineage {meta.name} has no deploy target {spec!r} "
                             f"(recorded: {have})")
        meta.deploy.remove(spec)
        lines.append(f"{meta.name}: removed deploy target {spec}")
    return lines
