"""The Alidns dns-01 solver against the emulator (records forwarded to challtestsrv)."""

from __future__ import annotations

import secrets
import time
import uuid

import pytest

from acmeali.config import CertSettings
from acmeali.errors import ChallengeError
from acmeali.solvers import make_solver
from acmeali.solvers.alidns import Alidns, AlidnsSolver
from acmeali.solvers.base import ChallengeTask
from tests.emulator import AliyunEmulator
from tests.peers.pebble import Pebble
from tests.test_deploy_helpers import captured, make_ui, settings_for


def _zone() -> str:
    """A zone name no other test in the session uses (challtestsrv is shared)."""
    return f"z{uuid.uuid4().hex[:10]}.test"


def _task(domain: str) -> ChallengeTask:
    return ChallengeTask(identifier=domain, token=secrets.token_urlsafe(16),
                         key_authorization="x", txt_name=f"_acme-challenge.{domain}",
                         txt_value=secrets.token_urlsafe(32))


def _settings(pebble: Pebble, **kw: object) -> CertSettings:
    base: dict[str, object] = {"challenge": "dns-01", "dns": "alidns",
                               "dns_resolvers": (pebble.challtestsrv.dns_address,),
                               "dns_timeout": 20.0}
    base.update(kw)
    return CertSettings(**base)  # type: ignore[arg-type]


def _txt(emu: AliyunEmulator, zone: str) -> dict[str, str]:
    """RecordId -> value of the zone's TXT records."""
    return {rid: r["Value"] for rid, r in emu.state.dns_zones[zone].items() if r["Type"] == "TXT"}


def _add_by_hand(emu: AliyunEmulator, zone: str, rr: str, value: str) -> str:
    from acmeali.aliyun import call, make_client

    body = call(make_client("alidns", settings_for(emu)), "AddDomainRecord",
                {"DomainName": zone, "RR": rr, "Type": "TXT", "Value": value})
    return str(body["RecordId"])


def test_apex_and_wildcard_share_a_name_and_foreign_records_stay(
        emu: AliyunEmulator, pebble: Pebble) -> None:
    zone = _zone()
    emu.add_dns_zone(zone)
    apex, wild = _task(zone), _task(zone)  # example.com and *.example.com: same txt_name
    foreign = _add_by_hand(emu, zone, "_acme-challenge", "someone-elses-value")
    solver = make_solver(_settings(pebble, dns_ttl=600), make_ui(), settings_for(emu))
    assert isinstance(solver.provider, Alidns)  # type: ignore[attr-defined]

    solver.present([apex, wild])
    values = _txt(emu, zone)
    assert sorted(values.values()) == sorted([apex.txt_value, wild.txt_value,
                                              "someone-elses-value"])
    adds = emu.calls_of("AddDomainRecord")[-2:]
    assert {a["RR"] for a in adds} == {"_acme-challenge"} and {a["TTL"] for a in adds} == {"600"}
    assert emu.calls_of("DescribeDomains") and not emu.calls_of("GetMainDomainName")

    solver.wait_ready([apex, wild], time.monotonic() + 20)  # both values visible in DNS

    solver.cleanup([apex, wild])
    assert _txt(emu, zone) == {foreign: "someone-elses-value"}


def test_identical_record_is_adopted_and_deleted(emu: AliyunEmulator,
                                                 pebble: Pebble) -> None:
    """The same RR, type and value is this challenge's digest: ours (an earlier attempt's),
    so it is deleted at cleanup too; a different value on the name stays."""
    zone = _zone()
    emu.add_dns_zone(zone)
    task = _task(f"www.{zone}")
    _add_by_hand(emu, zone, "_acme-challenge.www", task.txt_value)
    foreign = _add_by_hand(emu, zone, "_acme-challenge.www", "someone-elses-value")
    other = _task(f"www.{zone}")
    ui = make_ui()
    solver = AlidnsSolver(_settings(pebble), ui, settings_for(emu))
    solver.present([task, other])
    assert any(c == "DomainRecordDuplicate" for _, c in emu.errors)
    assert [int(c["PageSize"]) for c in emu.calls_of("DescribeSubDomainRecords")] == [100]
    solver.cleanup([task, other])
    assert _txt(emu, zone) == {foreign: "someone-elses-value"}


def test_configured_zone_skips_the_lookup(emu: AliyunEmulator, pebble: Pebble) -> None:
    zone = _zone()
    emu.add_dns_zone(zone)
    task = _task(f"a.b.{zone}")
    solver = AlidnsSolver(_settings(pebble, dns_zone=zone), make_ui(), settings_for(emu))
    solver.present([task])
    assert not emu.calls_of("GetMainDomainName") and not emu.calls_of("DescribeDomains")
    (add,) = emu.calls_of("AddDomainRecord")
    assert add["DomainName"] == zone and add["RR"] == "_acme-challenge.a.b"
    solver.cleanup([task])
    assert _txt(emu, zone) == {}


def test_cname_delegation_is_followed(emu: AliyunEmulator, pebble: Pebble) -> None:
    main, delegated = _zone(), _zone()
    emu.add_dns_zone(delegated)  # only the delegated zone is in this account
    pebble.challtestsrv.set_cname(f"_acme-challenge.{main}", f"acme.{delegated}")
    task = _task(main)
    ui = make_ui()
    solver = AlidnsSolver(_settings(pebble), ui, settings_for(emu))
    solver.present([task])
    (add,) = emu.calls_of("AddDomainRecord")
    assert add["DomainName"] == delegated and add["RR"] == "acme"
    _, err = captured(ui)
    assert f"acme.{delegated}" in err
    solver.wait_ready([task], time.monotonic() + 20)
    solver.cleanup([task])
    assert _txt(emu, delegated) == {}


