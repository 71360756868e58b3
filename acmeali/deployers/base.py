"""What every deploy target shares: its self-description, the certificate's facts, the API
wrapper, the per-run services, outcomes.

A deploy target is a class (one module under ``deployers/``, one line in
``deployers/registry.py``) that says what it is: ``kind``, its grammar (``usage``), a
``summary`` for help and the docs, the Alibaba ``services`` it calls, the RAM actions its own
calls need (``ram_actions``), ``parse`` (spec -> instance), ``deploy`` and ``check`` (read
back). Help texts, config validation, the docs' target table and dry-run plans come from
those attributes; the contract tests check every call a target makes is declared.

A deploy run works on one lineage's live bundle. :class:`DeployContext` parses the PEM once
and hands out per-run services (:meth:`DeployContext.service`): the CAS copy of the
certificate (``ctx.cas``) is one, uploaded at most once per run whatever the number of
targets that reference it; each service's ``finish`` runs after every target (CAS clean-up
keeps what any target still uses, by the typed ``TargetResult.cas_ids``; CLB deletes the
server certificates it replaced, this run or an earlier one, ``meta.replaced_certs``).

``dry_run`` is honoured by :class:`Api`: read-only actions (Describe*/List*/Get*) run for
real so the plan shown is accurate, actions that change anything are printed instead.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from acmeali.config import AliyunSettings
from acmeali.errors import DeployError
from acmeali.lineage import LineageMeta
from acmeali.store.base import LiveBundle, LivePaths
from acmeali.ui import UI

if TYPE_CHECKING:
    from acmeali.aliyun.services import Service
    from acmeali.deployers.cas import CasSession

READ_PREFIXES = ("Describe", "List", "Get", "Query", "Check")

# A region id is recognised by its form: a geography prefix, then words (cn-hangzhou,
# ap-southeast-1, cn-shanghai-finance-1). Resource ids (lb-..., lsn-..., alb-...) never
# start with one of these prefixes.
REGION = re.compile(r"^(cn|ap|us|eu|me|na|sa|af|la|ru|rus)(-[a-z0-9]+)+$")

T = TypeVar("T", bound="Target")
S = TypeVar("S", bound="RunService")


class TargetSyntaxError(ValueError):
    """A deploy target string that does not follow its kind's grammar."""

    def __init__(self, spec: str, why: str, usage: tuple[str, ...] = ()) -> None:
        expected = f"; expected {' or '.join(usage)}" if usage else ""
        super().__init__(f"deploy target {spec!r}: {why}{expected}")


def split_region(parts: list[str], rest: int) -> tuple[str | None, list[str]]:
    """``[REGION:]...``: the leading region when ``parts`` has one and ``rest`` more."""
    if len(parts) > rest and REGION.match(parts[0]):
        return parts[0], parts[1:]
    return None, parts


@dataclass(frozen=True)
class DeployOutcome:
    """One target's result, as the caller shows it (one line per target)."""

    target: str
    ok: bool
    message: str


@dataclass
class TargetResult:
    """What a target reports on success.

    ``details`` go into ``meta.deployments`` for display and for the target's own next run;
    ``cas_ids`` are the CAS CertIds the target points at now, the only thing CAS clean-up
    reads (a target that references no CAS certificate leaves it empty).
    """

    message: str
    details: dict[str, Any] = field(default_factory=dict)
    cas_ids: frozenset[int] = frozenset()


