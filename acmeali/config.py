"""TOML configuration -> frozen dataclasses.

Every error names the key path (``certificates[2].domains[0]``) and what was expected,
because a cron job's only feedback is that one line. Unknown keys are errors: a typo
that silently does nothing is worse than a refusal.

This module is on the start-up path of ``renew``: stdlib only (plus ``names``, ``targets``
and ``aliyun.services``, imported when needed, and the DNS provider table
``solvers.registry``, which are stdlib only too). A DNS provider's own table
(``[dns.<name>]``, or ``<name> = {...}`` inside one ``[[certificates]]``) is checked by
that provider's ``options``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from acmeali.errors import ConfigError
from acmeali.solvers.registry import PROVIDERS
from acmeali.validate import DAYS, JITTER, RUN_TIMEOUT, TIMEOUT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

KEY_TYPES = ("ec256", "ec384", "rsa2048", "rsa3072", "rsa4096")
CHALLENGES = ("http-01", "dns-01")
DNS_PROVIDERS = tuple(PROVIDERS)
SITES = ("china", "international")
STORAGE_BACKEND_NAMES = ("files", "postgresql")  # store.seam.STORAGE_BACKENDS

LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
SERVER_ALIASES = {"letsencrypt": LETSENCRYPT, "letsencrypt-staging": LETSENCRYPT_STAGING}


def resolve_server(value: str) -> str:
    """Map ``letsencrypt``/``letsencrypt-staging`` to their directory URLs; keep URLs as given."""
    return SERVER_ALIASES.get(value, value)


@dataclass(frozen=True)
class AcmeSettings:
    server: str = LETSENCRYPT
    ca_bundle: str | None = None
    email: tuple[str, ...] = ()
    account_key_type: str = "ec256"
    agree_tos: bool = False
    eab_kid: str | None = None
    eab_hmac_key: str | None = field(default=None, repr=False)
    timeout: float = 30.0


@dataclass(frozen=True)
class CertSettings:
    """Per-certificate settings; ``[defaults]`` and each ``[[certificates]]`` use these keys."""

    key_type: str = "ec256"
    reuse_key: bool = False
    must_staple: bool = False
    challenge: str = "http-01"
    http_port: int = 80
    http_address: str = ""
    webroot: str | None = None
    dns: str = "hook"
    dns_hook: str | None = None
    dns_resolvers: tuple[str, ...] = ()
    dns_timeout: float = 300.0
    dns_ttl: int = 600
    dns_zone: str | None = None
    # provider -> its options: [dns.<provider>], then the certificate's own <provider> table
    dns_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    preferred_chain: str | None = None
    profile: str | None = None
    deploy: tuple[str, ...] = ()
    pre_hook: str | None = None
    post_hook: str | None = None
    deploy_hook: str | None = None


@dataclass(frozen=True)
class CertificateConfig:
    name: str
    domains: tuple[str, ...]
    settings: CertSettings  # [defaults] with this table's keys applied
    explicit: frozenset[str] = frozenset()  # the keys this table sets itself


@dataclass(frozen=True)
class RenewalSettings:
    days_before_expiry: float | None = None
    keep_versions: int = 5
    concurrency: int = 4
    jitter: float = 0.0
    pre_hook: str | None = None
    post_hook: str | None = None
    deploy_hook: str | None = None
    failure_hook: str | None = None
    # Wall-clock limit of one `renew` run (seconds, 0 = none); see docs/renewal.md.
    run_timeout: float = 10800.0


@dataclass(frozen=True)
class AliyunSettings:
    region: str = "cn-hangzhou"
    site: str = "china"
    profile: str | None = None
    protocol: str = "https"
    endpoints: Mapping[str, str] = field(default_factory=dict)
    cas_cleanup_old: bool = True
    cas_keep_previous: int = 1


@dataclass(frozen=True)
class StorageSettings:
    """``[storage]``: where lineages live (docs/fleet.md). ``files`` needs nothing else."""

    backend: str = "files"
    dsn: str | None = field(default=None, repr=False)  # libpq; may carry a password
    key_file: str | None = None  # 32 random bytes, base64; 0600


@dataclass(frozen=True)
class LoggingSettings:
    """The run log (acmeali/logfile.py): on by default, under the state directory."""

    enabled: bool = True
    file: str | None = None  # default <state_dir>/logs/acmeali.log
    max_bytes: int = 1_000_000
    backups: int = 10


@dataclass(frozen=True)
class Config:
    state_dir: str | None = None
    acme: AcmeSettings = field(default_factory=AcmeSettings)
    defaults: CertSettings = field(default_factory=CertSettings)
    certificates: tuple[CertificateConfig, ...] = ()
    renewal: RenewalSettings = field(default_factory=RenewalSettings)
    defaults_explicit: frozenset[str] = frozenset()  # the keys [defaults] sets
    aliyun: AliyunSettings = field(default_factory=AliyunSettings)
    source: str | None = None
    storage: StorageSettings = field(default_factory=StorageSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)

    def certificate(self, name: str) -> CertificateConfig | None:
        # A dict built once: `renew` asks for each of possibly thousands of lineages.
        by_name: dict[str, CertificateConfig] | None = self.__dict__.get("_by_name")
        if by_name is None:
            by_name = {c.name: c for c in self.certificates}
            object.__setattr__(self, "_by_name", by_name)  # frozen: a cache, not state
        return by_name.get(name)


# --------------------------------------------------------------------------- checkers
# A checker takes (value, path) and returns the converted value or raises ConfigError.
Checker = Callable[[Any, str], Any]


class _Ctx:
    def __init__(self, source: str | None) -> None:
        self.source = source

    def err(self, path: str, msg: str) -> ConfigError:
        return ConfigError(path, msg, source=self.source)


def _type_name(v: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string",
            list: "array", dict: "table"}.get(type(v), type(v).__name__)


def _make_checkers(ctx: _Ctx) -> dict[str, Checker]:
    def string(v: Any, p: str) -> str:
        if not isinstance(v, str):
            raise ctx.err(p, f"expected a string, got {_type_name(v)}")
        return v

    def opt_string(v: Any, p: str) -> str | None:
        s = string(v, p)
        return s or None

    def boolean(v: Any, p: str) -> bool:
        if not isinstance(v, bool):
            raise ctx.err(p, f"expected true or false, got {_type_name(v)}")
        return v

    def integer(lo: int, hi: int) -> Checker:
        def check(v: Any, p: str) -> int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ctx.err(p, f"expected an integer, got {_type_name(v)}")
            if not lo <= v <= hi:
                raise ctx.err(p, f"expected an integer from {lo} to {hi}, got {v}")
            return v
        return check

    def number(lo: float, hi: float) -> Checker:
        def check(v: Any, p: str) -> float:
            from acmeali.validate import InvalidValue
            from acmeali.validate import number as finite

            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ctx.err(p, f"expected a number, got {_type_name(v)}")
            try:
                return finite(v, lo=lo, hi=hi, what="value")
            except InvalidValue:  # TOML allows nan and inf
                raise ctx.err(p, f"expected a number from {lo:g} to {hi:g}, got {v}") from None
        return check

    def choice(options: tuple[str, ...]) -> Checker:
        def check(v: Any, p: str) -> str:
            s = string(v, p)
            if s not in options:
                raise ctx.err(p, f"expected one of {', '.join(options)}, got {s!r}")
            return s
        return check

    def str_list(item: Checker) -> Checker:
        def check(v: Any, p: str) -> tuple[Any, ...]:
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, list):
                raise ctx.err(p, f"expected an array of strings, got {_type_name(v)}")
            return tuple(item(x, f"{p}[{i}]") for i, x in enumerate(v))
        return check

    def email(v: Any, p: str) -> str:
        s = string(v, p).strip()
        if s.startswith("mailto:"):
            s = s[len("mailto:"):]
        local, at, domain = s.partition("@")
        if not at or not local or "." not in domain or " " in s:
            raise ctx.err(p, f"{s!r} is not an e-mail address")
        return s

    def domain(v: Any, p: str) -> str:
        from acmeali.names import InvalidName, normalize_name

        s = string(v, p)
        try:
            return normalize_name(s)
        except InvalidName as exc:
            raise ctx.err(p, str(exc)) from None

    def target(v: Any, p: str) -> str:
        from acmeali.targets import parse_target

        s = string(v, p)
        try:
            return parse_target(s).spec
        except ValueError as exc:
            raise ctx.err(p, str(exc)) from None

    def resolver(v: Any, p: str) -> str:
        s = string(v, p)
        host, sep, port = s.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ctx.err(p, f"expected HOST:PORT such as 127.0.0.1:53, got {s!r}")
        return s

    def server(v: Any, p: str) -> str:
        s = resolve_server(string(v, p))
        if not s.startswith("https://"):
            raise ctx.err(p, f"expected an https:// directory URL, letsencrypt or "
                             f"letsencrypt-staging, got {s!r}")
        return s

    def lineage_name(v: Any, p: str) -> str:
        from acmeali.validate import InvalidValue
        from acmeali.validate import lineage_name as check_name

        try:
            return check_name(string(v, p))
        except InvalidValue as exc:
            raise ctx.err(p, str(exc)) from None

    def endpoint(v: Any, p: str) -> str:
        s = string(v, p)
        if "://" in s or "/" in s or not s:
            raise ctx.err(p, f"expected host or host:port without scheme, got {s!r}")
        return s

    return {
        "string": string, "opt_string": opt_string, "boolean": boolean,
        "port": integer(1, 65535), "ttl": integer(1, 86400), "keep": integer(1, 1000),
        "keep0": integer(0, 1000), "concurrency": integer(1, 64),
        "timeout": number(*TIMEOUT), "days": number(*DAYS), "jitter": number(*JITTER),
        "run_timeout": number(*RUN_TIMEOUT),
        "key_type": choice(KEY_TYPES), "challenge": choice(CHALLENGES),
        "dns": choice(DNS_PROVIDERS), "site": choice(SITES), "protocol": choice(("https", "http")),
        "emails": str_list(email), "domains": str_list(domain), "targets": str_list(target),
        "resolvers": str_list(resolver), "server": server, "lineage_name": lineage_name,
        "endpoint": endpoint, "backend": choice(STORAGE_BACKEND_NAMES),
        "log_bytes": integer(10_000, 1_000_000_000),
        "log_backups": integer(0, 1000),
    }


_CERT_KEYS = {
    "key_type": "key_type", "reuse_key": "boolean", "must_staple": "boolean",
    "challenge": "challenge", "http_port": "port", "http_address": "string",
    "webroot": "opt_string", "dns": "dns", "dns_hook": "opt_string",
    "dns_resolvers": "resolvers", "dns_timeout": "timeout", "dns_ttl": "ttl",
    "dns_zone": "opt_string", "preferred_chain": "opt_string", "profile": "opt_string",
    "deploy": "targets", "pre_hook": "opt_string", "post_hook": "opt_string",
    "deploy_hook": "opt_string",
}
_ACME_KEYS = {
    "server": "server", "ca_bundle": "opt_string", "email": "emails",
    "account_key_type": "key_type", "agree_tos": "boolean", "eab_kid": "opt_string",
    "eab_hmac_key": "opt_string", "timeout": "timeout",
}
_RENEWAL_KEYS = {
    "days_before_expiry": "days", "keep_versions": "keep", "concurrency": "concurrency",
    "jitter": "jitter", "pre_hook": "opt_string", "post_hook": "opt_string",
    "deploy_hook": "opt_string", "failure_hook": "opt_string", "run_timeout": "run_timeout",
}
_ALIYUN_KEYS = {"region": "string", "site": "site", "profile": "opt_string", "protocol": "protocol"}
_CAS_KEYS = {"cleanup_old": "boolean", "keep_previous": "keep0"}
_STORAGE_KEYS = {"backend": "backend", "dsn": "opt_string", "key_file": "opt_string"}
_LOGGING_KEYS = {"enabled": "boolean", "file": "opt_string", "max_bytes": "log_bytes",
                 "backups": "log_backups"}
_TOP_KEYS = ("state_dir", "acme", "defaults", "certificates", "renewal", "aliyun", "storage",
             "logging", "dns")


def _table(ctx: _Ctx, v: Any, path: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ctx.err(path, f"expected a table, got {_type_name(v)}")
    return v


def _section(ctx: _Ctx, checks: dict[str, Checker], raw: Mapping[str, Any],
             spec: Mapping[str, str], prefix: str, allowed_extra: tuple[str, ...] = ()
             ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{prefix}.{key}" if prefix else key
        if key in allowed_extra:
            continue
        if key not in spec:
            raise ctx.err(path, f"unknown key; expected one of {', '.join(sorted(spec))}")
        out[key] = checks[spec[key]](value, path)
    return out


def parse_config(data: Mapping[str, Any], source: str | None = None) -> Config:
    """Validate an already-parsed TOML document."""
    ctx = _Ctx(source)
    checks = _make_checkers(ctx)
    for key in data:
        if key not in _TOP_KEYS:
            raise ctx.err(key, f"unknown key; expected one of {', '.join(_TOP_KEYS)}")

    state_dir = (checks["opt_string"](data["state_dir"], "state_dir")
                 if "state_dir" in data else None)
    acme = AcmeSettings(**_section(ctx, checks, _table(ctx, data.get("acme", {}), "acme"),
                                   _ACME_KEYS, "acme"))
    if acme.eab_hmac_key and not acme.eab_kid:
        raise ctx.err("acme.eab_kid", "eab_hmac_key is set, so eab_kid is required too")
    defaults_kw = _section(ctx, checks, _table(ctx, data.get("defaults", {}), "defaults"),
                           _CERT_KEYS, "defaults")
    dns_tables = {name: _provider_table(ctx, name, raw, f"dns.{name}")
                  for name, raw in _table(ctx, data.get("dns", {}), "dns").items()}
    dns_tables = {name: table for name, table in dns_tables.items() if table}
    if dns_tables:
        defaults_kw["dns_options"] = dns_tables
    defaults = CertSettings(**defaults_kw)
    renewal = RenewalSettings(**_section(
        ctx, checks, _table(ctx, data.get("renewal", {}), "renewal"), _RENEWAL_KEYS, "renewal"))

    raw_aliyun = _table(ctx, data.get("aliyun", {}), "aliyun")
    aliyun_kw = _section(ctx, checks, raw_aliyun, _ALIYUN_KEYS, "aliyun",
                         allowed_extra=("endpoints", "cas"))
    endpoints: dict[str, str] = {}
    raw_endpoints = _table(ctx, raw_aliyun.get("endpoints", {}), "aliyun.endpoints")
    if raw_endpoints:  # the names are the services of the registered targets and solvers
        from acmeali.aliyun.services import known_services

        names = known_services()
    for name, value in raw_endpoints.items():
        path = f"aliyun.endpoints.{name}"
        if name not in names:
            raise ctx.err(path, f"unknown endpoint; expected one of {', '.join(names)}")
        endpoints[name] = checks["endpoint"](value, path)
    cas = _section(ctx, checks, _table(ctx, raw_aliyun.get("cas", {}), "aliyun.cas"),
                   _CAS_KEYS, "aliyun.cas")
    aliyun = AliyunSettings(**aliyun_kw, endpoints=endpoints,
                            cas_cleanup_old=cas.get("cleanup_old", True),
                            cas_keep_previous=cas.get("keep_previous", 1))
    if aliyun.protocol == "http":
        for name, host in endpoints.items():
            if not is_loopback_host(host):
                raise ctx.err(f"aliyun.endpoints.{name}",
                              "protocol = \"http\" is allowed only for loopback endpoints "
                              "(127.0.0.1, ::1, localhost); use https")
        if not endpoints:
            raise ctx.err("aliyun.protocol", "\"http\" is allowed only together with loopback "
                                             "[aliyun.endpoints]; use https")

    raw_certs = data.get("certificates", [])
    if not isinstance(raw_certs, list):
        raise ctx.err("certificates", "expected an array of tables ([[certificates]])")
    certs: list[CertificateConfig] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_certs):
        prefix = f"certificates[{i}]"
        raw = _table(ctx, raw, prefix)
        if "domains" not in raw:
            raise ctx.err(f"{prefix}.domains", "missing; list the names this certificate covers")
        domains = checks["domains"](raw["domains"], f"{prefix}.domains")
        if not domains:
            raise ctx.err(f"{prefix}.domains", "empty; list at least one name")
        # The default name is checked too: a 250-character domain is a valid name but
        # not a lineage name the store can hold; the error then says to set `name`.
        name = checks["lineage_name"](raw["name"] if "name" in raw
                                      else default_lineage_name(domains), f"{prefix}.name")
        if name in seen:
            raise ctx.err(f"{prefix}.name", f"duplicate lineage name {name!r}")
        seen.add(name)
        overrides = _section(ctx, checks, raw, _CERT_KEYS, prefix,
                             allowed_extra=("name", "domains", *DNS_PROVIDERS))
        own = {p: _provider_table(ctx, p, raw[p], f"{prefix}.{p}")
               for p in DNS_PROVIDERS if p in raw}
        if own:
            overrides["dns_options"] = {
                p: {**defaults.dns_options.get(p, {}), **own.get(p, {})}
                for p in {*defaults.dns_options, *own}}
        settings = replace(defaults, **overrides)
        _check_cert_settings(ctx, settings, domains, prefix)
        certs.append(CertificateConfig(name=name, domains=tuple(dict.fromkeys(domains)),
                                       settings=settings, explicit=frozenset(overrides)))
    storage = StorageSettings(**_section(
        ctx, checks, _table(ctx, data.get("storage", {}), "storage"), _STORAGE_KEYS, "storage"))
    log_settings = LoggingSettings(**_section(
        ctx, checks, _table(ctx, data.get("logging", {}), "logging"), _LOGGING_KEYS, "logging"))
    return Config(state_dir=state_dir, acme=acme, defaults=defaults, certificates=tuple(certs),
                  renewal=renewal, aliyun=aliyun, source=source,
                  defaults_explicit=frozenset(defaults_kw), storage=storage,
                  logging=log_settings)


def _check_cert_settings(ctx: _Ctx, s: CertSettings, domains: tuple[str, ...], prefix: str) -> None:
    if s.challenge == "http-01":
        wild = [d for d in domains if d.startswith("*.")]
        if wild:
            raise ctx.err(f"{prefix}.challenge", f"{wild[0]} is a wildcard, which http-01 cannot "
                                                 "validate; use challenge = \"dns-01\"")
    if s.challenge != "dns-01":
        return
    from acmeali.solvers import registry

    options = registry.provider_options(s.dns, s)
    if s.dns == "hook" and not options.get("command"):  # without importing the hook runner
        raise ctx.err(f"{prefix}.dns_hook", "dns = \"hook\" needs dns_hook = \"<command>\"")
    try:
        if s.dns != "hook":
            registry.check_complete(s.dns, options)
    except registry.OptionError as exc:
        raise ctx.err(f"{prefix}.{s.dns}.{exc.key}",
                      f"dns = \"{s.dns}\" needs {exc.key} (in [dns.{s.dns}] or this "
                      f"certificate's {s.dns} table): {exc.message}") from None


def _provider_table(ctx: _Ctx, name: str, raw: Any, path: str) -> dict[str, Any]:
    """One DNS provider's options, checked by the provider itself."""
    from acmeali.solvers import registry

    if name not in registry.PROVIDERS:
        raise ctx.err(path, f"unknown DNS provider; expected one of {', '.join(DNS_PROVIDERS)}")
    try:
        return registry.validate_table(name, _table(ctx, raw, path))
    except registry.OptionError as exc:
        raise ctx.err(f"{path}.{exc.key}", exc.message) from None


