"""``cas``: the certificate in Alibaba Cloud Certificate Management Service (CAS).

CDN, DCDN and ApsaraMQ for MQTT reference certificates by their CAS CertId, so this is
also the first step of those targets. Quirks that shape it:

- ``UploadUserCertificate`` refuses a name already used in the account, and a retried upload
  whose first response was lost must not create a second copy: look for the certificate
  first (``ListUserCertificateOrder`` with ``OrderType=UPLOAD`` — the default ``CPACK``
  lists only purchased quota orders, never uploads), paged, ``Keyword`` = the CN, matched
  by serial number or fingerprint.
- Names are at most 63 characters. Ours are ``acmeali-<cn>-<notBefore>-<fingerprint>``:
  unique per certificate (two issuances in the same minute differ in fingerprint) and
  recognisable, so an upload found again by name is known to be ours.
- The upload carries a ``ClientToken`` derived from the certificate ("used to ensure the
  idempotence of the request", SDK), so a retry after a lost answer returns the first
  CertId instead of making a second copy.
- Old uploads are deleted only when acmeali uploaded them (``meta.cas_uploads`` with
  ``acmeali: true``), no target of this lineage still uses them (the typed
  ``Deployment.cas_ids`` of every target, whatever its kind), more than
  ``cas_keep_previous`` newer ones exist, and CAS says nothing uses them
  (``ListCertificates`` ``UsingProductList``, else ``ListCloudResources``):
  ``DeleteUserCertificate`` is not documented to refuse a certificate in use, and someone
  may have bound an upload to SLB, ALB, WAF, ... by hand. Certificates acmeali did not
  upload are never touched, even when they are the same certificate.
- Nothing depends on the subject CN (Let's Encrypt's ``tlsserver``/``shortlived`` profiles
  have none): names and the listing keyword fall back to the first SAN.

The CAS copy is a per-run service (:class:`CasSession`, ``ctx.cas``): any target calls
``ctx.cas.ensure()`` and reports the CertIds it points at in ``TargetResult.cas_ids``.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

from acmeali.aliyun.errors import AliyunError
from acmeali.aliyun.services import CAS_REGIONS, Service
from acmeali.deployers.base import DeployContext, Target, TargetResult
from acmeali.errors import DeployError
from acmeali.lineage import to_iso, utcnow

CAS = Service("cas", "alibabacloud_cas20200407", "cas.{region}.aliyuncs.com", "yundun-cert",
              site_endpoints={"china": "cas.aliyuncs.com"}, site_region=True)

# What the run's CAS copy calls: reuse look-ups, the upload, and clean-up's "is anything
# using it?" questions before DeleteUserCertificate. Every target with CAS among its
# services goes through the copy and so needs these (Target.ram_policy).
CAS_COPY_RAM_ACTIONS = CAS.ram_actions(
    "ListUserCertificateOrder", "GetUserCertificateDetail", "UploadUserCertificate",
    "ListCertificates", "ListCloudResources", "DeleteUserCertificate")

log = logging.getLogger(__name__)

NAME_PREFIX = "acmeali-"
MAX_NAME = 63
PAGE_SIZE = 50
MAX_PAGES = 200
USE_PAGE_SIZE = 100  # ListCertificates / ListCloudResources ShowSize maximum (SDK)
USE_MAX_PAGES = 20


def cas_name(cn: str, not_before_stamp: str, fingerprint: str) -> str:
    """``acmeali-<cn>-<yyyymmddHHMM>-<fp6>``, the CN trimmed so the whole fits 63 chars."""
    safe = re.sub(r"[^a-z0-9.-]", "-", cn.lower().replace("*", "wildcard"))
    tail = f"-{not_before_stamp}-{fingerprint[:6]}"
    room = MAX_NAME - len(NAME_PREFIX) - len(tail)
    return f"{NAME_PREFIX}{safe[:room].rstrip('.-')}{tail}"


@dataclass(frozen=True)
class CasCert:
    """A certificate held by CAS that this run deploys from."""

    cert_id: int
    identifier: str  # "<CertId>-<region>", what ALB, NLB, MQTT and the console call it
    name: str
    region: str
    uploaded_now: bool


def name_for(ctx: DeployContext) -> str:
    return cas_name(ctx.cert.common_name, ctx.cert.not_before.strftime("%Y%m%d%H%M"),
                    ctx.cert.fingerprint)


def client_token(ctx: DeployContext) -> str:
    """Same certificate, same token: a retried upload is recognised by CAS."""
    return f"acmeali-{ctx.cert.fingerprint[:32]}"


def _norm_hex(value: Any) -> str:
    return str(value or "").replace(":", "").strip().lower()


def _norm_serial(value: Any) -> str:
    return _norm_hex(value).lstrip("0")


def matches(ctx: DeployContext, item: dict[str, Any]) -> bool:
    """Whether a CAS listing/detail entry is our certificate (serial or fingerprint)."""
    prints = {_norm_hex(item.get(k)) for k in ("Fingerprint", "Sha2", "CertSha2")} - {""}
    if prints & {ctx.cert.fingerprint, ctx.cert.sha1}:
        return True
    serial = _norm_serial(item.get("SerialNo"))
    return bool(serial) and serial == _norm_serial(ctx.cert.serial)


def is_gone(exc: AliyunError) -> bool:
    """Whether an error says the resource does not exist (so there is nothing to delete)."""
    code = (exc.code or "").lower()
    return "notfound" in code.replace(".", "") or "notexist" in code or exc.status == 404


class CasSession:
    """The run's CAS copy of the certificate: uploaded (or found) once, cleaned up after."""

    def __init__(self, ctx: DeployContext) -> None:
        self.ctx = ctx
        self.cert: CasCert | None = None
        self.error: Exception | None = None
        self._lock = threading.Lock()

    def ensure(self, key_pem: str | None = None) -> CasCert:
        """The live certificate's CAS entry: reused if already there, uploaded otherwise.

        ``key_pem`` is the key in the form the consuming product wants (default: RSA as
        PKCS#1, which CDN/DCDN document; the MQTT server-certificate guide hosts a PKCS#8
        key); the first caller of the run decides."""
        with self._lock:
            if self.cert is None:
                if self.error is not None:  # one failed attempt per run, not one per target
                    raise self.error
                try:
                    self.cert = _ensure(self.ctx, key_pem or self.ctx.cert.key_alibaba_pem)
                except Exception as exc:
                    self.error = exc
                    raise
            return self.cert

    def finish(self) -> None:
        cleanup_old(self.ctx, self.cert)


