"""Official SDK clients, built lazily, one per (service, region, endpoint, credentials).

The SDKs cost 0.6-0.8 s each to import (Tea, aiohttp, apscheduler), so every
``alibabacloud_*`` import lives inside a function: ``acmeali --help`` and a ``renew`` with
nothing due never pay for them.

Credentials follow ``alibabacloud-credentials``' default chain (environment, RRSA/OIDC,
``~/.aliyun/config.json``, the credentials file, ECS RAM role, credentials URI), but the
chain is assembled here from the package's own providers, because the package reads every
``ALIBABA_CLOUD_*`` variable and ``HOME`` once, *when it is imported* (``utils/auth_util.py``
in 1.0.x). A process that imports the SDK and later changes its environment (a test
fixture, a long-lived service reloading its settings) would otherwise keep signing with
stale keys. Here the environment is read when a client is made, and ``[aliyun] profile``
means what ``ALIBABA_CLOUD_PROFILE`` means to the SDK: it picks the profile in
``~/.aliyun/config.json`` and ``credentials.ini``; environment keys still come first.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from acmeali import docs_url
from acmeali.aliyun.services import Service, cas_region, service_named
from acmeali.config import AliyunSettings
from acmeali.errors import UsageError

__all__ = ["Service", "cas_region", "clear_clients", "endpoint_for", "make_client"]

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_MS = 5_000
_READ_TIMEOUT_MS = 30_000  # uploads of long chains on slow links outlast the SDK's 10 s

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], Any] = {}


def _service(service: Service | str) -> Service:
    return service if isinstance(service, Service) else service_named(service)


def endpoint_for(service: Service | str, settings: AliyunSettings,
                 region: str | None = None) -> str:
    """The host (or host:port) to talk to: the override, else Alibaba's public endpoint."""
    return _service(service).endpoint_for(settings, region)


def make_client(service: Service | str, settings: AliyunSettings, *,
                region: str | None = None) -> Any:
    """The SDK client for ``service`` (a :class:`Service` or its name); cached per process,
    safe to share between threads.

    The cache key holds everything that changes what the client talks to or signs with
    (endpoint, protocol, region, profile, and the environment's AccessKey pair as a hash), so
    a changed environment gets a new client instead of the old keys.
    """
    svc = _service(service)
    endpoint = svc.endpoint_for(settings, region)
    reg = svc.region(settings, region)
    key = (svc.name, reg, endpoint, settings.protocol, settings.profile, _env_fingerprint())
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _build(svc, reg, endpoint, settings)
            _clients[key] = client
        return client


def clear_clients() -> None:
    """Forget cached clients (tests; a long-lived process after rotating credentials)."""
    with _lock:
        _clients.clear()


