"""``vod:<domain>`` and ``vod:auto``: the HTTPS certificate of ApsaraVideo VOD domains.

Wire names from alibabacloud_vod20170321 (3.12.1) and the API page
(alibabacloud.com/help/en/vod/developer-reference/api-vod-2017-03-21-setvoddomainsslcertificate,
"available only in the China (Shanghai) region", so the endpoint is
``vod.cn-shanghai.aliyuncs.com`` whatever ``[aliyun] region`` says):

- ``SetVodDomainSSLCertificate`` takes the CAS certificate by reference: ``CertType=cas``,
  ``CertId`` and ``CertRegion`` (the CAS site's region, cn-hangzhou or ap-southeast-1), as
  CDN does — nothing is copied product-side.
- ``DescribeVodDomainCertificateInfo`` reads it back (``CertId``,
  ``ServerCertificateStatus``, ``ServerCertificate`` compared by the leaf's fingerprint).
- ``DescribeVodUserDomains`` (PageSize at most 50) lists the domains with ``DomainStatus``
  and ``SslProtocol``: ``auto`` binds the online ones already on HTTPS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acmeali.aliyun.services import Service
from acmeali.deployers.base import DeployContext
from acmeali.deployers.cas import CAS
from acmeali.deployers.domainbind import DomainTarget, cert_info, leaf_fingerprint, pages

VOD = Service("vod", "alibabacloud_vod20170321", "vod.cn-shanghai.aliyuncs.com", "vod")

PAGE_SIZE = 50  # DescribeVodUserDomains' maximum


@dataclass(frozen=True)
class Vod(DomainTarget):
    """``vod:<domain>`` / ``vod:auto``."""

    kind = "vod"
    usage = ("vod:<domain>", "vod:auto")
    summary = ("ApsaraVideo VOD domain(s) (auto: every covered one already on HTTPS), "
               "by reference to the CAS certificate")
    services = (CAS, VOD)
    ram_actions = VOD.ram_actions("SetVodDomainSSLCertificate",
                                  "DescribeVodDomainCertificateInfo", "DescribeVodUserDomains")
    label = "VOD"

    def read(self, ctx: DeployContext, domain: str) -> dict[str, Any] | None:
        body = ctx.api(VOD, "DescribeVodDomainCertificateInfo", {"DomainName": domain})
        return cert_info(body, domain)

    def serves(self, ctx: DeployContext, info: dict[str, Any] | None) -> bool:
        if not info or str(info.get("ServerCertificateStatus") or "").lower() != "on":
            return False
        if str(info.get("CertId") or "") != str(ctx.cas.ensure().cert_id):
            return False
        printed = leaf_fingerprint(info.get("ServerCertificate"))
        return printed is None or printed == ctx.cert.fingerprint

    def write(self, ctx: DeployContext, domain: str) -> None:
        cas = ctx.cas.ensure()
        ctx.api(VOD, "SetVodDomainSSLCertificate", {
            "DomainName": domain, "SSLProtocol": "on", "CertType": "cas",
            "CertId": cas.cert_id, "CertRegion": cas.region, "CertName": cas.name})

    def https_domains(self, ctx: DeployContext) -> dict[str, dict[str, Any] | None]:
        rows = pages(lambda p: ctx.api(VOD, "DescribeVodUserDomains", p), PAGE_SIZE)
        return {str(r["DomainName"]).lower(): None for r in rows
                if r.get("DomainName")
                and str(r.get("DomainStatus") or "").lower() == "online"
                and str(r.get("SslProtocol") or "").lower() == "on"}