def test_zone_not_in_account_is_a_clear_error(emu: AliyunEmulator, pebble: Pebble) -> None:
    solver = AlidnsSolver(_settings(pebble), make_ui(), settings_for(emu))
    with pytest.raises(ChallengeError) as info:
        solver.present([_task(f"www.{_zone()}")])
    text = info.value.render()
    assert "zone" in text and "dns_zone" in text
    solver.cleanup([])  # nothing to do, never raises


# ----------------------------------------------------------------- issue 11: as documented
def test_delegated_sub_zone_found_by_listing_the_account_zones(
        emu: AliyunEmulator, pebble: Pebble) -> None:
    """dev.corp.<base> is hosted here, corp.<base> and <base> are not: GetMainDomainName
    (public suffix) would say <base>; DescribeDomains finds the sub-zone, all pages."""
    base = _zone()
    zone = emu.add_dns_zone(f"dev.corp.{base}")
    for i in range(150):  # two pages of 100
        emu.add_dns_zone(f"filler{i:03d}.{base}")
    task = _task(f"www.{zone}")
    solver = AlidnsSolver(_settings(pebble), make_ui(), settings_for(emu))
    solver.present([task])
    (add,) = emu.calls_of("AddDomainRecord")
    assert (add["DomainName"], add["RR"]) == (zone, "_acme-challenge.www")
    assert [(c["PageNumber"], c["PageSize"]) for c in emu.calls_of("DescribeDomains")] == [
        ("1", "100"), ("2", "100")]
    solver.wait_ready([task], time.monotonic() + 20)
    solver.cleanup([task])
    assert _txt(emu, zone) == {}
    # listed once per run: a second solver in the same process asks no more
    again = AlidnsSolver(_settings(pebble), make_ui(), settings_for(emu))
    again.present([_task(zone)])
    assert len(emu.calls_of("DescribeDomains")) == 2


def test_idn_zone_named_in_unicode_record_in_ascii(emu: AliyunEmulator,
                                                   pebble: Pebble) -> None:
    label = f"bücher{uuid.uuid4().hex[:6]}"
    listed = emu.add_dns_zone(f"{label}.test")
    assert listed == f"{label}.test"
    ascii_zone = f"{label.encode('idna').decode()}.test"
    task = _task(f"www.{ascii_zone}")  # names reach the solver in punycode
    solver = AlidnsSolver(_settings(pebble), make_ui(), settings_for(emu))
    solver.present([task])
    (add,) = emu.calls_of("AddDomainRecord")
    assert (add["DomainName"], add["RR"]) == (listed, "_acme-challenge.www")
    solver.wait_ready([task], time.monotonic() + 20)  # visible under the ASCII name
    solver.cleanup([task])
    assert _txt(emu, listed) == {}
    # dns_zone given in punycode: still sent as Alidns lists it
    solver = AlidnsSolver(_settings(pebble, dns_zone=ascii_zone), make_ui(), settings_for(emu))
    solver.present([task])
    assert emu.calls_of("AddDomainRecord")[-1]["DomainName"] == listed
    solver.cleanup([task])
    assert _txt(emu, listed) == {}


def test_add_whose_answer_was_lost_leaves_no_record_behind(
        emu: AliyunEmulator, pebble: Pebble) -> None:
    zone = _zone()
    emu.add_dns_zone(zone)
    emu.faults.lose_response("AddDomainRecord")
    task = _task(zone)
    solver = AlidnsSolver(_settings(pebble), make_ui(), settings_for(emu))
    solver.present([task])
    assert len(emu.calls_of("AddDomainRecord")) == 2  # carried out, answer lost, retried
    assert ("AddDomainRecord", "DomainRecordDuplicate") in emu.errors
    solver.cleanup([task])
    assert _txt(emu, zone) == {}


def test_listing_not_allowed_falls_back_to_get_main_domain_name(
        emu: AliyunEmulator, pebble: Pebble) -> None:
    zone = _zone()
    emu.add_dns_zone(zone)
    emu.faults.refuse("DescribeDomains")
    ui = make_ui()
    task = _task(f"www.{zone}")
    solver = AlidnsSolver(_settings(pebble), ui, settings_for(emu))
    solver.present([task])
    (add,) = emu.calls_of("AddDomainRecord")
    assert (add["DomainName"], add["RR"]) == (zone, "_acme-challenge.www")
    assert "alidns:DescribeDomains" in "".join(captured(ui))
    solver.cleanup([task])
    assert _txt(emu, zone) == {}


def test_zone_listing_failure_is_one_clear_error(emu: AliyunEmulator, pebble: Pebble) -> None:
    emu.faults.refuse("DescribeDomains", code="InvalidAccessKeyId.Inactive", status=403)
    solver = AlidnsSolver(_settings(pebble), make_ui(), settings_for(emu))
    with pytest.raises(ChallengeError) as info:
        solver.present([_task(f"www.{_zone()}")])
    assert "cannot list the account's zones" in info.value.render()