class PartialDeployError(DeployError):
    """Some parts of a multi-part target failed: ``details`` and ``cas_ids`` record what the
    target serves now (the failed parts keep their earlier certificate)."""

    def __init__(self, message: str, details: dict[str, Any], cas_ids: frozenset[int] = frozenset(),
                 *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.details = details
        self.cas_ids = cas_ids


class Target(ABC):
    """One place a certificate goes. ``spec`` is the user's string, the key in metadata."""

    kind: ClassVar[str]
    usage: ClassVar[tuple[str, ...]]  # grammar, one form per entry: "alb:[<region>:]<listener-id>"
    summary: ClassVar[str]  # one line for --help and the docs' table
    services: ClassVar[tuple[Service, ...]] = ()  # the Alibaba Cloud products it calls
    # "<ram code>:<Action>" for every call the target's own code may make, all forms
    # (auto, extra, ...) included, plus any action the product checks on its behalf (OSS
    # reads the CAS key); build it with Service.ram_actions so renamed actions come out right.
    ram_actions: ClassVar[tuple[str, ...]] = ()
    # The run service that deletes this kind's entries of ``meta.replaced_certs`` (product-
    # side certificates a deploy replaced): every deploy of a lineage holding such entries
    # starts it, whatever targets that run deploys to.
    leftovers: ClassVar[type[RunService] | None] = None

    spec: str

    @classmethod
    @abstractmethod
    def parse(cls: type[T], spec: str, arg: str) -> T:
        """``spec`` is the whole string, ``arg`` what follows ``<kind>:``; raise
        :class:`TargetSyntaxError` naming the spec and ``usage``."""

    @abstractmethod
    def deploy(self, ctx: DeployContext) -> TargetResult:
        """Make the target serve ``ctx.cert``; idempotent (no write when it already does),
        confirmed by reading back."""

    def check(self, ctx: DeployContext) -> bool | None:
        """Read back: whether the target serves ``ctx.cert`` now; None when it cannot tell."""
        return None

    def plan(self) -> str:
        """One line for ``--dry-run``: what deploying does."""
        return self.summary

    @classmethod
    def ram_policy(cls) -> tuple[str, ...]:
        """Every RAM action deploying to this target may need: a target that goes through the
        run's CAS copy (``cas`` among its ``services``) needs the CAS copy's actions (upload,
        reuse look-ups, clean-up), then its own ``ram_actions``."""
        from acmeali.deployers.cas import CAS, CAS_COPY_RAM_ACTIONS

        inherited = CAS_COPY_RAM_ACTIONS if CAS in cls.services else ()
        return tuple(dict.fromkeys((*inherited, *cls.ram_actions)))

    @classmethod
    def fail(cls, spec: str, why: str) -> TargetSyntaxError:
        return TargetSyntaxError(spec, why, cls.usage)


class CertMaterial:
    """The bundle's PEM and the leaf's facts, parsed once per run."""

    def __init__(self, bundle: LiveBundle) -> None:
        self.bundle = bundle

    @cached_property
    def _chain(self) -> list[Any]:
        from acmeali.certutil import load_chain

        chain = load_chain(self.bundle.fullchain)
        if not chain:
            raise DeployError("the live fullchain.pem holds no certificate")
        return chain

    @property
    def leaf(self) -> Any:
        return self._chain[0]

    @cached_property
    def fingerprint(self) -> str:
        from acmeali.certutil import fingerprint

        return fingerprint(self.leaf).lower()

    @cached_property
    def sha1(self) -> str:
        from cryptography.hazmat.primitives import hashes

        return bytes(self.leaf.fingerprint(hashes.SHA1())).hex()  # noqa: S303 - CAS lists SHA-1

    @cached_property
    def serial(self) -> str:
        from acmeali.certutil import serial_hex

        return serial_hex(self.leaf).lower()

    @cached_property
    def names(self) -> list[str]:
        from acmeali.certutil import names_of

        return [n.lower() for n in names_of(self.leaf)]

    @cached_property
    def common_name(self) -> str:
        from cryptography.x509.oid import NameOID

        attrs = self.leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if attrs:
            return str(attrs[0].value).lower()
        return self.names[0] if self.names else "certificate"

    @property
    def not_before(self) -> datetime:
        return _utc(getattr(self.leaf, "not_valid_before_utc", None) or self.leaf.not_valid_before)

    @property
    def not_after(self) -> datetime:
        return _utc(getattr(self.leaf, "not_valid_after_utc", None) or self.leaf.not_valid_after)

    @cached_property
    def fullchain_pem(self) -> str:
        """Leaf then intermediates, normalised (CAS and API Gateway want the whole chain)."""
        from cryptography.hazmat.primitives.serialization import Encoding

        return "".join(c.public_bytes(Encoding.PEM).decode() for c in self._chain)

    @cached_property
    def key_pkcs8_pem(self) -> str:
        """The key as unencrypted PKCS#8 PEM: what CAS, CDN and the MQTT console accept
        (SEC1 ``EC PRIVATE KEY`` is refused by parts of the console)."""
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
            load_pem_private_key,
        )

        if not self.bundle.privkey.strip():
            raise DeployError("this lineage has no stored private key (it was issued from "
                              "your own CSR), and Alibaba Cloud needs the key with the "
                              "certificate", hint="deploy it with a hook target instead")
        try:
            key = load_pem_private_key(self.bundle.privkey, password=None)
        except (ValueError, TypeError) as exc:
            raise DeployError("cannot read the live private key (privkey.pem); "
                              f"it is not an unencrypted PEM key ({type(exc).__name__})") from None
        return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()

    @cached_property
    def key_alibaba_pem(self) -> str:
        """The key in the form Alibaba's certificate pages ask for: an RSA key as PKCS#1
        (``BEGIN RSA PRIVATE KEY``; CDN/DCDN/Live "certificate formats" pages, and CDN/DCDN
        take the key from CAS), any other key as unencrypted PKCS#8 (the MQTT server
        certificate guide converts EC keys that way; SEC1 is refused by parts of the
        console)."""
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
            load_pem_private_key,
        )

        pkcs8 = self.key_pkcs8_pem
        key = load_pem_private_key(pkcs8.encode(), password=None)
        if isinstance(key, rsa.RSAPrivateKey):
            return key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL,
                                     NoEncryption()).decode()
        return pkcs8

    def covers(self, domain: str) -> bool:
        from acmeali.names import covers

        return any(covers(n, domain) for n in self.names)


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


