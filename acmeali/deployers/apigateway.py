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

from typing import TYPE_CHECKING, Any

from acmeali.deployers.base import DeployContext, TargetResult
from acmeali.deployers.cas import name_for
from acmeali.errors import DeployError

if TYPE_CHECKING:
    from acmeali.targets import Target


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


def deploy(ctx: DeployContext, target: Target) -> TargetResult:
    region = target.region or ctx.settings.region
    group = target.group_id or ""
    domain = target.domain or ""
    if not ctx.cert.covers(domain):
        raise DeployError(f"the certificate ({', '.join(ctx.cert.names)}) does not cover "
                          f"{domain}, so API Gateway would serve a name mismatch")
    key = {"GroupId": group, "DomainName": domain}
    name = name_for(ctx)
    before = ctx.api("apigateway", "DescribeDomain", key, region=region)
    if _serves(ctx, before, name):
        return TargetResult(f"{domain} (group {group}) already serves this certificate",
                            _details(before, region))
    ctx.api("apigateway", "SetDomainCertificate", {
        **key, "CertificateName": name, "CertificateBody": ctx.cert.fullchain_pem,
        "CertificatePrivateKey": ctx.cert.key_alibaba_pem}, region=region)
    if ctx.dry_run:
        return TargetResult(f"{domain} (group {group}) would get {name}")
    after = ctx.api("apigateway", "DescribeDomain", key, region=region)
    if not _serves(ctx, after, name):
        raise DeployError(f"API Gateway {group}/{domain}: the certificate was set, but "
                          f"DescribeDomain shows {after.get('CertificateName')!r}",
                          hint="run `acmeali deploy` again; check the group and domain")
    return TargetResult(f"{domain} (group {group}, {region}) now serves {name}",
                        _details(after, region))


def _details(info: dict[str, Any], region: str) -> dict[str, Any]:
    return {"certificate_id": info.get("CertificateId"),
            "certificate_name": info.get("CertificateName"), "region": region}
