"""ACME resources as plain frozen dataclasses (RFC 8555 §7.1).

No network I/O and no josepy field magic: each class has a ``from_json`` that tolerates
fields it does not know (CAs add them) and never fails on a challenge type it does not
know (kept as a generic ``Challenge``), so a new CA feature cannot break parsing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from acmeali.acme.errors import AcmeProblem, TransportError, problem_from_json


def _obj(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise TransportError(f"the CA sent a {what} that is not a JSON object")
    return data


def _str(data: Mapping[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise TransportError(f"the CA sent a {what} without a valid {key!r}")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _str_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def parse_time(value: Any) -> dt.datetime | None:
    """RFC 3339 timestamps as aware datetimes; None when absent or unparseable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Python < 3.11 does not accept more than 6 fractional digits (Go sends 9).
    if "." in text:
        head, _, rest = text.partition(".")
        frac = "".join(c for c in rest if c.isdigit())
        tz = rest[len(frac):]
        text = f"{head}.{frac[:6]}{tz}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _problem(value: Any) -> AcmeProblem | None:
    return problem_from_json(value) if isinstance(value, Mapping) else None


@dataclass(frozen=True)
class DirectoryMeta:
    """The directory's ``meta`` object (RFC 8555 §7.1.1, profiles draft, RFC 9773)."""

    terms_of_service: str | None = None
    website: str | None = None
    caa_identities: tuple[str, ...] = ()
    external_account_required: bool = False
    profiles: Mapping[str, str] = field(default_factory=dict)  # name -> description

    @classmethod
    def from_json(cls, data: Any) -> DirectoryMeta:
        meta: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        raw_profiles = meta.get("profiles")
        profiles = ({str(k): str(v) for k, v in raw_profiles.items()}
                    if isinstance(raw_profiles, Mapping) else {})
        return cls(terms_of_service=_opt_str(meta, "termsOfService"),
                   website=_opt_str(meta, "website"),
                   caa_identities=_str_list(meta.get("caaIdentities")),
                   external_account_required=meta.get("externalAccountRequired") is True,
                   profiles=profiles)


@dataclass(frozen=True)
class Directory:
    new_nonce: str
    new_account: str
    new_order: str
    revoke_cert: str
    key_change: str | None = None
    new_authz: str | None = None
    renewal_info: str | None = None  # RFC 9773 ARI base URL
    meta: DirectoryMeta = field(default_factory=DirectoryMeta)

    @classmethod
    def from_json(cls, data: Any) -> Directory:
        d = _obj(data, "directory")
        return cls(
            new_nonce=_str(d, "newNonce", "directory"),
            new_account=_str(d, "newAccount", "directory"),
            new_order=_str(d, "newOrder", "directory"),
            revoke_cert=_str(d, "revokeCert", "directory"),
            key_change=_opt_str(d, "keyChange"),
            new_authz=_opt_str(d, "newAuthz"),
            renewal_info=_opt_str(d, "renewalInfo"),
            meta=DirectoryMeta.from_json(d.get("meta")),
        )

    # Shortcuts for the meta fields callers ask about most.
    @property
    def terms_of_service(self) -> str | None:
        return self.meta.terms_of_service

    @property
    def external_account_required(self) -> bool:
        return self.meta.external_account_required

    @property
    def profiles(self) -> Mapping[str, str]:
        return self.meta.profiles


@dataclass(frozen=True)
class Account:
    url: str  # the "kid" (RFC 8555 §7.3: Location of newAccount)
    status: str
    contacts: tuple[str, ...] = ()
    orders: str | None = None
    terms_of_service_agreed: bool | None = None
    created: bool = False  # True when newAccount answered 201, False for 200 (existing)

    @classmethod
    def from_json(cls, data: Any, *, url: str, created: bool = False) -> Account:
        d = _obj(data, "account")
        tos = d.get("termsOfServiceAgreed")
        return cls(url=url, status=str(d.get("status", "valid")),
                   contacts=_str_list(d.get("contact")), orders=_opt_str(d, "orders"),
                   terms_of_service_agreed=tos if isinstance(tos, bool) else None,
                   created=created)