def check_lineage_name(name: str, what: str = "--name") -> str:
    """Validate a lineage name given outside the config file (raises ConfigError, exit 2)."""
    checked: str = _make_checkers(_Ctx(None))["lineage_name"](name, what)
    return checked


def default_lineage_name(domains: tuple[str, ...] | list[str]) -> str:
    """certbot's convention: the first name, with a wildcard's ``*.`` dropped."""
    first = domains[0]
    return first[2:] if first.startswith("*.") else first


def is_loopback_host(hostport: str) -> bool:
    host = hostport
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return host in ("localhost", "::1") or host.startswith("127.")


def config_candidates(explicit: str | None) -> list[tuple[Path, bool]]:
    """Where to look, in order; the bool says whether the file must exist."""
    if explicit:
        return [(Path(explicit), True)]
    env = os.environ.get("ACMEALI_CONFIG")
    if env:
        return [(Path(env), True)]
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [(Path("acmeali.toml"), False), (Path(xdg) / "acmeali" / "config.toml", False),
            (Path("/etc/acmeali/config.toml"), False)]


def load_config(explicit: str | None = None) -> Config:
    """Find and load the configuration; no file at all is fine (all defaults)."""
    from acmeali.validate import InvalidValue, read_input_file

    for path, required in config_candidates(explicit):
        if not required and not os.path.lexists(path):
            continue
        if required and not os.path.lexists(path):
            raise ConfigError("", f"config file {path} does not exist; "
                                  "check --config or $ACMEALI_CONFIG")
        try:
            raw = read_input_file(path, f"config file {path}")
        except InvalidValue as exc:
            raise ConfigError("", f"cannot read {exc}") from None
        return load_config_bytes(raw, str(path))
    return Config()


def load_config_bytes(raw: bytes, source: str) -> Config:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("", "not UTF-8 text", source=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"not valid TOML: {exc}", source=source) from None
    except RecursionError:  # tomllib recurses per nesting level of arrays / inline tables
        raise ConfigError("", "not usable TOML: arrays or tables nested too deeply",
                          source=source) from None
    return parse_config(data, source)


def default_state_dir() -> Path:
    """``$ACMEALI_STATE_DIR``, else /var/lib/acmeali for root, else ``$XDG_DATA_HOME/acmeali``."""
    env = os.environ.get("ACMEALI_STATE_DIR")
    if env:
        return Path(env)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/acmeali")
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "acmeali"
