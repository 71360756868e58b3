"""``--dns alidns``: TXT records added and removed through Alibaba Cloud DNS (Alidns).

What lego's alidns provider gets wrong, and this does not:
- removal deletes only the records *this run created*, by RecordId. ``example.com`` and
  ``*.example.com`` put two TXT values on the same ``_acme-challenge.example.com``, and a
  user may keep TXT records of their own there;
- an identical record already present (Alidns answers ``DomainRecordDuplicate``, e.g. on the
  retry of an add whose answer was lost) is found with ``DescribeSubDomainRecords`` (all
  pages of at most 100, the documented maximum) and treated as ours: the value is the digest
  of this challenge's token, so nobody else can have published it, and it is deleted at
  cleanup like any record we added -- no TXT record is left behind;
- the zone is the configured one (``[dns.alidns] zone``, or the older ``dns_zone``), else
  the longest zone *this account hosts* (``DescribeDomains``, every page, matched by
  ``DomainName`` or ``PunyCode``; listed once per run) that contains the name the record
  really goes to (the solver has already followed a CNAME on ``_acme-challenge``).
  ``GetMainDomainName`` splits by public suffix and ignores the account's zones, so a
  delegated sub-zone (``dev.corp.example.com`` hosted here) needs the listing; it is only
  the fallback when the listing is not allowed;
- an IDN zone is sent exactly as Alidns lists it, in Unicode (Alidns answers
  ``InvalidDomainName.NoExist`` to the punycode form); the record's ``RR`` stays ASCII.

CNAME following, the record ledger, propagation and cleanup are ``dns01.Dns01Solver``'s.
The Alibaba SDK is imported only when a call is made.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from acmeali.aliyun.errors import AliyunError
from acmeali.aliyun.services import Service
from acmeali.errors import ChallengeError
from acmeali.solvers.registry import (
    OptionCheck,
    ProviderEnv,
    RecordData,
    TxtRecord,
    dns_name,
)

if TYPE_CHECKING:
    from acmeali.config import AliyunSettings, CertSettings
    from acmeali.solvers.dns01 import Dns01Solver
    from acmeali.ui import UI

log = logging.getLogger(__name__)

ALIDNS = Service("alidns", "alibabacloud_alidns20150109", "alidns.aliyuncs.com", "alidns")

PAGE_SIZE = 100  # DescribeSubDomainRecords and DescribeDomains: "Maximum value: 100" (SDK)
MAX_PAGES = 100
GONE = ("DomainRecordNotBelongToUser", "InvalidRR.NoExist")

# The account's hosted zones, listed once per run (per endpoint/profile): [(as listed, ASCII)].
_HOSTED: dict[tuple[str, ...], list[tuple[str, str]]] = {}
_HOSTED_LOCK = threading.Lock()


def forget_zones() -> None:
    """Drop the per-run zone listings (tests; a long-lived process after zone changes)."""
    with _HOSTED_LOCK:
        _HOSTED.clear()


def ascii_name(name: str) -> str:
    """``name`` in ASCII (punycode), lower case, no trailing dot."""
    labels = name.strip().rstrip(".").lower().split(".")
    return ".".join(lab if lab.isascii() else lab.encode("idna").decode("ascii")
                    for lab in labels)


def listed_form(zone: str) -> str:
    """How Alidns lists a zone: IDN labels in Unicode (AddDomain's doc example lists
    ``DomainName=中文.com`` with ``PunyCode=xn--fsq270a.com``)."""
    labels = zone.strip().rstrip(".").lower().split(".")
    out = []
    for lab in labels:
        try:
            out.append(lab.encode("ascii").decode("idna") if lab.startswith("xn--") else lab)
        except UnicodeError:
            out.append(lab)
    return ".".join(out)


def _under(fqdn: str, zone_ascii: str) -> bool:
    return fqdn == zone_ascii or fqdn.endswith("." + zone_ascii)


def _rr(fqdn: str, zone_ascii: str) -> str:
    return fqdn[: -len(zone_ascii) - 1] if fqdn != zone_ascii else "@"


# Error codes about the caller, not the name asked about (aliyun/errors.py hint_for).
_NOT_ABOUT_THE_ZONE = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "IncompleteSignature",
                       "InvalidSignature", "InvalidSecurityToken", "Forbidden", "NoPermission",
                       "Throttling", "ServiceUnavailable")


class Alidns:
    """The ``alidns`` DNS provider (credentials and endpoints from ``[aliyun]``)."""

    name: ClassVar[str] = "alidns"
    options: ClassVar[Mapping[str, OptionCheck]] = {"zone": dns_name}

    def __init__(self, options: Mapping[str, Any], env: ProviderEnv) -> None:
        from acmeali.config import AliyunSettings

        self.aliyun = env.aliyun or AliyunSettings()
        self.ui = env.ui
        self.zone = str(options.get("zone") or "").strip()
        self._zones: dict[str, tuple[str, str]] = {}

    # ------------------------------------------------------------------ plumbing
    def _call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        from acmeali.aliyun.clients import make_client
        from acmeali.aliyun.retry import call

        return call(make_client(ALIDNS, self.aliyun), action, params)

    def hosted_zones(self, *, fresh: bool = False) -> list[tuple[str, str]] | None:
        """Every zone of the account as (DomainName as listed, ASCII form), from all pages
        of ``DescribeDomains``; None when the RAM identity may not list them."""
        a = self.aliyun
        key = (a.endpoints.get("alidns", ""), a.region, a.site, a.profile or "", a.protocol)
        with _HOSTED_LOCK:
            if key in _HOSTED and not fresh:
                return _HOSTED[key]
        zones: list[tuple[str, str]] = []
        try:
            for page in range(1, MAX_PAGES + 1):
                body = self._call("DescribeDomains", {"PageNumber": page,
                                                      "PageSize": PAGE_SIZE})
                items = (body.get("Domains") or {}).get("Domain") or []
                for item in items:
                    listed = str(item.get("DomainName") or "").strip().rstrip(".").lower()
                    puny = str(item.get("PunyCode") or "").strip().rstrip(".").lower()
                    if listed:
                        zones.append((listed, puny or ascii_name(listed)))
                total = int(body.get("TotalCount") or 0)
                if len(items) < PAGE_SIZE or page * PAGE_SIZE >= total:
                    break
        except AliyunError as exc:
            low = (exc.code or "").lower()
            if not low.startswith(("forbidden", "nopermission", "noauth", "accessdenied")):
                raise ChallengeError(f"Alidns cannot list the account's zones: {exc.message}",
                                     hint=exc.hint) from None
            self.ui.warn("Alidns: not allowed to list the account's zones (grant "
                         "alidns:DescribeDomains, or set dns_zone); guessing the zone with "
                         "GetMainDomainName, which ignores delegated sub-zones")
            return None
        with _HOSTED_LOCK:
            _HOSTED[key] = zones
        return zones

    def zone_of(self, fqdn: str) -> tuple[str, str]:
        """(zone as Alidns lists it, RR) for ``fqdn`` (ASCII): the configured zone when it
        contains the name, else the longest zone the account hosts that does."""
        if fqdn in self._zones:
            return self._zones[fqdn]
        configured = self.zone
        if configured and _under(fqdn, ascii_name(configured)):
            zone, rr = listed_form(configured), _rr(fqdn, ascii_name(configured))
            self._zones[fqdn] = (zone, rr)
            return zone, rr
        hosted = self.hosted_zones()
        if hosted is not None:
            matches = [(listed, puny) for listed, puny in hosted
                       if _under(fqdn, puny) or _under(fqdn, ascii_name(listed))]
            if not matches:  # a zone added since the listing? list once more
                hosted = self.hosted_zones(fresh=True) or []
                matches = [(listed, puny) for listed, puny in hosted
                           if _under(fqdn, puny) or _under(fqdn, ascii_name(listed))]
            if not matches:
                raise ChallengeError(
                    f"no Alidns zone of this Alibaba Cloud account contains {fqdn}",
                    hint="host the zone (or a sub-zone) in this account's Alidns, set "
                         "dns_zone, or CNAME _acme-challenge to a zone hosted here")
            listed, puny = max(matches, key=lambda m: len(m[1]))
            zone_ascii = puny if _under(fqdn, puny) else ascii_name(listed)
            self._zones[fqdn] = (listed, _rr(fqdn, zone_ascii))
            return self._zones[fqdn]
        try:
            body = self._call("GetMainDomainName", {"InputString": fqdn})
        except AliyunError as exc:
            if exc.code and exc.code.startswith(_NOT_ABOUT_THE_ZONE):
                raise  # wrong secret, no permission: the zone is not the problem
            raise ChallengeError(f"Alidns cannot tell the zone of {fqdn}: {exc.message}",
                                 hint=exc.hint or "set dns_zone for this certificate"
                                 ) from None
        zone = listed_form(str(body.get("DomainName") or ""))
        if not zone:
            raise ChallengeError(f"Alidns returned no zone for {fqdn}",
                                 hint="set dns_zone for this certificate")
        rr = str(body.get("RR") or "") or _rr(fqdn, ascii_name(zone))
        self._zones[fqdn] = (zone, rr)
        return zone, rr

    # ------------------------------------------------------------------ DnsProvider
    def add_txt(self, record: TxtRecord) -> RecordData | None:
        zone, rr = self.zone_of(record.fqdn)
        fqdn, value = record.fqdn, record.value
        params = {"DomainName": zone, "RR": rr, "Type": "TXT", "Value": value,
                  "TTL": record.ttl}
        try:
            body = self._call("AddDomainRecord", params)
        except AliyunError as exc:
            if exc.code != "DomainRecordDuplicate":
                raise ChallengeError(f"Alidns: cannot add the TXT record {fqdn}: "
                                     f"{exc.message}", hint=exc.hint) from None
            existing = self._find(zone, rr, value)
            if existing is None:
                raise ChallengeError(f"Alidns says a TXT record {fqdn} with this value exists, "
                                     "but does not list it") from None
            # Same RR, type and value: the digest of this challenge's token, so ours (most
            # often our own add whose answer was lost, then retried); deleted at cleanup.
            log.info("TXT %s already holds the value (record %s); adopting it", fqdn, existing)
            return {"record_id": existing, "zone": zone}
        record_id = str(body.get("RecordId") or "")
        if not record_id:
            raise ChallengeError(f"Alidns AddDomainRecord for {fqdn} returned no RecordId")
        self.ui.detail(f"added TXT {fqdn} (record {record_id})")
        return {"record_id": record_id, "zone": zone}

    def _find(self, zone: str, rr: str, value: str) -> str | None:
        sub = zone if rr == "@" else f"{rr}.{zone}"
        seen = 0
        for page in range(1, MAX_PAGES + 1):
            body = self._call("DescribeSubDomainRecords", {
                "SubDomain": sub, "DomainName": zone, "Type": "TXT",
                "PageNumber": page, "PageSize": PAGE_SIZE})
            records = (body.get("DomainRecords") or {}).get("Record") or []
            for rec in records:
                if str(rec.get("Value", "")).strip('"') == value and rec.get("RecordId"):
                    return str(rec["RecordId"])
            seen += len(records)
            if not records or seen >= int(body.get("TotalCount") or 0):
                return None
        return None

    def remove_txt(self, record: TxtRecord, data: Mapping[str, str]) -> None:
        """Delete by RecordId; without one (a run killed mid-add), find it by its value."""
        record_id = data.get("record_id")
        if not record_id:
            zone, rr = self.zone_of(record.fqdn)
            record_id = self._find(zone, rr, record.value)
            if record_id is None:
                return  # never added, or already gone
        try:
            self._call("DeleteDomainRecord", {"RecordId": record_id})
        except AliyunError as exc:
            if exc.code in GONE:
                return
            raise
        self.ui.detail(f"deleted TXT {record.fqdn} (record {record_id})")


def AlidnsSolver(settings: CertSettings, ui: UI, aliyun: AliyunSettings) -> Dns01Solver:
    """The dns-01 solver with the Alidns provider (the shape library callers and tests use)."""
    from acmeali.solvers.dns01 import Dns01Solver, build_provider

    return Dns01Solver(build_provider("alidns", ProviderEnv(settings=settings, ui=ui,
                                                            aliyun=aliyun)), settings, ui)