@dataclass(frozen=True)
class Identifier:
    type: str  # "dns" | "ip"
    value: str

    @classmethod
    def from_json(cls, data: Any) -> Identifier:
        d = _obj(data, "identifier")
        return cls(type=_str(d, "type", "identifier"), value=_str(d, "value", "identifier"))

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "value": self.value}


@dataclass(frozen=True)
class Challenge:
    """Any challenge; ``token`` is "" for types that carry none. Unknown types are kept."""

    type: str
    url: str
    status: str
    token: str = ""
    validated: dt.datetime | None = None
    error: AcmeProblem | None = None

    @classmethod
    def from_json(cls, data: Any) -> Challenge:
        d = _obj(data, "challenge")
        return cls(type=str(d.get("type", "")), url=_str(d, "url", "challenge"),
                   status=str(d.get("status", "pending")), token=_opt_str(d, "token") or "",
                   validated=parse_time(d.get("validated")), error=_problem(d.get("error")))


@dataclass(frozen=True)
class Authorization:
    url: str
    identifier: Identifier
    status: str
    challenges: tuple[Challenge, ...] = ()
    wildcard: bool = False
    expires: dt.datetime | None = None

    @classmethod
    def from_json(cls, data: Any, *, url: str) -> Authorization:
        d = _obj(data, "authorization")
        challenges = []
        for raw in d.get("challenges") or ():
            if isinstance(raw, Mapping) and isinstance(raw.get("url"), str):
                challenges.append(Challenge.from_json(raw))
        return cls(url=url, identifier=Identifier.from_json(d.get("identifier")),
                   status=str(d.get("status", "pending")), challenges=tuple(challenges),
                   wildcard=d.get("wildcard") is True, expires=parse_time(d.get("expires")))

    @property
    def name(self) -> str:
        """The name as ordered: ``*.example.com`` for a wildcard authorization (§7.1.4)."""
        return f"*.{self.identifier.value}" if self.wildcard else self.identifier.value

    def challenge(self, challenge_type: str) -> Challenge | None:
        for ch in self.challenges:
            if ch.type == challenge_type:
                return ch
        return None


@dataclass(frozen=True)
class Order:
    url: str
    status: str
    identifiers: tuple[Identifier, ...]
    authorizations: tuple[str, ...]
    finalize: str
    certificate: str | None = None
    expires: dt.datetime | None = None
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    profile: str | None = None
    replaces: str | None = None
    error: AcmeProblem | None = None

    @classmethod
    def from_json(cls, data: Any, *, url: str) -> Order:
        d = _obj(data, "order")
        idents = tuple(Identifier.from_json(i) for i in d.get("identifiers") or ())
        return cls(url=url, status=str(d.get("status", "pending")), identifiers=idents,
                   authorizations=_str_list(d.get("authorizations")),
                   finalize=_str(d, "finalize", "order"),
                   certificate=_opt_str(d, "certificate"), expires=parse_time(d.get("expires")),
                   not_before=parse_time(d.get("notBefore")),
                   not_after=parse_time(d.get("notAfter")), profile=_opt_str(d, "profile"),
                   replaces=_opt_str(d, "replaces"), error=_problem(d.get("error")))


@dataclass(frozen=True)
class Problem:
    """A problem document as data (for callers that store or display it)."""

    type: str
    detail: str = ""
    status: int | None = None

    @classmethod
    def from_json(cls, data: Any) -> Problem:
        p = problem_from_json(data)
        return cls(type=p.type, detail=p.detail, status=p.status)


@dataclass(frozen=True)
class RenewalInfo:
    """ARI answer (RFC 9773 §4.2): renew at a random time inside the suggested window."""

    start: dt.datetime
    end: dt.datetime
    explanation_url: str | None = None
    retry_after: float | None = None  # seconds; re-fetch ARI no earlier than this

    @classmethod
    def from_json(cls, data: Any, *, retry_after: float | None = None) -> RenewalInfo:
        d = _obj(data, "renewal info")
        window = _obj(d.get("suggestedWindow"), "renewal window")
        start, end = parse_time(window.get("start")), parse_time(window.get("end"))
        if start is None or end is None or end < start:
            raise TransportError("the CA sent an invalid ARI suggestedWindow")
        return cls(start=start, end=end, explanation_url=_opt_str(d, "explanationURL"),
                   retry_after=retry_after)