def ensure_uploaded(ctx: DeployContext, key_pem: str | None = None) -> CasCert:
    return ctx.cas.ensure(key_pem)



def _region(ctx: DeployContext) -> str:
    return CAS_REGIONS.get(ctx.settings.site, "cn-hangzhou")


def _ensure(ctx: DeployContext, key_pem: str) -> CasCert:
    region = _region(ctx)
    fp = ctx.cert.fingerprint
    # 1. an upload we recorded: one cheap detail call confirms it is still there.
    for entry in [e for e in ctx.meta.cas_uploads if e.get("fingerprint") == fp]:
        try:
            detail = _detail(ctx, int(entry["cert_id"]))
        except AliyunError as exc:
            if not is_gone(exc):
                raise
            log.info("CAS certificate %s is gone; forgetting it", entry["cert_id"])
            if not ctx.dry_run:
                ctx.meta.cas_uploads.remove(entry)
            continue
        if matches(ctx, detail):
            return _cas_from(ctx, int(entry["cert_id"]), detail, entry.get("name", ""), False)
    # 2. the same certificate uploaded earlier (by us whose response was lost, or by anyone).
    found = find_uploaded(ctx)
    if found is not None:
        cert_id = int(found["CertificateId"])
        ours = str(found.get("Name", "")) == name_for(ctx)
        detail = _detail(ctx, cert_id)
        cas = _cas_from(ctx, cert_id, detail, str(found.get("Name", "")), False)
        _remember(ctx, cas, ours=ours)
        return cas
    # 3. upload.
    name = name_for(ctx)
    try:
        body = ctx.api(CAS, "UploadUserCertificate", {
            "Name": name, "Cert": ctx.cert.fullchain_pem, "Key": key_pem,
            "ClientToken": client_token(ctx)})
    except AliyunError as exc:
        # A duplicate name means an earlier attempt got through after all: find it.
        try:
            again = find_uploaded(ctx)
        except AliyunError:
            again = None
        if again is None:
            raise exc from None
        log.info("upload refused (%s) but the certificate is there already", exc.code)
        body = {"CertId": again["CertificateId"]}
    if ctx.dry_run:
        return CasCert(cert_id=0, identifier=f"<new>-{region}", name=name, region=region,
                       uploaded_now=True)
    cert_id = int(body.get("CertId") or 0)
    if not cert_id:
        raise DeployError("CAS UploadUserCertificate returned no CertId")
    detail = _detail(ctx, cert_id)
    if not matches(ctx, detail):
        raise DeployError(f"CAS certificate {cert_id} read back does not match the uploaded "
                          f"certificate (serial {detail.get('SerialNo')!r})")
    cas = _cas_from(ctx, cert_id, detail, name, True)
    _remember(ctx, cas, ours=True)
    return cas


