"""What acmeali knows about one Alibaba Cloud product, in one value owned by its user.

A :class:`Service` names the SDK package (imported on the first call only), the endpoint
per site and region, and the RAM service code used in "grant <code>:<Action>" hints. The
deploy target (or the DNS solver, or the command) that calls a product defines its
``Service`` next to the calls; nothing else keeps a table of products. The ``[aliyun.endpoints]``
keys are the services' names, checked against :func:`known_services`, which imports the
registered users (stdlib only at import time, so that stays cheap).

Stdlib only: config validation and ``--help`` may import this module.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from acmeali.config import AliyunSettings

# Where CAS keeps certificates for each site: the CAS endpoint's region, the CertRegion of
# CDN/DCDN, the AliCloudCertificateRegionId of SLB and the suffix of "<CertId>-<region>".
CAS_REGIONS = {"china": "cn-hangzhou", "international": "ap-southeast-1"}

# Modules that call Alibaba Cloud outside the deploy targets (whose modules the target
# registry lists): importing them defines their services.
SERVICE_USERS = ("acmeali.solvers.alidns", "acmeali.commands.mqtt")

_lock = threading.Lock()
_BY_NAME: dict[str, Service] = {}


def cas_region(settings: AliyunSettings) -> str:
    return CAS_REGIONS.get(settings.site, "cn-hangzhou")


@dataclass(frozen=True)
class Service:
    """One Alibaba Cloud product API.

    ``endpoint`` is a template: ``{region}`` is the call's region (the target's, else
    ``[aliyun] region``). ``site_endpoints`` overrides it per site (CAS: ``cas.aliyuncs.com``
    in China, ``cas.ap-southeast-1.aliyuncs.com`` internationally), ``region_endpoints`` per
    region (the SDK's own endpoint map: CLB answers most regions on ``slb.aliyuncs.com``).
    ``site_region`` makes the client's region the site's CAS region whatever the target says.
    ``ram_names`` holds the API actions whose RAM action is named differently (ApsaraMQ for
    MQTT authorises RegisterCaCertificate as ``mq:RegisterCa``); every other action is
    authorised under its own name.
    """

    name: str  # the [aliyun.endpoints] key and the client-cache key
    package: str  # e.g. "alibabacloud_alb20200616"; ``<package>.client.Client``
    endpoint: str  # e.g. "alb.{region}.aliyuncs.com"
    ram_code: str  # RAM service code: hint "grant <ram_code>:<Action>"
    site_endpoints: Mapping[str, str] = field(default_factory=dict)
    region_endpoints: Mapping[str, str] = field(default_factory=dict)  # the SDK's endpoint map
    site_region: bool = False
    ram_names: Mapping[str, str] = field(default_factory=dict)  # API action -> RAM action name

    def __post_init__(self) -> None:
        with _lock:
            known = _BY_NAME.get(self.name)
            if known is not None and known != self:
                raise ValueError(f"two different Alibaba Cloud services named {self.name!r}")
            _BY_NAME[self.name] = self

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.name

    def region(self, settings: AliyunSettings, region: str | None = None) -> str:
        if self.site_region:
            return cas_region(settings)
        return region or settings.region

    def endpoint_for(self, settings: AliyunSettings, region: str | None = None) -> str:
        """The host (or host:port): ``[aliyun.endpoints]`` override, else the public one."""
        override = settings.endpoints.get(self.name)
        if override:
            return override
        reg = self.region(settings, region)
        template = self.region_endpoints.get(reg) or self.site_endpoints.get(settings.site,
                                                                            self.endpoint)
        return template.format(region=reg)

    def ram_action(self, action: str) -> str:
        """``<ram code>:<Action>``: what a RAM policy must allow for the API ``action``."""
        return f"{self.ram_code}:{self.ram_names.get(action, action)}"

    def ram_actions(self, *actions: str) -> tuple[str, ...]:
        """:meth:`ram_action` of each API action: a target's ``ram_actions`` declaration."""
        return tuple(self.ram_action(a) for a in actions)


def known_services() -> dict[str, Service]:
    """Every service some registered target or other user calls, by name."""
    from acmeali.deployers.registry import target_modules

    for module in (*target_modules(), *SERVICE_USERS):
        importlib.import_module(module)
    with _lock:
        return dict(sorted(_BY_NAME.items()))


def service_named(name: str) -> Service:
    """The service called ``name`` (``"cas"``, ``"alidns"``); ValueError when unknown."""
    with _lock:
        found = _BY_NAME.get(name)
    if found is not None:
        return found
    services = known_services()
    if name not in services:
        raise ValueError(f"unknown Alibaba Cloud service {name!r}; expected one of "
                         f"{', '.join(services)}")
    return services[name]
