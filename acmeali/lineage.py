"""Per-lineage metadata: everything needed to renew and redeploy, and no secrets.

Stored as JSON beside the certificates (``<state>/renewal/<name>.json``). It caches the
facts ``renew`` needs to decide due-ness (validity window, serial, fingerprint, ARI
window) so that a run with nothing due reads 1,000 small JSON files and parses no PEM.
Stdlib only: it is on the start-up path of ``renew``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

SCHEMA_VERSION = 2  # 2: Deployment.cas_ids


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(s: str | None) -> datetime | None:
    if not s:
        return None
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


@dataclass
class CertFacts:
    """Facts about the live certificate, cached from the PEM when it was stored."""

    version: int
    serial: str  # lower-case hex, no 0x
    fingerprint: str  # SHA-256 of the leaf DER, lower-case hex
    not_before: str  # ISO 8601 UTC
    not_after: str
    issuer: str  # issuer CN (or full RFC 4514 name when no CN)
    key_type: str
    key_sha256: str  # SHA-256 of the SubjectPublicKeyInfo DER (compromise list key)
    ari_cert_id: str | None = None  # RFC 9773 certificate identifier, None without AKI


@dataclass
class AriState:
    """RFC 9773 renewal info for the live certificate."""

    cert_id: str
    window_start: str | None = None
    window_end: str | None = None
    selected: str | None = None  # random moment in the window, chosen once per window
    next_poll: str | None = None  # do not re-fetch before (Retry-After)
    explanation_url: str | None = None
    failures: int = 0  # ARI requests failed in a row (backoff grows with it)


@dataclass
class Deployment:
    """Outcome of the last deploy of this lineage to one target (key: the target spec)."""

    fingerprint: str | None = None  # what is deployed there now (None: never succeeded)
    ok: bool = False
    time: str | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # display, and the target's own state
    # CAS CertIds the target points at now: CAS clean-up keeps exactly these (and the current).
    cas_ids: list[int] = field(default_factory=list)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Deployment:
        """Schema 1 kept CAS CertIds in ``details`` under three keys; lift them once."""
        dep: Deployment = _build(cls, raw)
        if "cas_ids" not in raw:
            dep.cas_ids = _legacy_cas_ids(dep.details or {})
        return dep


@dataclass
class LineageMeta:
    name: str
    domains: list[str]
    server: str
    key_type: str = "ec256"
    # Settings recorded at issuance so `renew` repeats them without the config file.
    settings: dict[str, Any] = field(default_factory=dict)
    # Which of those the user chose with `issue` flags: they outrank [defaults] later on.
    flag_keys: list[str] = field(default_factory=list)
    deploy: list[str] = field(default_factory=list)
    current: CertFacts | None = None
    ari: AriState | None = None
    compromised_keys: list[str] = field(default_factory=list)  # key_sha256 values
    revoked: dict[str, str] = field(default_factory=dict)  # serial -> reason
    pending_order: dict[str, Any] | None = None  # {"url":..., "key_version":...} for resume
    last_renewal: dict[str, Any] | None = None  # {"time","ok","error"}
    deployments: dict[str, Deployment] = field(default_factory=dict)
    cas_uploads: list[dict[str, Any]] = field(default_factory=list)  # acmeali's own uploads
    # Product-side certificates acmeali made (CLB server certificates) that a deploy
    # replaced and that are not deleted yet: {"kind", "id", "region", "replaced"}. Every
    # later deploy of the lineage retries, so a failed or interrupted deletion is not
    # forgotten; an entry goes once deleted, or once the product says it is gone.
    replaced_certs: list[dict[str, Any]] = field(default_factory=list)
    # `issue --ca-bundle FILE` (absolute): a private CA's TLS roots, so `renew` from cron
    # verifies the CA without the flag.
    ca_bundle: str | None = None
    schema: int = SCHEMA_VERSION

    # ----------------------------------------------------------------- derived facts
    @property
    def not_after(self) -> datetime | None:
        return from_iso(self.current.not_after) if self.current else None

    @property
    def not_before(self) -> datetime | None:
        return from_iso(self.current.not_before) if self.current else None

    def deploy_pending(self, targets: Sequence[str] | None = None) -> list[str]:
        """Targets (default: the recorded ones) whose recorded deployment does not hold
        the live certificate, never having been deployed to included."""
        if self.current is None:
            return []
        fp = self.current.fingerprint
        return [t for t in (self.deploy if targets is None else targets)
                if (d := self.deployments.get(t)) is None or not d.ok or d.fingerprint != fp]

    # ----------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LineageMeta:
        """Build from a parsed record; MetaError names the first field holding a wrong
        value (a month 13, a number where a list belongs), so that one lineage is
        reported and skipped instead of crashing a run half-way through the others."""
        check_record(data)
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        if data.get("current"):
            data["current"] = _build(CertFacts, data["current"])
        if data.get("ari"):
            data["ari"] = _build(AriState, data["ari"])
        data["deployments"] = {k: Deployment.from_json(v)
                               for k, v in (data.get("deployments") or {}).items()}
        data["schema"] = max(int(data.get("schema") or 1), SCHEMA_VERSION)  # lifted above
        return cls(**data)


def _build(kind: Any, raw: dict[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(kind)}
    return kind(**{k: v for k, v in raw.items() if k in known})


def _legacy_cas_ids(details: dict[str, Any]) -> list[int]:
    ids: set[int] = set()
    values: list[Any] = [details.get("cert_id"), details.get("previous_cert_id")]
    domains = details.get("domains")
    if isinstance(domains, dict):
        values.extend(domains.values())
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            ids.add(value)
        elif isinstance(value, str) and value.isdigit():
            ids.add(int(value))
    return sorted(ids)


# --------------------------------------------------------------------------- record checks
# Written for speed (``renew`` with nothing due checks 1,000 records): plain type tests,
# and a message (with the field's path) built only when a check fails.
class MetaError(ValueError):
    """A lineage record that parses as JSON but holds a value of the wrong kind."""


_EXPECTED = {"str": "a string", "opt_str": "a string or null", "int": "an integer",
             "bool": "true or false", "float": "a finite number", "list": "a list of strings",
             "dict": "an object", "opt_dict": "an object or null",
             "date": "an ISO 8601 UTC time", "opt_date": "an ISO 8601 UTC time or null",
             "dicts": "a list of objects", "ints": "a list of integers"}


def _ok(kind: str, v: Any) -> bool:
    t = type(v)
    if kind == "str":
        return t is str
    if kind == "opt_str":
        return v is None or t is str
    if kind == "list":
        return t is list and all(type(x) is str for x in v)
    if kind == "int":
        return t is int
    if kind == "bool":
        return t is bool
    if kind == "float":
        return t is int or (t is float and math.isfinite(v))
    if kind in ("dict", "opt_dict"):
        return t is dict or (v is None and kind == "opt_dict")
    if kind == "dicts":
        return t is list and all(type(x) is dict for x in v)
    if kind == "ints":
        return t is list and all(type(x) is int for x in v)
    if kind in ("date", "opt_date"):
        if v is None:
            return kind == "opt_date"
        if t is not str:
            return False
        try:
            moment = from_iso(v)
        except ValueError:
            return False
        return moment is not None and moment.tzinfo is not None
    raise AssertionError(kind)


def _check(kind: str, v: Any, path: str) -> None:
    if not _ok(kind, v):
        raise MetaError(f"{path} is {repr(v)[:60]}, expected {_EXPECTED[kind]}")


_TOP = (("name", "str"), ("server", "str"), ("domains", "list"))
_OPTIONAL_TOP = (("key_type", "str"), ("flag_keys", "list"), ("deploy", "list"),
                 ("compromised_keys", "list"), ("schema", "int"), ("pending_order", "opt_dict"),
                 ("last_renewal", "opt_dict"), ("revoked", "dict"), ("cas_uploads", "dicts"),
                 ("replaced_certs", "dicts"), ("settings", "dict"), ("current", "opt_dict"),
                 ("ari", "opt_dict"), ("deployments", "opt_dict"), ("ca_bundle", "opt_str"))
_CURRENT = (("version", "int"), ("serial", "str"), ("fingerprint", "str"), ("issuer", "str"),
            ("key_type", "str"), ("key_sha256", "str"), ("not_before", "date"),
            ("not_after", "date"), ("ari_cert_id", "opt_str"))
_ARI = (("cert_id", "str"), ("window_start", "opt_date"), ("window_end", "opt_date"),
        ("selected", "opt_date"), ("next_poll", "opt_date"), ("explanation_url", "opt_str"))
_DEPLOYMENT = (("fingerprint", "opt_str"), ("error", "opt_str"), ("time", "opt_str"))


def check_record(data: Any) -> None:
    """Raise MetaError unless every known field of a lineage record has a usable value.

    Unknown fields are ignored (a newer acmeali may add some); missing optional ones take
    their defaults. Stdlib only: ``renew`` checks every record it reads.
    """
    _check("dict", data, "the record")
    for key, kind in _TOP:
        _check(kind, data.get(key), key)
    for key, kind in _OPTIONAL_TOP:
        if key in data:
            _check(kind, data[key], key)
    for serial, reason in data.get("revoked", {}).items():
        _check("str", reason, f"revoked.{serial}")
    if "settings" in data:
        _check_settings(data["settings"])
    cur = data.get("current")
    if cur is not None:
        for key, kind in _CURRENT:
            _check(kind, cur.get(key), f"current.{key}")
    ari = data.get("ari")
    if ari is not None:
        for key, kind in _ARI:
            _check(kind, ari.get(key), f"ari.{key}")
    for target, d in (data.get("deployments") or {}).items():
        path = f"deployments[{target!r}]"
        _check("dict", d, path)
        for key, kind in _DEPLOYMENT:
            _check(kind, d.get(key), f"{path}.{key}")
        _check("bool", d.get("ok", False), f"{path}.ok")
        _check("dict", d.get("details", {}), f"{path}.details")
        _check("ints", d.get("cas_ids", []), f"{path}.cas_ids")


_SETTING_KINDS: dict[str, str] = {}


def _setting_kinds() -> dict[str, str]:
    """CertSettings field -> the kind of value it takes, derived once from its defaults."""
    if not _SETTING_KINDS:
        from dataclasses import MISSING

        from acmeali.config import CertSettings

        for f in dataclasses.fields(CertSettings):
            default = (f.default if f.default is not MISSING
                       else f.default_factory() if f.default_factory is not MISSING else None)
            kind = ("bool" if isinstance(default, bool) else "int" if isinstance(default, int)
                    else "float" if isinstance(default, float)
                    else "list" if isinstance(default, tuple)
                    else "dict" if isinstance(default, dict)
                    else "opt_str" if default is None else "str")
            _SETTING_KINDS[f.name] = kind
    return _SETTING_KINDS


def _check_settings(settings: dict[str, Any]) -> None:
    """Recorded issuance settings: each known key of the type its CertSettings field has."""
    kinds = _setting_kinds()
    for name, v in settings.items():
        kind = kinds.get(name)
        if kind is not None and not _ok(kind, v):
            _check(kind, v, f"settings.{name}")
