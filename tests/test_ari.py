"""ACME Renewal Information (RFC 9773) end to end: Pebble behind ``tests.peers.ari_proxy``.

The proxy adds ``renewalInfo`` to Pebble's directory and serves the window each test sets,
so what is checked here is what a CA operator would see: which certificate ids acmeali
asks about, how often, and whether the new order says which certificate it ``replaces``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from acmeali.lineage import from_iso
from tests.peers.ari_proxy import AriProxy, Window
from tests.peers.pebble import Pebble, wait_until
from tests.test_renew import Bed


@pytest.fixture(scope="module")
def proxy(pebble: Pebble, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AriProxy]:
    with AriProxy(pebble, tmp_path_factory.mktemp("ari-proxy")) as p:
        yield p


@pytest.fixture
def bed(tmp_path: Path, pebble: Pebble, proxy: AriProxy) -> Bed:
    proxy.set_window(None)
    return Bed(tmp_path, pebble, server=proxy.directory_url, trust=[proxy.ca_bundle])


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _expected_cert_id(bed: Bed, name: str) -> str:
    """RFC 9773 §4.1, computed here independently of acmeali."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(bed.live_bytes(name)["cert"])
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier is not None
    serial = cert.serial_number
    der = serial.to_bytes((serial.bit_length() + 8) // 8, "big")  # DER INTEGER content
    return f"{_b64u(aki.key_identifier)}.{_b64u(der)}"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def test_window_in_the_past_renews_with_replaces(bed: Bed, proxy: AriProxy) -> None:
    name = "ari-past.example.test"
    bed.issue(name)
    old_id = _expected_cert_id(bed, name)
    assert bed.meta(name)["ari"]["cert_id"] == old_id
    old_serial = bed.serial(name)
    r = bed.cli("renew", "--dry-run")  # a dry run never claims to replace anything
    assert r.returncode == 0, r.stderr
    assert proxy.replaces()[-1] is None and bed.serial(name) == old_serial
    why = "https://ca.example.test/incident/42"
    proxy.set_window(Window(_now() - timedelta(hours=2), _now() - timedelta(hours=1),
                            retry_after=3600, explanation_url=why))
    asked = len(proxy.cert_ids())

    r = bed.cli("renew")  # 5-year certificate: only ARI makes it due
    assert r.returncode == 0, r.stderr
    assert f"{name}: renewed" in r.stderr
    assert why in r.stderr  # explanationURL is shown to the operator
    assert proxy.cert_ids()[asked:] == [old_id]
    assert proxy.replaces()[-1] == old_id
    assert bed.assert_live_ok(name) != old_serial
    new_id = _expected_cert_id(bed, name)
    assert bed.meta(name)["ari"]["cert_id"] == new_id != old_id


def test_future_window_respects_retry_after_and_follows_a_moved_window(
        bed: Bed, proxy: AriProxy) -> None:
    name = "ari-future.example.test"
    bed.issue(name)
    cert_id = _expected_cert_id(bed, name)
    serial = bed.serial(name)
    w1 = Window(_now() + timedelta(days=10), _now() + timedelta(days=11), retry_after=10)
    proxy.set_window(w1)

    r = bed.cli("renew")
    assert r.returncode == 0 and "No renewals due" in r.stderr, r.stderr
    assert proxy.cert_ids().count(cert_id) == 1
    ari = bed.meta(name)["ari"]
    first = from_iso(ari["selected"])
    assert first is not None and w1.start <= first <= w1.end
    next_poll = from_iso(ari["next_poll"])
    assert next_poll is not None and next_poll > _now()

    # Before Retry-After has passed: no ARI request, no network at all, not due.
    seen = len(bed.pebble.requests_seen())
    r = bed.cli("renew", "-q")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert proxy.cert_ids().count(cert_id) == 1
    assert len(bed.pebble.requests_seen()) == seen
    assert bed.meta(name)["ari"]["selected"] == ari["selected"]  # stable across runs

    # The CA moves the window earlier; once Retry-After has passed, acmeali asks again
    # and picks a new moment inside the new window.
    w2 = Window(_now() + timedelta(days=2), _now() + timedelta(days=3), retry_after=3600)
    proxy.set_window(w2)

    def polled_again() -> bool:
        r = bed.cli("renew", "-q")
        assert r.returncode == 0, r.stderr
        return proxy.cert_ids().count(cert_id) == 2

    wait_until(polled_again, "a second ARI poll after Retry-After", timeout=40, interval=0.5)
    moved = from_iso(bed.meta(name)["ari"]["selected"])
    assert moved is not None and w2.start <= moved <= w2.end and moved != first
    assert bed.serial(name) == serial  # still not due: nothing renewed
    r = bed.cli("certs", "list", "--json")
    row = json.loads(r.stdout)["certificates"][0]
    assert from_iso(row["next_renewal"]) == moved  # `certs list` shows the chosen moment
