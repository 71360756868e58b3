"""DNS providers: the one table, and the small contract each provider implements.

A provider only adds and removes TXT records (lego's ``Provider``, certbot's
``DNSAuthenticator``); everything else dns-01 needs (CNAME following, the record ledger
that survives a kill, the propagation check, cleanup that never raises) lives once, in
``dns01.Dns01Solver``. Adding a provider is one new module plus one line in ``PROVIDERS``.

Stdlib only: ``--help`` (the ``--dns`` choices) and config validation read this table,
and must not pay for dnspython or an SDK. Provider modules are imported on use, and must
themselves be stdlib-only at import time (their heavy imports live inside methods).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, TextIO, runtime_checkable

if TYPE_CHECKING:
    from acmeali.config import AliyunSettings, CertSettings
    from acmeali.ui import UI


class Entry(NamedTuple):
    target: str    # "module:Class", imported only when the provider is used or validated
    summary: str   # one line for --help and docs


PROVIDERS: dict[str, Entry] = {
    "hook": Entry("acmeali.solvers.dnshook:Hook", "run your command ([dns.hook] command)"),
    "manual": Entry("acmeali.solvers.manual:Manual", "show the records, wait for Enter"),
    "alidns": Entry("acmeali.solvers.alidns:Alidns", "Alibaba Cloud DNS API ([aliyun])"),
    "rfc2136": Entry("acmeali.solvers.rfc2136:Rfc2136", "RFC 2136 update + TSIG ([dns.rfc2136])"),
}

# Flat CertSettings keys older than the provider tables; they still set these options.
ALIASES: dict[str, dict[str, str]] = {"hook": {"command": "dns_hook"},
                                      "alidns": {"zone": "dns_zone"}}

# A checker converts one option value or raises ValueError with what was expected.
OptionCheck = Callable[[Any], Any]
RecordData = dict[str, str]


class OptionError(ValueError):
    """An option of a provider's table is missing or wrong; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


@dataclass(frozen=True)
class TxtRecord:
    """One TXT record to publish: where the CA looks, and where it really goes."""

    identifier: str   # "example.com" (the CA's name for "*.example.com" too)
    name: str         # "_acme-challenge.example.com": where the CA asks
    fqdn: str         # where it is published: ``name`` after following CNAMEs
    value: str        # base64url(SHA-256(key authorization)): unique to this order
    ttl: int


@dataclass(frozen=True)
class ProviderEnv:
    """What a provider may use besides its own options."""

    settings: CertSettings             # the certificate's settings (dns_ttl, dns_resolvers...)
    ui: UI
    aliyun: AliyunSettings | None = None  # [aliyun], for providers calling Alibaba Cloud
    stdin: TextIO | None = None        # where a person answers (manual)


class DnsProvider(Protocol):
    """The whole contract of a DNS provider (see ``docs/architecture.md``).

    ``add_txt`` returns what ``remove_txt`` needs later (a record id, a zone), as strings:
    it is persisted in the lineage's record ledger, so a run killed mid-validation is
    cleaned up by the next one. It may return ``None`` for a record that is not ours to
    remove (the built-in providers adopt an identical value instead: it equals this
    challenge's digest, so an earlier attempt of ours put it there). ``remove_txt`` may be
    given empty ``data`` when
    the run died between the add and the ledger update: it must then find the record by
    its value (the value is this order's digest, so a record holding it is ours). Both
    must be idempotent: adding what exists, removing what is gone, are not errors.
    """

    name: ClassVar[str]
    options: ClassVar[Mapping[str, OptionCheck]]   # the keys of [dns.<name>]

    def add_txt(self, record: TxtRecord) -> RecordData | None: ...

    def remove_txt(self, record: TxtRecord, data: Mapping[str, str]) -> None: ...


@runtime_checkable
class PresentsInBatch(Protocol):
    """Optional: publish every record in one go (manual: one Enter for all of them)."""

    def add_all(self, records: Sequence[TxtRecord]) -> list[RecordData | None]: ...


@runtime_checkable
class HasPropagationTimeout(Protocol):
    """Optional: a provider known to be slower than the default propagation wait."""

    def propagation_timeout(self) -> float: ...


# Optional attributes, read with getattr: ``follows_cname`` (default True: the solver
# publishes at the end of a CNAME chain; False: at ``_acme-challenge.<domain>`` as asked)
# and ``sequential`` (default False; True: the zone holds one TXT value per name, so
# issuance presents, validates and cleans up one authorization at a time).


def provider_class(name: str) -> Any:
    """The provider class registered as ``name`` (KeyError if none)."""
    module, _, attr = PROVIDERS[name].target.partition(":")
    return getattr(importlib.import_module(module), attr)


def provider_options(name: str, settings: CertSettings) -> dict[str, Any]:
    """Provider ``name``'s options: its ``[dns.<name>]`` table (with the certificate's own
    overrides, merged by config.py), then the old flat keys that still set them."""
    options = dict(settings.dns_options.get(name, {}))
    for key, field_name in ALIASES.get(name, {}).items():
        value = getattr(settings, field_name, None)
        if value:
            options[key] = value
    return options


def validate_table(name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one provider table by the provider's own ``options``; raise OptionError."""
    cls = provider_class(name)
    schema: Mapping[str, OptionCheck] = cls.options
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in schema:
            expected = ", ".join(sorted(schema)) or "none"
            raise OptionError(key, f"unknown key; expected one of {expected}")
        try:
            out[key] = schema[key](value)
        except ValueError as exc:
            raise OptionError(key, str(exc)) from None
    return out


def check_complete(name: str, options: Mapping[str, Any]) -> None:
    """Raise OptionError when ``options`` lack what provider ``name`` requires."""
    check = getattr(provider_class(name), "check_options", None)
    if check is not None:
        check(options)


# ----------------------------------------------------------------- option checkers
def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {type(v).__name__}")
    return v


def string(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError(f"expected a non-empty string, got {v!r}"
                         if isinstance(v, str) else f"expected a string, got {type(v).__name__}")
    return v


def choice(options: Sequence[str]) -> OptionCheck:
    def check(v: Any) -> str:
        s = string(v)
        if s not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {s!r}")
        return s
    return check


def host_port(v: Any) -> str:
    """``host``, ``host:port`` or ``[v6]:port``."""
    s = string(v)
    host, port = s, ""
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            host = ""
    elif s.count(":") == 1:
        host, _, port = s.partition(":")
    if not host or " " in host or (port and (not port.isdigit() or not 0 < int(port) < 65536)):
        raise ValueError(f"expected host or host:port such as 192.0.2.53:53, got {s!r}")
    return s


def dns_name(v: Any) -> str:
    s = string(v).rstrip(".").lower()
    labels = s.split(".")
    if not s or any(not label or len(label) > 63 or " " in label for label in labels):
        raise ValueError(f"expected a DNS name, got {v!r}")
    return s
