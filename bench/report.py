"""bench/RESULTS.md: one table per scenario, ratios to each peer, the targets, the machine."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path

from bench.measure import Stats
from bench.scenarios import SCENARIOS, Config, Result

PEERS = ("certbot", "lego")


def machine() -> dict[str, str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": str(os.cpu_count()), "cpu": model,
            "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}"}


def _med(r: Result | None, attr: str) -> float | None:
    if r is None or r.error or not r.samples:
        return None
    return float(statistics.median(float(getattr(s, attr)) for s in r.samples))


def _fmt_s(v: float | None, ms: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v * 1000:.0f} ms" if ms else f"{v:.3f} s"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def _table(results: Sequence[Result], *, ms: bool = False, requests: bool = True,
           per_item: bool = False) -> list[str]:
    head = ["client", "n", "wall min", "wall median", "wall max", "CPU median", "peak RSS"]
    if requests:
        head.append("requests")
    if per_item:
        head.append("per item (wall)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        if r.error or not r.samples:
            err = (r.error or "no samples").splitlines()[0][:140].replace("|", "\\|")
            lines.append(f"| {r.client} | – | failed: {err} |" + " |" * (len(head) - 3))
            continue
        w = Stats.of([s.wall for s in r.samples])
        row = [r.client, str(w.n), _fmt_s(w.min, ms), _fmt_s(w.median, ms), _fmt_s(w.max, ms),
               _fmt_s(_med(r, "cpu"), ms),
               f"{max(s.maxrss_kb for s in r.samples) / 1024:.0f} MiB"]
        if requests:
            req = [s.requests for s in r.samples]
            row.append(str(int(statistics.median(req))) if min(req) == max(req)
                       else f"{min(req)}–{max(req)}")
        if per_item:
            row.append(f"{w.median / max(r.count, 1) * 1000:.1f} ms × {r.count}")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _ratios(results: Sequence[Result], *, per_item: bool = False,
            requests: bool = True, base: str | None = None) -> list[str]:
    by = {r.client: r for r in results}
    a = by.get("acmeali")
    others = [*PEERS, *([base] if base else [])]
    lines = ["", "| acmeali / | wall (median) | CPU (median) |" + (" requests |" if requests
                                                                    else ""),
             "|---|---|---|" + ("---|" if requests else "")]

    def norm(r: Result | None, attr: str) -> float | None:
        v = _med(r, attr)
        if v is None or r is None:
            return None
        return v / r.count if per_item else v

    for p in others:
        r = by.get(p)
        row = [p, _ratio(norm(a, "wall"), norm(r, "wall")), _ratio(norm(a, "cpu"), norm(r, "cpu"))]
        if requests:
            row.append(_ratio(norm(a, "requests"), norm(r, "requests")))
        lines.append("| " + " | ".join(row) + " |")
    if per_item and len({r.count for r in results if not r.error}) > 1:
        lines.append("")
        lines.append("Ratios compare time *per lineage*: the counts differ.")
    return lines


def targets(results: Sequence[Result], cfg: Config) -> list[str]:
    def get(n: int, client: str) -> Result | None:
        return next((r for r in results if r.scenario == n and r.client == client), None)

    out = []

    def line(ok: bool | None, text: str) -> None:
        mark = {True: "met", False: "**MISSED**", None: "not measured"}[ok]
        out.append(f"- {text}: {mark}")

    a1 = get(1, "acmeali")
    w = _med(a1, "wall")
    peer_req = [min(s.requests for s in r.samples) for p in PEERS
                if (r := get(1, p)) and not r.error and r.samples]
    a_req = max(s.requests for s in a1.samples) if a1 and a1.samples and not a1.error else None
    line(None if w is None else w < 1.0, f"scenario 1 under 1 s wall (median {_fmt_s(w)})")
    line(None if a_req is None or not peer_req else a_req <= min(peer_req),
         f"scenario 1 requests ≤ fewest of any peer (acmeali {a_req}, "
         f"peers' fewest {min(peer_req) if peer_req else '–'})")
    a3, c3 = _med(get(3, "acmeali"), "wall"), _med(get(3, "certbot"), "wall")
    line(None if a3 is None or c3 is None else c3 / a3 >= 10,
         "scenario 3 ≥10× faster than certbot's sequential loop ("
         + (f"{c3 / a3:.1f}×" if a3 and c3 else "–") + ")")
    a4 = get(4, "acmeali")
    w4 = _med(a4, "wall")
    full = a4 is not None and a4.count >= 1000
    line(None if w4 is None or not full else w4 < 1.0,
         f"scenario 4 under 1 s for 1,000 lineages (median {_fmt_s(w4)} for "
         f"{a4.count if a4 else '–'})")
    a5, p5 = _med(get(5, "acmeali"), "wall"), _med(get(5, "python -c pass"), "wall")
    line(None if a5 is None or p5 is None else a5 <= 3 * p5,
         "scenario 5 within 3× of `python -c pass` ("
         + (f"{a5 / p5:.1f}×" if a5 and p5 else "–") + ")")
    return out


def write(path: Path, results: Sequence[Result], cfg: Config, versions: dict[str, str],
          *, quick: bool, notes: Sequence[str] = (), date: str | None = None) -> None:
    m = machine()
    now = date or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# acmeali benchmark results", "",
             "Produced by `make bench` (`bench/run.py`"
             + (" --quick" if quick else "") + f") on {now}. Do not edit by hand.", "",
             f"- Machine: {m['cores']} cores, {m['cpu']}, {m['os']}",
             f"- Python {m['python']}; "
             + ", ".join(f"{k} {v}" for k, v in versions.items()),
             "- One Pebble + pebble-challtestsrv on loopback (`PEBBLE_VA_NOSLEEP=1`, "
             "authorization reuse 0, nonce rejection 0). Clients run one at a time, "
             "interleaved: each repetition runs every client once, order rotated.",
             "- Wall: from spawn to exit. CPU: user+system of the process and everything it "
             "waited for (`os.wait4`). Peak RSS: of the program alone, via GNU time's "
             "`%M` (for a loop of processes, the largest). Requests: ACME requests Pebble "
             "logged during the run.",
             f"- Repetitions: {cfg.reps} (scenarios 1, 2, 4), {cfg.batch_reps} (scenario 3), "
             f"{cfg.startup_reps} (scenario 5).", ""]
    lines += ["## Targets (issue 7)", "", *targets(results, cfg), ""]
    for n, (_key, title) in SCENARIOS.items():
        rs = [r for r in results if r.scenario == n]
        if not rs:
            continue
        lines += [f"## {n}. {title}", ""]
        if n == 1 or n == 2:
            lines += _table(rs) + _ratios(rs)
        elif n == 3:
            lines += [f"acmeali: `renew --force --concurrency 8` over {cfg.batch_n} lineages "
                      "(one process). certbot and lego: one `certonly` / `run` per "
                      "certificate, one after another. The per-process spread of the peers' "
                      "loops is below the table.", ""]
            lines += _table(rs, per_item=True) + _ratios(rs)
            for r in rs:
                if r.per_run:
                    w = Stats.of([s.wall for s in r.per_run])
                    lines.append(f"\n{r.client}, each of its {w.n} processes: wall min "
                                 f"{w.min:.3f} s / median {w.median:.3f} s / max {w.max:.3f} s")
        elif n == 4:
            lines += ["acmeali and certbot: one `renew` over their own lineages. lego renews "
                      "one certificate per invocation, so its row is a loop of `lego renew "
                      "--days 30 -d NAME`, one per lineage. Lineages are 90-day certificates "
                      "from a local CA in each client's own layout; one untimed run first.",
                      ""]
            scaled = [r for r in rs if r.count != cfg.idle_n and not r.error]
            if scaled:
                lines += ["Scaled down (too slow at the full count; compare per lineage): "
                          + ", ".join(f"{r.client} {r.count}" for r in scaled)
                          + f" lineages instead of {cfg.idle_n}.", ""]
            lines += _table(rs, per_item=True) + _ratios(rs, per_item=True)
        elif n in (7, 8):
            lines += (["acmeali only. Row 1: three `renew --force --concurrency 8` processes "
                       "(three hosts, own live/ each) at once on one PostgreSQL database; "
                       "CPU is the three together. Row 2: one host on the file store. "
                       "Duplicate issuances: Pebble finalize requests beyond one per "
                       "lineage.", ""] if n == 7 else
                      ["acmeali only, one host per backend; the PostgreSQL host's live files "
                       "in step (one untimed run first, as for scenario 4).", ""])
            lines += _table(rs, per_item=True)
            lines += [f"\n{r.client}: {r.note}" for r in rs if r.note]
        elif n == 5:
            lines += _table(rs, ms=True, requests=False) + _ratios(
                rs, requests=False, base="python -c pass")
        lines.append("")
    mem = [r for r in results if r.scenario in (1, 3) and not r.error and r.samples]
    if mem:
        lines += ["## 6. Peak memory (max RSS) of scenarios 1 and 3", "",
                  "| scenario | client | peak RSS (max over reps) | acmeali / this |",
                  "|---|---|---|---|"]
        for n in (1, 3):
            rs = [r for r in mem if r.scenario == n]
            a = next((r for r in rs if r.client == "acmeali"), None)
            amax = max(s.maxrss_kb for s in a.samples) if a else None
            for r in rs:
                v = max(s.maxrss_kb for s in r.samples)
                lines.append(f"| {n} | {r.client} | {v / 1024:.0f} MiB | "
                             + (_ratio(amax, v) if amax else "–") + " |")
        lines.append("")
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    path.write_text("\n".join(lines))
