"""``oss:`` custom domains (CNAMEs) of an OSS bucket, by CAS identifier.

- ``oss:[<region>:]<bucket>:<domain>``: ``PutCname`` with ``CertificateConfiguration``
  ``CertId`` = ``<CertId>-<region>`` (OSS then fetches the certificate and key from CAS on
  your behalf, which is why the RAM policy needs the CAS read actions too).
- ``oss:[<region>:]<bucket>:auto``: every custom domain of the bucket that already has a
  certificate (``ListCname``) and that the certificate covers.

``PreviousCertId`` and ``Force`` (PutCname reference): a request that names no
``PreviousCertId`` must set ``Force=true``; one that names it is refused unless it is the
domain's current certificate (error 0018-00000209). acmeali sends the ``CertId`` it just
read as ``PreviousCertId`` when the domain has one, so a certificate someone changed in
between is not overwritten blindly (the call fails, is recorded, and the next run reads
again), and ``Force=true`` only for a domain without any certificate, where there is
nothing to overwrite. Read back with ``ListCname``.

OSS is not an RPC/ROA API: it has its own signature (V4, ``OSS4-HMAC-SHA256``), XML bodies
and bucket endpoints (``oss-<region>.aliyuncs.com``; an IP endpoint such as a test
emulator is addressed path-style). The official ``alibabacloud-oss-v2`` SDK does all of
that; it is imported only here, on the deploy path, and gets its credentials from the same
chain as every other client (:func:`acmeali.aliyun.clients.credentials_provider`). Sources:
alibabacloud_oss_v2 1.4.1 (operations/bucket_cname.py put_cname: POST /?cname&comp=add,
list_cname: GET /?cname; models/bucket_cname.py CertificateConfiguration: CertId,
PreviousCertId, Force; CnameInfo.Certificate.CertId) and the OSS PutCname API reference.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from acmeali.aliyun.errors import AliyunError, hint_for
from acmeali.aliyun.services import Service
from acmeali.deployers.base import DeployContext, Target, TargetResult, split_region
from acmeali.deployers.cas import CAS, CasCert
from acmeali.deployers.many import bind_many
from acmeali.errors import DeployError

OSS = Service("oss", "alibabacloud_oss_v2", "oss-{region}.aliyuncs.com", "oss")

CONFIRM_TRIES = 10
CONFIRM_INTERVAL = 0.5

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], Any] = {}


def _client(ctx: DeployContext, region: str) -> Any:
    """One oss-v2 client per (endpoint, region, protocol, profile, environment keys), as
    clients.make_client keys the other products' clients."""
    from acmeali.aliyun.clients import _env_fingerprint

    endpoint = OSS.endpoint_for(ctx.settings, region)
    key = (endpoint, region, ctx.settings.protocol, ctx.settings.profile, _env_fingerprint())
    with _lock:
        found = _clients.get(key)
        if found is not None:
            return found
        import alibabacloud_oss_v2 as oss

        from acmeali.aliyun.clients import credentials_provider

        chain = credentials_provider(ctx.settings.profile)

        def creds() -> Any:
            c = chain.get_credentials()
            return oss.Credentials(c.get_access_key_id(), c.get_access_key_secret(),
                                               c.get_security_token() or None)

        cfg = oss.config.load_default()
        cfg.credentials_provider = oss.credentials.CredentialsProviderFunc(creds)
        cfg.region = region
        cfg.endpoint = endpoint
        cfg.disable_ssl = ctx.settings.protocol == "http"
        cfg.user_agent = "acmeali"
        found = _clients[key] = oss.Client(cfg)
        return found


def _call(ctx: DeployContext, region: str, action: str, request: Any) -> Any:
    client = _client(ctx, region)
    method = {"ListCname": client.list_cname, "PutCname": client.put_cname}[action]
    try:
        return method(request)
    except Exception as exc:
        inner = exc.unwrap() if hasattr(exc, "unwrap") else exc
        code = str(getattr(inner, "code", "") or "") or None
        raise AliyunError(service=OSS.name, action=action, code=code,
                          message=str(getattr(inner, "message", "") or type(inner).__name__),
                          request_id=str(getattr(inner, "request_id", "") or "") or None,
                          status=getattr(inner, "status_code", None),
                          hint=hint_for(code, OSS, action)) from None


