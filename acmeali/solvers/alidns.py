"""dns-01 through Alibaba Cloud DNS (Alidns): TXT records added and removed by API.

What lego's alidns provider gets wrong, and this does not:
- cleanup deletes only the records *this run created*, by RecordId. ``example.com`` and
  ``*.example.com`` put two TXT values on the same ``_acme-challenge.example.com``, and a
  user may keep TXT records of their own there;
- an identical record already present (Alidns answers ``DomainRecordDuplicate``) is found
  with ``DescribeSubDomainRecords`` (all pages) and reused, but not deleted afterwards,
  because it was there before us;
- the zone is the configured ``dns_zone`` or what ``GetMainDomainName`` says, after
  following a CNAME on ``_acme-challenge`` (delegation of the challenge to another zone,
  a common way to keep DNS write access away from the main zone).

Every record is published before any waiting; propagation is checked by
``DnsSolver.wait_ready`` (authoritative servers, or ``dns_resolvers``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from acmeali.aliyun.errors import AliyunError
from acmeali.config import AliyunSettings, CertSettings
from acmeali.errors import ChallengeError
from acmeali.solvers.base import ChallengeTask
from acmeali.solvers.dns01 import DnsSolver
from acmeali.ui import UI

log = logging.getLogger(__name__)

PAGE_SIZE = 500
MAX_PAGES = 100
CNAME_LOOKUP_LIFETIME = 10.0


# Error codes about the caller, not the name asked about (aliyun/errors.py hint_for).
_NOT_ABOUT_THE_ZONE = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "IncompleteSignature",
                       "InvalidSignature", "InvalidSecurityToken", "Forbidden", "NoPermission",
                       "Throttling", "ServiceUnavailable")


@dataclass
class _Record:
    zone: str
    rr: str
    fqdn: str
    value: str
    record_id: str
    created: bool  # False: it was there already; never deleted by us


class AlidnsSolver(DnsSolver):
    """The ``--dns alidns`` solver (Solver protocol, dns-01)."""

    def __init__(self, settings: CertSettings, ui: UI, aliyun: AliyunSettings) -> None:
        super().__init__(settings, ui)
        self.aliyun = aliyun
        self._records: dict[tuple[str, str], _Record] = {}
        self._zones: dict[str, tuple[str, str]] = {}
        self._targets: dict[str, str] = {}

    # ------------------------------------------------------------------ plumbing
    def _call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        from acmeali.aliyun.clients import make_client
        from acmeali.aliyun.retry import call

        return call(make_client("alidns", self.aliyun), action, params)

    def record_name(self, txt_name: str) -> str:
        """Where the TXT record goes: the end of the CNAME chain from ``txt_name``."""
        name = txt_name.rstrip(".").lower()
        cached = self._targets.get(name)
        if cached:
            return cached
        import dns.exception

        from acmeali.solvers import dns01

        target = name
        try:
            resolver = dns01.make_resolver(self.settings.dns_resolvers or None,
                                       CNAME_LOOKUP_LIFETIME)
            target = dns01.follow_cname(name, resolver)[-1].lower()
        except ChallengeError:
            raise
        except (dns.exception.DNSException, OSError) as exc:
            log.debug("CNAME lookup of %s failed (%s); using the name itself", name, exc)
        if target != name:
            self.ui.info(f"{name} is a CNAME to {target}; the TXT record goes there")
        self._targets[name] = target
        return target

    def zone_of(self, fqdn: str) -> tuple[str, str]:
        """(zone, RR) for ``fqdn``: the configured zone when it contains the name, else the
        main domain Alidns reports (``GetMainDomainName``)."""
        if fqdn in self._zones:
            return self._zones[fqdn]
        zone = (self.settings.dns_zone or "").rstrip(".").lower()
        if zone and (fqdn == zone or fqdn.endswith("." + zone)):
            rr = fqdn[: -len(zone) - 1] if fqdn != zone else "@"
        else:
            try:
                body = self._call("GetMainDomainName", {"InputString": fqdn})
            except AliyunError as exc:
                if exc.code and exc.code.startswith(_NOT_ABOUT_THE_ZONE):
                    raise  # wrong secret, no permission: the zone is not the problem
                raise ChallengeError(f"Alidns cannot tell the zone of {fqdn}: {exc.message}",
                                     hint=exc.hint or "set dns_zone for this certificate"
                                     ) from None
            zone = str(body.get("DomainName") or "").rstrip(".").lower()
            rr = str(body.get("RR") or "")
            if not zone:
                raise ChallengeError(f"Alidns returned no zone for {fqdn}",
                                     hint="set dns_zone for this certificate")
            if not rr:
                rr = fqdn[: -len(zone) - 1] if fqdn != zone else "@"
        self._zones[fqdn] = (zone, rr)
        return zone, rr

    # ------------------------------------------------------------------ Solver protocol
    def present(self, tasks: Sequence[ChallengeTask]) -> None:
        """Add every TXT record (reusing identical ones); no waiting here."""
        for task in tasks:
            fqdn = self.record_name(task.txt_name)
            key = (fqdn, task.txt_value)
            if key in self._records:
                continue
            zone, rr = self.zone_of(fqdn)
            self._records[key] = self._add(zone, rr, fqdn, task.txt_value)

    def _add(self, zone: str, rr: str, fqdn: str, value: str) -> _Record:
        params = {"DomainName": zone, "RR": rr, "Type": "TXT", "Value": value,
                  "TTL": self.settings.dns_ttl}
        try:
            body = self._call("AddDomainRecord", params)
        except AliyunError as exc:
            if exc.code != "DomainRecordDuplicate":
                raise ChallengeError(f"Alidns: cannot add the TXT record {fqdn}: "
                                     f"{exc.message}", hint=exc.hint) from None
            existing = self._find(zone, fqdn, value)
            if existing is None:
                raise ChallengeError(f"Alidns says a TXT record {fqdn} with this value exists, "
                                     "but does not list it") from None
            log.info("TXT %s already holds the value (record %s); reusing it", fqdn, existing)
            return _Record(zone, rr, fqdn, value, existing, created=False)
        record_id = str(body.get("RecordId") or "")
        if not record_id:
            raise ChallengeError(f"Alidns AddDomainRecord for {fqdn} returned no RecordId")
        self.ui.detail(f"added TXT {fqdn} (record {record_id})")
        return _Record(zone, rr, fqdn, value, record_id, created=True)

    def _find(self, zone: str, fqdn: str, value: str) -> str | None:
        seen = 0
        for page in range(1, MAX_PAGES + 1):
            body = self._call("DescribeSubDomainRecords", {
                "SubDomain": fqdn, "DomainName": zone, "Type": "TXT",
                "PageNumber": page, "PageSize": PAGE_SIZE})
            records = (body.get("DomainRecords") or {}).get("Record") or []
            for rec in records:
                if str(rec.get("Value", "")).strip('"') == value and rec.get("RecordId"):
                    return str(rec["RecordId"])
            seen += len(records)
            if not records or seen >= int(body.get("TotalCount") or 0):
                return None
        return None

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        """Delete the records this solver created for ``tasks``; warns, never raises."""
        for task in tasks:
            try:
                fqdn = self._targets.get(task.txt_name.rstrip(".").lower(),
                                         task.txt_name.rstrip(".").lower())
                rec = self._records.pop((fqdn, task.txt_value), None)
                if rec is None or not rec.created:
                    continue
                self._call("DeleteDomainRecord", {"RecordId": rec.record_id})
                self.ui.detail(f"deleted TXT {fqdn} (record {rec.record_id})")
            except AliyunError as exc:
                if exc.code in ("DomainRecordNotBelongToUser", "InvalidRR.NoExist"):
                    continue
                self.ui.warn(f"could not delete the TXT record {task.txt_name}: {exc.render()}")
            except Exception as exc:  # cleanup must never raise
                self.ui.warn(f"could not delete the TXT record {task.txt_name}: {exc}")
