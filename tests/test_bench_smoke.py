"""The bench (`make bench`, bench/) is not run in CI; this tiny slice keeps it from rotting.

acmeali only (no certbot or lego needed): scenario 5 twice and scenario 1 once against the
session Pebble, then the report writer.
"""

from __future__ import annotations

from pathlib import Path

from bench import report
from bench.clients import Acmeali, Bed
from bench.scenarios import Bench, Config, parse_only
from tests.peers.pebble import Pebble


def test_bench_smoke(pebble: Pebble, tmp_path: Path) -> None:
    bed = Bed(pebble, tmp_path / "work")
    client = Acmeali()
    client.attach(bed)
    cfg = Config(reps=1, startup_reps=2)
    lines: list[str] = []
    results = Bench(bed, [client], cfg, say=lines.append).run(parse_only("5,1"))

    by = {(r.scenario, r.client): r for r in results}
    issue = by[(1, "acmeali")]
    assert issue.error is None, issue.error
    assert len(issue.samples) == 1
    s = issue.samples[0]
    assert s.wall > 0 and s.cpu > 0 and s.maxrss_kb > 0
    assert s.requests >= 5  # at least newOrder, authz, challenge, finalize, certificate
    startup = by[(5, "acmeali")]
    assert startup.error is None, startup.error
    assert len(startup.samples) == 2
    assert len(by[(5, "python -c pass")].samples) == 2

    out = tmp_path / "RESULTS.md"
    report.write(out, results, cfg, {"acmeali": client.version()}, quick=True)
    text = out.read_text()
    assert "## 1. One http-01 issuance" in text and "## 5. Start-up" in text
    assert "| acmeali | 1 |" in text
