"""`make bench`: acmeali vs certbot vs lego on one local Pebble; writes bench/RESULTS.md.

    .venv/bin/python bench/run.py [--reps N] [--quick] [--only 1,3] [--clients acmeali,lego]

Installs the peers when missing (certbot from PyPI into bench/.peers/certbot-venv, lego
from Debian), starts one Pebble + challtestsrv on loopback, runs the scenarios of issue 7
interleaved and writes the tables. Work files and logs go to bench/.work/run/ (wiped at
start); every client's commands and output are in bench/.work/run/<client>/commands.log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import clients as cl  # noqa: E402
from bench import measure, report  # noqa: E402
from bench.scenarios import Bench, Config, Result, parse_only  # noqa: E402
from tests.peers.pebble import Pebble, PebbleOptions  # noqa: E402

WORK = REPO / "bench" / ".work"


def install_lego(log: Path) -> str | None:
    if shutil.which("lego"):
        return None
    sudo: list[str] = []
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            return "lego is missing and installing it needs root: apt-get install lego"
        sudo = ["sudo", "-n"]
    try:
        with open(log, "ab") as out:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, stdout=out,
                           stderr=subprocess.STDOUT, timeout=600, env=env)
            subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends",
                            "lego"], check=True, stdout=out, stderr=subprocess.STDOUT,
                           timeout=600, env=env)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not apt-get install lego: {exc} (see {log})"
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=3, help="repetitions of scenarios 1, 2, 4 (3)")
    p.add_argument("--quick", action="store_true",
                   help="a small run: 1 rep, 10 certificates, 100 lineages (minutes, not tens)")
    p.add_argument("--only", metavar="SCENARIOS",
                   help="comma-separated scenario numbers or names (1-8, issue-http, "
                        "issue-dns, batch, idle, startup, fleet, idle-fleet)")
    p.add_argument("--clients", default="acmeali,certbot,lego", help="which clients to run")
    p.add_argument("--batch-reps", type=int, help="repetitions of scenario 3 (1)")
    p.add_argument("--batch-n", type=int, help="certificates in scenario 3 (50)")
    p.add_argument("--idle-n", type=int, help="acmeali lineages in scenario 4 (1000)")
    p.add_argument("--idle-certbot", type=int, help="certbot lineages in scenario 4 (1000)")
    p.add_argument("--idle-lego", type=int, help="lego certificates in scenario 4 (1000)")
    p.add_argument("--startup-reps", type=int, help="repetitions of scenario 5 (15)")
    p.add_argument("--fleet-n", type=int, help="lineages in scenario 7 (1000)")
    p.add_argument("--fleet-idle-n", type=int, help="lineages in scenario 8 (10000)")
    p.add_argument("--batch-http", choices=("standalone", "webroot"), default="standalone",
                   help="how acmeali answers http-01 in scenario 3 (standalone, like the peers)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    p.add_argument("--report-only", type=Path, metavar="JSON",
                   help="only rewrite --out from a results.json of an earlier run")
    p.add_argument("--no-install", action="store_true", help="never install peers")
    return p.parse_args(argv)


def config_from(a: argparse.Namespace) -> Config:
    cfg = Config(reps=a.reps)
    if a.quick:
        cfg = Config(reps=1, batch_reps=1, batch_n=10, idle_n=100, idle_n_certbot=100,
                     idle_n_lego=20, startup_reps=5, fleet_n=30, fleet_idle_n=200)
    for attr, val in (("batch_reps", a.batch_reps), ("batch_n", a.batch_n),
                      ("idle_n", a.idle_n), ("idle_n_certbot", a.idle_certbot),
                      ("idle_n_lego", a.idle_lego), ("startup_reps", a.startup_reps),
                      ("fleet_n", a.fleet_n), ("fleet_idle_n", a.fleet_idle_n)):
        if val is not None:
            setattr(cfg, attr, val)
    return cfg


def rewrite_report(src: Path, out: Path) -> int:
    data = json.loads(src.read_text())
    results = [Result(**{**r, "samples": [measure.Sample(**s) for s in r["samples"]],
                         "per_run": [measure.Sample(**s) for s in r["per_run"]]})
               for r in data["results"]]
    report.write(out, results, Config(**data["config"]), data["versions"],
                 quick=data["quick"], notes=data["notes"], date=data.get("date"))
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    try:
        scenarios = parse_only(a.only)
    except ValueError as exc:
        print(f"run.py: {exc}", file=sys.stderr)
        return 2
    cfg = config_from(a)
    if a.report_only:
        return rewrite_report(a.report_only, a.out)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run_dir = WORK / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    notes: list[str] = []

    wanted = [n.strip() for n in a.clients.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in cl.ALL]
    if unknown or "acmeali" not in wanted:
        print(f"run.py: --clients must include acmeali; known: {', '.join(cl.ALL)}",
              file=sys.stderr)
        return 2
    if not a.no_install:
        for name, install in (("certbot", cl.certbot_install), ("lego", install_lego)):
            if name in wanted:
                err = install(run_dir / "install.log")
                if err:
                    print(f"warning: {err}", file=sys.stderr)
    clients: list[cl.Client] = []
    for name in wanted:
        c = cl.Acmeali(a.batch_http) if name == "acmeali" else cl.ALL[name]()
        why = c.missing()
        if why:
            notes.append(f"{name} not run: {why}")
            print(f"warning: {name} not run: {why}", file=sys.stderr)
            continue
        clients.append(c)
    if a.batch_http == "webroot" and 3 in scenarios:
        notes.append("Scenario 3: acmeali answered http-01 with --webroot (files served by a "
                     "separate `python -m http.server`, not counted in acmeali's CPU/RSS), "
                     "not standalone like the peers (the default, where the lineages of "
                     "`renew --concurrency 8` share one listener on the port).")
    versions = {c.name: c.version() for c in clients}
    versions["pebble"] = cl._output(["dpkg-query", "-W", "-f", "${Version}", "pebble"]) or "?"

    started = time.monotonic()
    with Pebble(run_dir / "pebble", PebbleOptions(authz_reuse=0, nonce_reject=0)) as pebble:
        bed = cl.Bed(pebble, run_dir)
        for c in clients:
            c.attach(bed)
        bench = Bench(bed, clients, cfg, say=lambda s: print(s, flush=True))
        results = bench.run(scenarios)
    print(f"done in {time.monotonic() - started:.0f}s", flush=True)
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (run_dir / "results.json").write_text(json.dumps(
        {"date": date, "config": asdict(cfg), "versions": versions, "notes": notes,
         "quick": a.quick, "results": [asdict(r) for r in results]}, indent=1))
    report.write(a.out, results, cfg, versions, quick=a.quick, notes=notes, date=date)
    print(f"wrote {a.out}")
    print("\n".join(report.targets(results, cfg)))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        measure.kill_all()
