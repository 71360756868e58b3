"""Issue 12: a CA other than Pebble, and a hostile network, through ``tests.peers.fault_proxy``.

Pebble answers every request; the proxy in front of it drops, stalls, trickles, truncates,
inflates or rewrites the answers a test picks. What is checked is what a cron user sees:
the exit code, one clear line (never a traceback), how long it took, and that the live
certificate and the lock are left as they should be.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.peers.fault_proxy import FaultProxy, Rule, Window, json_edit, now_utc
from tests.peers.pebble import Pebble
from tests.test_renew import Bed

ORDER = r"^/(my-order|order-plz)"


@pytest.fixture(scope="module")
def proxy(pebble: Pebble, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProxy]:
    with FaultProxy(pebble, tmp_path_factory.mktemp("fault-proxy")) as p:
        yield p


@pytest.fixture
def bed(tmp_path: Path, pebble: Pebble, proxy: FaultProxy) -> Bed:
    proxy.clear()
    proxy.ari = False
    proxy.window = None
    # Trust: the proxy's TLS certificate, and Pebble's root as the CA's trust anchor.
    roots = pebble.root_bundle(tmp_path / "pebble-roots.pem")
    return Bed(tmp_path / "bed", pebble, server=proxy.directory_url,
               trust=[proxy.ca_bundle, str(roots)])


def no_traceback(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert "unexpected error" not in r.stderr, r.stderr


def _leave_pending(doc: dict[str, Any]) -> None:
    """A CA that keeps an order ``pending`` after its authorization failed."""
    if doc.get("status") == "invalid":
        doc["status"] = "pending"
        doc.pop("error", None)


# --------------------------------------------------------------------------- item 1
@pytest.mark.parametrize("killed", [False, True], ids=["failed", "killed-after-answer"])
def test_order_left_pending_after_failed_authorization_is_replaced(
        bed: Bed, proxy: FaultProxy, tmp_path: Path, killed: bool) -> None:
    name = f"pending{int(killed)}.example.test"
    proxy.add(Rule(ORDER, "rewrite", times=None, edit=json_edit(_leave_pending)))
    # http-01 into a webroot nobody serves: Pebble's validation fails, authz invalid.
    webroot = tmp_path / "webroot"
    webroot.mkdir()
    r = bed.cli("issue", "-d", name, "--challenge", "http-01", "--webroot", str(webroot),
                "--agree-tos", "--email", "test@example.test",
                env={"ACMEALI_CRASH_AT": "after-answer"} if killed else None)
    assert r.returncode != 0
    stored = bed.meta(name)["pending_order"]
    assert stored and stored["url"]
    dead_order = stored["url"]
    # The same run's successor works, in one run, with a new order.
    r = bed.issue(name, ok=False)
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    bed.assert_live_ok(name)
    assert bed.meta(name)["pending_order"] is None
    finalized = [e.path for e in proxy.exchanges("^/finalize-order/")]
    assert not any(dead_order.rsplit("/", 1)[1] in p for p in finalized)