class Api:
    """Calls through :func:`acmeali.aliyun.call`; in dry-run mode prints the writes."""

    def __init__(self, settings: AliyunSettings, ui: UI, *, dry_run: bool = False) -> None:
        self.settings = settings
        self.ui = ui
        self.dry_run = dry_run
        self.planned: list[tuple[str, str, dict[str, Any]]] = []

    def client(self, service: Service, region: str | None = None) -> Any:
        from acmeali.aliyun.clients import make_client

        return make_client(service, self.settings, region=region)

    def __call__(self, service: Service, action: str, params: Mapping[str, Any] | None = None,
                 *, region: str | None = None, path: tuple[str, ...] = ()) -> dict[str, Any]:
        from acmeali.aliyun.retry import call, redact_params

        params = dict(params or {})
        if self.dry_run and not action.startswith(READ_PREFIXES):
            shown = redact_params(params)
            self.planned.append((service.name, action, shown))
            args = " ".join([*path, *(f"{k}={v}" for k, v in shown.items())])
            self.ui.result(f"  would call {service.name} {action} {args}".rstrip())
            return {}
        return call(self.client(service, region), action, params, path=path)


class RunService(Protocol):
    """Something targets share within one deploy run (the CAS copy, CLB server
    certificates). Created on first use; ``finish`` runs after every target and never raises."""

    def __init__(self, ctx: DeployContext) -> None: ...
    def finish(self) -> None: ...


class DeployContext:
    """Shared state of one deploy run over one lineage."""

    def __init__(self, meta: LineageMeta, bundle: LiveBundle, *, settings: AliyunSettings, ui: UI,
                 live_paths: LivePaths | None = None, dry_run: bool = False) -> None:
        self.meta = meta
        self.bundle = bundle
        self.cert = CertMaterial(bundle)
        self.settings = settings
        self.ui = ui
        self.live_paths = live_paths
        self.dry_run = dry_run
        self.api = Api(settings, ui, dry_run=dry_run)
        self._services: dict[type[Any], Any] = {}
        self._lock = threading.Lock()

    def service(self, kind: type[S]) -> S:
        """The run's one instance of ``kind`` (constructed as ``kind(ctx)``)."""
        with self._lock:
            found = self._services.get(kind)
            if found is None:
                found = self._services[kind] = kind(self)
            return found

    @property
    def cas(self) -> CasSession:
        """The CAS copy of the certificate: ``ctx.cas.ensure()`` uploads it once per run."""
        from acmeali.deployers.cas import CasSession

        return self.service(CasSession)

    def used(self, kind: type[Any]) -> bool:
        return kind in self._services

    def finish(self) -> None:
        """Every run service's ``finish``, newest first (so CLB lets go of a CAS certificate
        before CAS clean-up looks at it); never raises."""
        for svc in reversed(list(self._services.values())):
            try:
                svc.finish()
            except Exception as exc:  # clean-up must never fail a deploy
                self.ui.warn(f"clean-up after deploying failed: {exc}")