def _detail(ctx: DeployContext, cert_id: int) -> dict[str, Any]:
    # CertFilter=true: the answer leaves out the certificate and key bodies.
    return ctx.api(CAS, "GetUserCertificateDetail", {"CertId": cert_id, "CertFilter": True})


def _cas_from(ctx: DeployContext, cert_id: int, detail: dict[str, Any], name: str,
              uploaded_now: bool) -> CasCert:
    region = _region(ctx)
    identifier = str(detail.get("CertIdentifier") or f"{cert_id}-{region}")
    return CasCert(cert_id=cert_id, identifier=identifier, name=str(detail.get("Name") or name),
                   region=region, uploaded_now=uploaded_now)


def _remember(ctx: DeployContext, cas: CasCert, *, ours: bool) -> None:
    if ctx.dry_run:
        return
    for entry in ctx.meta.cas_uploads:
        if int(entry.get("cert_id", 0)) == cas.cert_id:
            entry.update(identifier=cas.identifier, fingerprint=ctx.cert.fingerprint)
            return
    ctx.meta.cas_uploads.append({
        "cert_id": cas.cert_id, "identifier": cas.identifier, "name": cas.name,
        "region": cas.region, "fingerprint": ctx.cert.fingerprint, "serial": ctx.cert.serial,
        "not_before": to_iso(ctx.cert.not_before), "not_after": to_iso(ctx.cert.not_after),
        "uploaded": to_iso(utcnow()), "acmeali": ours,
    })


def find_uploaded(ctx: DeployContext) -> dict[str, Any] | None:
    """Page through the account's uploaded certificates with this CN; first match wins."""
    keyword = ctx.cert.common_name.removeprefix("*.")
    seen = 0
    for page in range(1, MAX_PAGES + 1):
        body = ctx.api(CAS, "ListUserCertificateOrder", {
            "OrderType": "UPLOAD", "Keyword": keyword, "CurrentPage": page,
            "ShowSize": PAGE_SIZE})
        items = body.get("CertificateOrderList") or []
        for item in items:
            if matches(ctx, item) and item.get("CertificateId"):
                return dict(item)
        seen += len(items)
        total = int(body.get("TotalCount") or 0)
        if not items or seen >= total:
            return None
    return None


@dataclass(frozen=True)
class Cas(Target):
    """``cas``: the certificate uploaded to CAS (and kept there while anything uses it)."""

    kind = "cas"
    usage = ("cas",)
    summary = "upload to Certificate Management Service (CAS)"
    services = (CAS,)
    ram_actions = CAS_COPY_RAM_ACTIONS

    spec: str

    @classmethod
    def parse(cls, spec: str, arg: str) -> Cas:
        if arg:
            raise cls.fail(spec, "'cas' takes no argument")
        return cls(spec)

    def deploy(self, ctx: DeployContext) -> TargetResult:
        cas = ctx.cas.ensure()
        if ctx.dry_run:
            return TargetResult(f"would upload as {cas.name}" if cas.uploaded_now
                                else f"already in CAS as CertId {cas.cert_id}")
        verb = "uploaded" if cas.uploaded_now else "already in CAS"
        return TargetResult(f"{verb} as CertId {cas.cert_id} ({cas.identifier})",
                            {"cert_id": cas.cert_id, "identifier": cas.identifier,
                             "name": cas.name}, frozenset({cas.cert_id}))

    def check(self, ctx: DeployContext) -> bool:
        return find_uploaded(ctx) is not None