def _env_fingerprint() -> str | None:
    ak = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
    if not ak:
        return None
    material = "\0".join((ak, os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ""),
                          os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN", "")))
    return hashlib.sha256(material.encode()).hexdigest()


def _build(service: Service, region: str, endpoint: str, settings: AliyunSettings) -> Any:
    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_tea_openapi.utils_models import Config

    package = importlib.import_module(f"{service.package}.client")
    credential = CredentialClient(provider=credentials_provider(settings.profile))
    config = Config(credential=credential, region_id=region, endpoint=endpoint,
                    protocol=settings.protocol, connect_timeout=_CONNECT_TIMEOUT_MS,
                    read_timeout=_READ_TIMEOUT_MS, user_agent="acmeali")
    client = package.Client(config)
    # Remembered for error hints (RAM action names) and debug logs.
    client._acmeali_service = service
    log.debug("aliyun: %s client for %s (region %s, %s)", service.name, endpoint, region,
              settings.protocol)
    return client


def credentials_provider(profile: str | None) -> Any:
    """The default credentials chain, with the environment read now (see module docstring)."""
    from alibabacloud_credentials.provider import (
        CLIProfileCredentialsProvider,
        OIDCRoleArnCredentialsProvider,
        ProfileCredentialsProvider,
        StaticAKCredentialsProvider,
        StaticSTSCredentialsProvider,
    )

    env = os.environ
    providers: list[tuple[str, Any]] = []
    ak = env.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
    sk = env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    token = env.get("ALIBABA_CLOUD_SECURITY_TOKEN")
    if ak and sk:
        providers.append(("env", StaticSTSCredentialsProvider(
            access_key_id=ak, access_key_secret=sk, security_token=token) if token
            else StaticAKCredentialsProvider(access_key_id=ak, access_key_secret=sk)))
    role_arn = env.get("ALIBABA_CLOUD_ROLE_ARN")
    oidc_arn = env.get("ALIBABA_CLOUD_OIDC_PROVIDER_ARN")
    token_file = env.get("ALIBABA_CLOUD_OIDC_TOKEN_FILE")
    if role_arn and oidc_arn and token_file:
        providers.append(("oidc", OIDCRoleArnCredentialsProvider(
            role_arn=role_arn, oidc_provider_arn=oidc_arn, oidc_token_file_path=token_file,
            role_session_name=env.get("ALIBABA_CLOUD_ROLE_SESSION_NAME") or "acmeali")))
    profile_name = profile or env.get("ALIBABA_CLOUD_PROFILE")
    home = Path.home()
    providers.append(("cli_profile", CLIProfileCredentialsProvider(
        profile_name=profile_name, profile_file=str(home / ".aliyun" / "config.json"))))
    providers.append(("profile", ProfileCredentialsProvider(
        profile_name=profile_name or "default",
        profile_file=env.get("ALIBABA_CLOUD_CREDENTIALS_FILE")
        or str(home / ".alibabacloud" / "credentials.ini"))))
    if env.get("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "false").lower() != "true":
        providers.append(("ecs_ram_role", _LazyProvider("ecs_ram_role", _ecs_provider)))
    uri = env.get("ALIBABA_CLOUD_CREDENTIALS_URI")
    if uri:
        from alibabacloud_credentials.provider import URLCredentialsProvider

        providers.append(("credentials_uri", URLCredentialsProvider(uri=uri)))
    return _chain_class()(providers, profile_name)


def _ecs_provider() -> Any:
    from alibabacloud_credentials.provider import EcsRamRoleCredentialsProvider

    return EcsRamRoleCredentialsProvider()


class _LazyProvider:
    """Builds a provider on first use: the ECS one starts a refresh thread when created."""

    def __init__(self, name: str, factory: Any) -> None:
        self._name = name
        self._factory = factory
        self._inner: Any = None

    def get_credentials(self) -> Any:
        if self._inner is None:
            self._inner = self._factory()
        return self._inner.get_credentials()

    async def get_credentials_async(self) -> Any:
        if self._inner is None:
            self._inner = self._factory()
        return await self._inner.get_credentials_async()

    def get_provider_name(self) -> str:
        return self._name


_CHAIN: Any = None


def _chain_class() -> Any:
    """The chain subclasses the SDK's provider interface, so it is defined on first use."""
    global _CHAIN
    if _CHAIN is not None:
        return _CHAIN
    from alibabacloud_credentials.provider.refreshable import Credentials
    from alibabacloud_credentials_api import ICredentialsProvider

    class ChainProvider(ICredentialsProvider):  # type: ignore[misc]
        """First provider that yields credentials wins and is reused (as the SDK's chain)."""

        def __init__(self, providers: list[tuple[str, Any]], profile: str | None) -> None:
            self._providers = providers
            self._profile = profile
            self._last: Any = None
            self._lock = threading.Lock()

        def _wrap(self, creds: Any) -> Any:
            return Credentials(access_key_id=creds.get_access_key_id(),
                               access_key_secret=creds.get_access_key_secret(),
                               security_token=creds.get_security_token(),
                               provider_name=f"acmeali/{creds.get_provider_name()}")

        def get_credentials(self) -> Any:
            with self._lock:
                if self._last is not None:
                    return self._wrap(self._last.get_credentials())
                tried: list[str] = []
                for name, provider in self._providers:
                    try:
                        creds = provider.get_credentials()
                    except Exception as exc:  # each source fails its own way
                        tried.append(f"{name}: {_first_line(exc)}")
                        continue
                    if creds is not None:
                        self._last = provider
                        return self._wrap(creds)
                raise NoCredentials(tried, self._profile)

        async def get_credentials_async(self) -> Any:
            return self.get_credentials()

        def get_provider_name(self) -> str:
            return "default"

    _CHAIN = ChainProvider
    return _CHAIN


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


class NoCredentials(UsageError):
    """No source in the chain produced credentials; says what each source answered."""

    def __init__(self, tried: list[str], profile: str | None) -> None:
        where = f" (profile {profile!r})" if profile else ""
        tried = [t.replace(": $/", ": /") for t in tried]  # the SDK's f-string typo
        super().__init__(
            f"no Alibaba Cloud credentials found{where}; tried " + "; ".join(tried),
            hint="set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, configure "
                 "a profile with `aliyun configure` (~/.aliyun/config.json), or run on an ECS "
                 f"instance with a RAM role; see {docs_url('alibaba-cloud.md')}")
