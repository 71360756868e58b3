"""Fleet scenarios (issue 16): acmeali on PostgreSQL with three hosts, beside one host on files.

7. ``renew --force`` over the same lineages by 3 hosts at once on one PostgreSQL database,
   and by 1 host on the file store: wall, ACME requests, and duplicate issuances (Pebble's
   finalize requests beyond one per lineage: must be 0).
8. ``renew`` with nothing due over many lineages, on both backends (one host each; the
   PostgreSQL host's live files already in step, as after its first run).

acmeali only; the PostgreSQL server is the test bed's (tests/peers/postgres.py), started
here and stopped at the end. http-01 through one shared webroot served on Pebble's port.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench import synth
from bench.clients import Acmeali, Bed, wait_listening
from bench.measure import RunFailed, Sample


def _finalized(bed: Bed) -> int:
    return sum(1 for m, p in bed.pebble.requests_seen()
               if m == "POST" and p.startswith("/finalize-order/"))


@contextlib.contextmanager
def _webroot(bed: Bed, root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root.parent / "webroot-server.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory",
             str(root), str(bed.pebble.http_port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_listening(bed.pebble.http_port, proc)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class FleetBed:
    """One PostgreSQL database and a storage key; hosts are state directories."""

    def __init__(self, bed: Bed, client: Acmeali, work: Path) -> None:
        from tests.peers.postgres import Postgres

        self.bed, self.client, self.work = bed, client, work
        work.mkdir(parents=True, exist_ok=True)
        self.pg = Postgres().start()
        self.key = work / "storage.key"
        self.key.write_bytes(base64.b64encode(os.urandom(32)) + b"\n")
        self.key.chmod(0o600)

    def close(self) -> None:
        self.pg.close()

    def config(self, name: str) -> Path:
        dsn = self.pg.create_database()
        path = self.work / f"{name}.toml"
        path.write_text(f'[storage]\nbackend = "postgresql"\ndsn = "{dsn}"\n'
                        f'key_file = "{self.key}"\n')
        return path

    def argv(self, config: Path | None, state: Path, *args: str) -> list[str]:
        p = self.bed.pebble
        cfg = ["--config", str(config)] if config else []
        return [*self.client.argv0, *cfg, "--state-dir", str(state), "--server",
                p.directory_url, "--ca-bundle", p.ca_bundle, *args]

    def seed_files(self, state: Path, names: Sequence[str], settings: dict[str, Any]) -> None:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        synth.copy_accounts(self.client.state / "accounts", state / "accounts")
        synth.acmeali_lineages(self.bed.ca, state, list(names), self.bed.pebble.directory_url,
                               settings)

    def seed_database(self, config: Path, names: Sequence[str],
                      settings: dict[str, Any]) -> None:
        """Lineages in a state directory, then `storage migrate --to postgresql`."""
        staging = self.work / f"seed-{config.stem}"
        self.seed_files(staging, names, settings)
        cfg = config.read_text().replace('"postgresql"', '"files"')
        files_cfg = self.work / f"{config.stem}-files.toml"
        files_cfg.write_text(cfg)
        self.bed.run(measure_cmd(self.argv(files_cfg, staging, "storage", "migrate", "--to",
                                           "postgresql")), self.client.log, timeout=3600)


def measure_cmd(argv: list[str]) -> Any:
    from bench.clients import Cmd

    return Cmd(argv)


def renew_many(fb: FleetBed, n: int, tag: str) -> list[tuple[str, Sample, int]]:
    """(label, sample, duplicate issuances) for 3 hosts on PostgreSQL and 1 on files."""
    bed = fb.bed
    webroot = fb.work / "webroot"
    settings: dict[str, Any] = {"challenge": "http-01", "webroot": str(webroot)}
    out: list[tuple[str, Sample, int]] = []
    with _webroot(bed, webroot):
        # 3 hosts, PostgreSQL
        cfg = fb.config("fleet")
        names = [f"f{i}-{tag}.fleet.example.test" for i in range(n)]
        fb.seed_database(cfg, names, settings)
        hosts = [fb.work / f"host{h}" for h in range(3)]
        for h in hosts:  # each host's live files in step first (its first `sync`)
            bed.run(measure_cmd(fb.argv(cfg, h, "sync", "-q")), fb.client.log, timeout=3600)
        samples: list[Sample | None] = [None] * 3
        errors: list[str] = []

        def host(i: int) -> None:
            try:
                samples[i] = bed.run(measure_cmd(fb.argv(cfg, hosts[i], "renew", "--force",
                                                         "--concurrency", "8", "-q")),
                                     fb.client.log, timeout=3600)
            except RunFailed as exc:
                errors.append(str(exc))

        before, fin = len(bed.pebble.requests_seen()), _finalized(bed)
        start = time.perf_counter()
        threads = [threading.Thread(target=host, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        if errors:
            raise RunFailed("; ".join(errors))
        done = [s for s in samples if s is not None]
        s = Sample(wall=wall, cpu=sum(x.cpu for x in done),
                   maxrss_kb=max(x.maxrss_kb for x in done),
                   requests=len(bed.pebble.requests_seen()) - before, runs=3)
        out.append(("acmeali, 3 hosts, postgresql", s, _finalized(bed) - fin - n))

        # 1 host, files
        state = fb.work / "files-host"
        names = [f"g{i}-{tag}.files.example.test" for i in range(n)]
        fb.seed_files(state, names, settings)
        before, fin = len(bed.pebble.requests_seen()), _finalized(bed)
        s = bed.run(measure_cmd(fb.argv(None, state, "renew", "--force", "--concurrency", "8",
                                        "-q")), fb.client.log, timeout=3600)
        s.requests = len(bed.pebble.requests_seen()) - before
        out.append(("acmeali, 1 host, files", s, _finalized(bed) - fin - n))
    return out


def idle_many(fb: FleetBed, n: int, tag: str, reps: int) -> list[tuple[str, list[Sample]]]:
    """`renew` with nothing due over n lineages: files, then PostgreSQL (host in step)."""
    bed = fb.bed
    out: list[tuple[str, list[Sample]]] = []
    state = fb.work / "idle-files"
    fb.seed_files(state, [f"i{i}-{tag}.idle.example.test" for i in range(n)], {})
    cfg = fb.config("idle")
    fb.seed_database(cfg, [f"j{i}-{tag}.idle.example.test" for i in range(n)], {})
    host = fb.work / "idle-host"
    for label, config, st in (("acmeali, files", None, state),
                              ("acmeali, postgresql", cfg, host)):
        cmd = measure_cmd(fb.argv(config, st, "renew", "-q"))
        bed.run(cmd, fb.client.log, timeout=3600)  # untimed: warm cache, live files in step
        out.append((label, [bed.run(cmd, fb.client.log, timeout=3600) for _ in range(reps)]))
    return out
