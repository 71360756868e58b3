"""``live:<domain>`` and ``live:auto``: the HTTPS certificate of ApsaraVideo Live domains.

Wire names from alibabacloud_live20161101 (3.0.2) and the API pages
(help.aliyun.com/zh/live/developer-reference/api-live-2016-11-01-setlivedomaincertificate):

- ``SetLiveDomainCertificate`` has no CertId: ``CertType=cas`` selects the CAS certificate
  by ``CertName``. The page also says ``SSLProtocol=on`` needs ``SSLPub`` and ``SSLPri``
  (``SSLPub.MissingParameter``), so the chain and key go along too — the key as
  ``key_alibaba_pem`` (an RSA key as PKCS#1 ``RSA PRIVATE KEY``, the form Live's
  certificate-format page asks for). Binding by CAS name (not ``upload``) keeps no
  product-side copy that a renewal would orphan; the CAS clean-up deletes the old one once
  no target uses it.
- ``DescribeLiveDomainCertificateInfo`` reads it back: ``SSLProtocol``, ``CertName``,
  ``CertType`` and ``SSLPub`` (compared by the leaf's fingerprint).
- ``DescribeLiveUserDomains`` lists the domains (PageSize at most 50); a row carries no
  HTTPS flag, so ``auto`` reads each covered online domain's certificate info and binds only
  those with HTTPS on.

Live's endpoint is ``live.aliyuncs.com`` for every region (the SDK's endpoint map).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acmeali.aliyun.services import Service
from acmeali.deployers.base import DeployContext
from acmeali.deployers.cas import CAS
from acmeali.deployers.domainbind import DomainTarget, cert_form, cert_info, leaf_fingerprint, pages

LIVE = Service("live", "alibabacloud_live20161101", "live.aliyuncs.com", "live")

PAGE_SIZE = 50  # DescribeLiveUserDomains' maximum



@dataclass(frozen=True)
class Live(DomainTarget):
    """``live:<domain>`` / ``live:auto``."""

    kind = "live"
    usage = ("live:<domain>", "live:auto")
    summary = ("ApsaraVideo Live domain(s) (auto: every covered one already on HTTPS), "
               "by CAS certificate name")
    services = (CAS, LIVE)
    ram_actions = LIVE.ram_actions("SetLiveDomainCertificate",
                                   "DescribeLiveDomainCertificateInfo", "DescribeLiveUserDomains")
    label = "Live"

    def read(self, ctx: DeployContext, domain: str) -> dict[str, Any] | None:
        body = ctx.api(LIVE, "DescribeLiveDomainCertificateInfo", {"DomainName": domain})
        return cert_info(body, domain)

    def serves(self, ctx: DeployContext, info: dict[str, Any] | None) -> bool:
        if not info or str(info.get("SSLProtocol") or "").lower() != "on":
            return False
        printed = leaf_fingerprint(info.get("SSLPub"))
        if printed is not None:
            return printed == ctx.cert.fingerprint
        return str(info.get("CertName") or "") == ctx.cas.ensure().name

    def write(self, ctx: DeployContext, domain: str) -> None:
        cas = ctx.cas.ensure()
        ctx.api(LIVE, "SetLiveDomainCertificate", {
            "DomainName": domain, "SSLProtocol": "on", "CertType": "cas",
            "CertName": cas.name, "SSLPub": ctx.cert.fullchain_pem,
            "SSLPri": ctx.cert.key_alibaba_pem})

    def https_domains(self, ctx: DeployContext) -> dict[str, dict[str, Any] | None]:
        rows = pages(lambda p: ctx.api(LIVE, "DescribeLiveUserDomains", p), PAGE_SIZE)
        out: dict[str, dict[str, Any] | None] = {}
        for row in rows:
            name = str(row.get("DomainName") or "").lower()
            if not name or str(row.get("LiveDomainStatus") or "").lower() != "online":
                continue
            if not ctx.cert.covers(cert_form(name)):
                continue  # not ours to bind: spare it the per-domain read
            info = self.read(ctx, name)
            if info and str(info.get("SSLProtocol") or "").lower() == "on":
                out[name] = info
        return out