def cert_ids_in_use(ctx: DeployContext, current: CasCert | None = None) -> set[int]:
    """CAS CertIds any target of this lineage still points at (``Deployment.cas_ids``)."""
    used: set[int] = set()
    for dep in ctx.meta.deployments.values():
        used.update(int(i) for i in dep.cas_ids)
    if current is not None:
        used.add(current.cert_id)
    return used


def used_by(ctx: DeployContext, cert_id: int, name: str) -> list[str]:
    """The cloud products CAS says use ``cert_id``: ``ListCertificates`` (Keyword = the
    upload's name) ``UsingProductList``; when the listing does not show the certificate,
    ``ListCloudResources`` for its CertId. Raises when CAS cannot be asked."""
    for page in range(1, USE_MAX_PAGES + 1):
        body = ctx.api(CAS, "ListCertificates", {
            "Keyword": name or str(cert_id), "CertificateSource": "UPLOAD",
            "CurrentPage": page, "ShowSize": USE_PAGE_SIZE})
        items = body.get("CertificateList") or []
        for item in items:
            if str(item.get("CertificateId") or "") == str(cert_id):
                return [str(p) for p in item.get("UsingProductList") or []]
        if len(items) < USE_PAGE_SIZE:
            break
    body = ctx.api(CAS, "ListCloudResources", {"CertIds": [cert_id],
                                                 "ShowSize": USE_PAGE_SIZE})
    return sorted({str(r.get("CloudProduct") or "?") for r in body.get("Data") or []
                   if str(r.get("CertId") or "") == str(cert_id)})


def cleanup_old(ctx: DeployContext, current_cert: CasCert | None) -> list[int]:
    """Delete our older uploads beyond ``cas_keep_previous`` that nothing uses; never raises.

    Returns the CertIds deleted. Runs after every target of the run, so a target that
    failed this time (and so still serves the old certificate) keeps it alive.
    """
    if not ctx.settings.cas_cleanup_old or ctx.dry_run or current_cert is None:
        return []
    current = current_cert.cert_id
    # Newest first: by notBefore, then by position in the list (append order = upload
    # order), because two certificates issued within one minute tie on the timestamps.
    ranked = [(str(e.get("not_before") or ""), i, e) for i, e in enumerate(ctx.meta.cas_uploads)
              if e.get("acmeali") and int(e.get("cert_id", 0)) != current]
    ranked.sort(key=lambda r: (r[0], r[1]), reverse=True)
    ours = [e for _, _, e in ranked]
    in_use = cert_ids_in_use(ctx, current_cert)
    deleted: list[int] = []
    for entry in ours[ctx.settings.cas_keep_previous:]:
        cert_id = int(entry["cert_id"])
        if cert_id in in_use:
            continue
        try:
            users = used_by(ctx, cert_id, str(entry.get("name") or ""))
        except Exception as exc:  # unknown means in use: keep it, say so, never fail
            render = getattr(exc, "render", None)
            ctx.ui.warn(f"kept the old CAS certificate {cert_id}: cannot tell whether it is "
                        f"in use ({render() if callable(render) else exc})")
            continue
        if users:
            ctx.ui.info(f"kept the old CAS certificate {cert_id} ({entry.get('name')}): "
                        f"still used by {', '.join(users)}")
            continue
        try:
            ctx.api(CAS, "DeleteUserCertificate", {"CertId": cert_id})
        except AliyunError as exc:
            if not is_gone(exc):
                ctx.ui.warn(f"could not delete the old CAS certificate {cert_id} "
                            f"({entry.get('name')}): {exc.render()}")
                continue
        except Exception as exc:  # cleanup must never fail a deploy
            ctx.ui.warn(f"could not delete the old CAS certificate {cert_id}: {exc}")
            continue
        ctx.meta.cas_uploads.remove(entry)
        deleted.append(cert_id)
        ctx.ui.info(f"deleted the old CAS certificate {cert_id} ({entry.get('name')})")
    return deleted