@dataclass(frozen=True)
class Oss(Target):
    kind = "oss"
    usage: ClassVar[tuple[str, ...]] = ("oss:[<region>:]<bucket>:<domain>",
                                        "oss:[<region>:]<bucket>:auto")
    summary = ("OSS bucket custom domain(s) (auto: every covered one that has a "
               "certificate), by CAS identifier")
    services = (CAS, OSS)
    # PutCname with a CAS certificate: OSS reads the certificate out of CAS on the caller's
    # behalf, and its reference requires these three CAS actions of the caller too.
    ram_actions = (*OSS.ram_actions("PutCname", "ListCname"),
                   *CAS.ram_actions("DescribeSSLCertificatePrivateKey",
                                    "DescribeSSLCertificatePublicKeyDetail",
                                    "CreateSSLCertificate"))

    spec: str
    bucket: str
    domain: str
    region: str | None = None

    @classmethod
    def parse(cls, spec: str, arg: str) -> Oss:
        region, rest = split_region(arg.split(":"), 2)
        if len(rest) != 2 or not all(rest):
            raise cls.fail(spec, "malformed")
        return cls(spec, rest[0], rest[1].lower().rstrip("."), region)

    def plan(self) -> str:
        what = "every covered HTTPS custom domain" if self.domain == "auto" else self.domain
        return f"point OSS bucket {self.bucket} {what} at the CAS certificate"

    def _region(self, ctx: DeployContext) -> str:
        return self.region or ctx.settings.region

    def _cnames(self, ctx: DeployContext) -> dict[str, str]:
        """domain -> the CertId it serves ("" without a certificate)."""
        import alibabacloud_oss_v2 as oss

        result = _call(ctx, self._region(ctx), "ListCname",
                       oss.models.ListCnameRequest(bucket=self.bucket))
        out: dict[str, str] = {}
        for info in result.cnames or []:
            cert = info.certificate
            out[str(info.domain or "").lower()] = str(cert.cert_id or "") if cert else ""
        return out

    def _bind(self, ctx: DeployContext, domain: str) -> tuple[str, Any]:
        import alibabacloud_oss_v2 as oss

        cas: CasCert = ctx.cas.ensure()
        where = f"OSS {self.bucket} {domain}"
        if not ctx.cert.covers(domain):
            raise DeployError(f"the certificate ({', '.join(ctx.cert.names)}) does not cover "
                              f"{domain}, so OSS would serve a name mismatch")
        cnames = self._cnames(ctx)
        if domain not in cnames:
            raise DeployError(f"{where}: the bucket has no such custom domain",
                              hint="add (and verify) the domain on the bucket first")
        current = cnames[domain]
        if current == cas.identifier:
            return f"{where} already serves {cas.identifier}", cas.cert_id
        config = oss.models.CertificateConfiguration(cert_id=cas.identifier)
        if current:
            config.previous_cert_id = current
        else:  # PutCname reference: without PreviousCertId, Force must be true
            config.force = True
        request = oss.models.PutCnameRequest(
            bucket=self.bucket, bucket_cname_configuration=oss.models.BucketCnameConfiguration(
                cname=oss.models.Cname(domain=domain, certificate_configuration=config)))
        if ctx.dry_run:
            ctx.api.planned.append((OSS.name, "PutCname", {"Bucket": self.bucket,
                                                           "Domain": domain,
                                                           "CertId": cas.identifier}))
            ctx.ui.result(f"  would call oss PutCname Bucket={self.bucket} Domain={domain} "
                          f"CertId={cas.identifier}" + (f" PreviousCertId={current}"
                                                        if current else " Force=true"))
            return f"{where} would serve {cas.identifier}", cas.cert_id
        _call(ctx, self._region(ctx), "PutCname", request)
        for attempt in range(CONFIRM_TRIES):
            if self._cnames(ctx).get(domain) == cas.identifier:
                return f"{where} now serves {cas.identifier}", cas.cert_id
            if attempt + 1 < CONFIRM_TRIES:
                time.sleep(CONFIRM_INTERVAL)
        raise DeployError(f"{where}: the certificate was set, but ListCname does not show "
                          f"{cas.identifier}", hint="run `acmeali deploy` again")

    def deploy(self, ctx: DeployContext) -> TargetResult:
        if self.domain == "auto":
            covered = sorted(d for d, cert in self._cnames(ctx).items()
                             if cert and ctx.cert.covers(d))
            return bind_many(ctx, self.spec, f"OSS {self.bucket} custom domain", covered,
                             lambda d: self._bind(ctx, d))
        message, cert_id = self._bind(ctx, self.domain)
        return TargetResult(message, {"identifier": ctx.cas.ensure().identifier},
                            frozenset() if ctx.dry_run else frozenset({cert_id}))

    def check(self, ctx: DeployContext) -> bool:
        ident = ctx.cas.ensure().identifier
        cnames = self._cnames(ctx)
        if self.domain == "auto":
            dep = ctx.meta.deployments.get(self.spec)
            names = list(((dep.details if dep else {}) or {}).get("bound") or {})
        else:
            names = [self.domain]
        return all(cnames.get(d) == ident for d in names)
