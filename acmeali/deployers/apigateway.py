"""``apigateway:[<region>:]<group-id>:<domain>``: the HTTPS certificate of an API Gateway
custom domain.

API Gateway does not take CAS references here: ``SetDomainCertificate`` wants the PEM body
and key. The body is the full chain (leaf first) — with the leaf alone, clients that do
not fetch intermediates fail — and ``CaCertificateBody`` stays unset: it is the CA for
*client* certificates (mutual TLS), not the server chain. API Gateway is regional: the
target's region, else ``[aliyun] region``. The key goes in the form Alibaba's certificate
pages ask for (RSA as PKCS#1; API Gateway itself documents none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from acmeali.aliyun.services import Service
from acmeali.deployers.base import REGION, DeployContext, Target, TargetResult, split_region
from acmeali.deployers.cas import name_for
from acmeali.errors import DeployError

APIGATEWAY = Service("apigateway", "alibabacloud_cloudapi20160714",
                     "apigateway.{region}.aliyuncs.com", "apigateway")

_GROUP = re.compile(r"^[A-Za-z0-9]+$")


def _ms(dt: Any) -> int:
    return int(dt.timestamp() * 1000)


def _serves(ctx: DeployContext, info: dict[str, Any], name: str) -> bool:
    """Whether DescribeDomain shows our certificate: by the body's leaf fingerprint when
    the answer includes it, else by name and validity end (to the second)."""
    body = info.get("CertificateBody")
    if body:
        from acmeali.certutil import fingerprint, load_chain

        try:
            chain = load_chain(str(body))
        except Exception:
            chain = []
        return bool(chain) and fingerprint(chain[0]).lower() == ctx.cert.fingerprint
    if str(info.get("CertificateName") or "") != name:
        return False
    end = info.get("CertificateValidEnd")
    return end is None or abs(int(end) - _ms(ctx.cert.not_after)) < 1000


@dataclass(frozen=True)
class ApiGateway(Target):
    """``apigateway:[<region>:]<group-id>:<domain>``."""

    kind = "apigateway"
    usage = ("apigateway:[<region>:]<group-id>:<domain>",)
    summary = "API Gateway custom domain (PEM upload)"
    services = (APIGATEWAY,)
    ram_actions = APIGATEWAY.ram_actions("SetDomainCertificate", "DescribeDomain")

    spec: str
    group_id: str
    domain: str
    region: str | None = None

    @classmethod
    def parse(cls, spec: str, arg: str) -> ApiGateway:
        parts = arg.split(":")
        if len(parts) == 3 and not REGION.match(parts[0]):
            raise cls.fail(spec, f"{parts[0]!r} is not a region id such as cn-hangzhou")
        region, rest = split_region(parts, 2)
        if len(rest) != 2 or not _GROUP.match(rest[0]) or not rest[1]:
            raise cls.fail(spec, "malformed")
        from acmeali.validate import InvalidValue, target_domain

        try:
            return cls(spec, rest[0], target_domain(rest[1]), region)
        except InvalidValue as exc:
            raise cls.fail(spec, str(exc)) from None

    def deploy(self, ctx: DeployContext) -> TargetResult:
        return _deploy(ctx, self)

    def check(self, ctx: DeployContext) -> bool:
        info = ctx.api(APIGATEWAY, "DescribeDomain", {"GroupId": self.group_id,
                                                      "DomainName": self.domain},
                       region=self.region or ctx.settings.region)
        return _serves(ctx, info, name_for(ctx))

    def plan(self) -> str:
        return f"set the certificate of {self.domain} in API group {self.group_id}"


def _deploy(ctx: DeployContext, target: ApiGateway) -> TargetResult:
    region = target.region or ctx.settings.region
    group = target.group_id
    domain = target.domain
    if not ctx.cert.covers(domain):
        raise DeployError(f"the certificate ({', '.join(ctx.cert.names)}) does not cover "
                          f"{domain}, so API Gateway would serve a name mismatch")
    key = {"GroupId": group, "DomainName": domain}
    name = name_for(ctx)
    before = ctx.api(APIGATEWAY, "DescribeDomain", key, region=region)
    if _serves(ctx, before, name):
        return TargetResult(f"{domain} (group {group}) already serves this certificate",
                            _details(before, region))
    ctx.api(APIGATEWAY, "SetDomainCertificate", {
        **key, "CertificateName": name, "CertificateBody": ctx.cert.fullchain_pem,
        "CertificatePrivateKey": ctx.cert.key_alibaba_pem}, region=region)
    if ctx.dry_run:
        return TargetResult(f"{domain} (group {group}) would get {name}")
    after = ctx.api(APIGATEWAY, "DescribeDomain", key, region=region)
    if not _serves(ctx, after, name):
        raise DeployError(f"API Gateway {group}/{domain}: the certificate was set, but "
                          f"DescribeDomain shows {after.get('CertificateName')!r}",
                          hint="run `acmeali deploy` again; check the group and domain")
    return TargetResult(f"{domain} (group {group}, {region}) now serves {name}",
                        _details(after, region))


def _details(info: dict[str, Any], region: str) -> dict[str, Any]:
    return {"certificate_id": info.get("CertificateId"),
            "certificate_name": info.get("CertificateName"), "region": region}
