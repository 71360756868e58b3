"""What every deployer shares: the certificate's facts, the API wrapper, outcomes.

A deploy run works on one lineage's live bundle. :class:`DeployContext` holds everything
the target handlers need, parses the PEM once, and carries the CAS upload between targets
(``cdn:``, ``dcdn:`` and ``mqtt-server:`` all reference the certificate in CAS, so the
upload happens at most once per run whatever the number of targets).

``dry_run`` is honoured by :class:`Api`: read-only actions (Describe*/List*/Get*) run for
real so the plan shown is accurate, actions that change anything are printed instead.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from acmeali.config import AliyunSettings
from acmeali.errors import DeployError
from acmeali.lineage import LineageMeta
from acmeali.store.base import LiveBundle, LivePaths
from acmeali.ui import UI

if TYPE_CHECKING:
    from acmeali.targets import Target

READ_PREFIXES = ("Describe", "List", "Get", "Query", "Check")


@dataclass(frozen=True)
class DeployOutcome:
    """One target's result, as the caller shows it (one line per target)."""

    target: str
    ok: bool
    message: str


@dataclass
class TargetResult:
    """What a handler reports on success; ``details`` go into ``meta.deployments``."""

    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CasCert:
    """A certificate held by CAS that this run deploys from."""

    cert_id: int
    identifier: str  # "<CertId>-<region>", what MQTT and the console call it
    name: str
    region: str
    uploaded_now: bool


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

    def client(self, service: str, region: str | None = None) -> Any:
        from acmeali.aliyun.clients import make_client

        return make_client(service, self.settings, region=region)

    def __call__(self, service: str, action: str, params: Mapping[str, Any] | None = None, *,
                 region: str | None = None) -> dict[str, Any]:
        from acmeali.aliyun.retry import call, redact_params

        params = dict(params or {})
        if self.dry_run and not action.startswith(READ_PREFIXES):
            shown = redact_params(params)
            self.planned.append((service, action, shown))
            args = " ".join(f"{k}={v}" for k, v in shown.items())
            self.ui.result(f"  would call {service} {action} {args}".rstrip())
            return {}
        return call(self.client(service, region), action, params)


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
        self.cas: CasCert | None = None
        self.cas_error: Exception | None = None
        self.cas_lock = threading.Lock()


class Handler(Protocol):
    def __call__(self, ctx: DeployContext, target: Target) -> TargetResult: ...
