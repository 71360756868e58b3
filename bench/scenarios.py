"""The scenarios of issue 7, run interleaved: each repetition runs every client once, in an
order rotated per repetition, so drift in the machine's state spreads over all clients.

HTTP requests are counted from Pebble's log (``requests_seen()`` delta around each run):
that is what the CA received, whoever sent it.
"""

from __future__ import annotations

import secrets
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import measure
from bench.clients import Bed, Client, Cmd, Python
from bench.measure import RunFailed, Sample

# number -> (key, title)
SCENARIOS = {
    1: ("issue-http", "One http-01 issuance, existing account"),
    2: ("issue-dns", "One dns-01 issuance via a hook into challtestsrv, existing account"),
    3: ("batch", "50 certificates"),
    4: ("idle", "`renew` with nothing due"),
    5: ("startup", "Start-up (`--help`)"),
    7: ("fleet", "Fleet: `renew --force` by 3 hosts on PostgreSQL beside 1 host on files"),
    8: ("idle-fleet", "Fleet: `renew` with nothing due, PostgreSQL and files"),
}


@dataclass
class Config:
    reps: int = 3
    batch_reps: int = 1
    batch_n: int = 50
    idle_n: int = 1000
    idle_n_certbot: int = 1000
    idle_n_lego: int = 1000
    startup_reps: int = 15
    fleet_n: int = 1000
    fleet_idle_n: int = 10000


@dataclass
class Result:
    scenario: int
    client: str
    samples: list[Sample] = field(default_factory=list)
    per_run: list[Sample] = field(default_factory=list)  # each process of a sequential loop
    count: int = 1  # certificates or lineages one sample covers
    error: str | None = None
    note: str = ""


def parse_only(spec: str | None) -> list[int]:
    if not spec:
        return list(SCENARIOS)
    keys = {v[0]: k for k, v in SCENARIOS.items()}
    out = []
    for part in spec.split(","):
        part = part.strip()
        if part.isdigit() and int(part) in SCENARIOS:
            out.append(int(part))
        elif part in keys:
            out.append(keys[part])
        elif part in ("6", "memory"):
            out += [n for n in (1, 3) if n not in out]
        else:
            raise ValueError(f"unknown scenario {part!r}: use 1-8 or "
                             + ", ".join(v[0] for v in SCENARIOS.values()))
    return sorted(set(out))


class Bench:
    def __init__(self, bed: Bed, clients: Sequence[Client], config: Config,
                 say: Callable[[str], None] = print) -> None:
        self.bed = bed
        self.clients = list(clients)
        self.cfg = config
        self.say = say
        self.tag = secrets.token_hex(2)  # keeps names unique if a work dir is reused
        self.results: list[Result] = []
        self.prepared: dict[str, str | None] = {}  # client -> error of prepare()

    # ------------------------------------------------------------------ plumbing
    def _requests(self) -> int:
        return len(self.bed.pebble.requests_seen())

    def measure(self, client: Client, cmds: Sequence[Cmd], timeout: float,
                count_each: bool = False, serving: bool = False) -> tuple[Sample, list[Sample]]:
        if serving:
            with client.batch_serving():
                return self.measure(client, cmds, timeout, count_each)
        before = self._requests()
        runs: list[Sample] = []
        start = time.perf_counter()
        for cmd in cmds:
            b = self._requests() if count_each else 0
            s = self.bed.run(cmd, client.log, timeout)
            if count_each:
                s.requests = self._requests() - b
            runs.append(s)
        wall = time.perf_counter() - start
        total = measure.combine(runs, wall)
        total.requests = self._requests() - before
        return total, runs

    def _prepare(self, client: Client) -> str | None:
        if client.name not in self.prepared:
            try:
                client.prepare()
                self.prepared[client.name] = None
            except Exception as exc:
                self.prepared[client.name] = f"set-up failed: {_short(exc)}"
        return self.prepared[client.name]

    def _interleave(self, n: int, reps: int, clients: Sequence[Client],
                    cmds: Callable[[Client, int], list[Cmd]], *, timeout: float,
                    count: Callable[[Client], int] = lambda c: 1,
                    count_each: bool = False, requests: bool = True,
                    serving: bool = False) -> list[Result]:
        results = {c.name: Result(n, c.name, count=count(c)) for c in clients}
        for rep in range(reps):
            k = rep % max(1, len(clients))
            for c in [*clients[k:], *clients[:k]]:
                r = results[c.name]
                if r.error:
                    continue
                try:
                    s, runs = self.measure(c, cmds(c, rep), timeout, count_each, serving)
                except Exception as exc:
                    r.error = _short(exc)
                    self.say(f"  [{n}] {c.name}: FAILED {r.error.splitlines()[0]}")
                    continue
                if not requests:
                    s.requests = -1
                r.samples.append(s)
                if len(runs) > 1:
                    r.per_run += runs
                self.say(f"  [{n}] {c.name} rep {rep + 1}/{reps}: {s.wall:.3f}s wall, "
                         f"{s.cpu:.3f}s cpu, {s.maxrss_kb / 1024:.0f} MiB, "
                         f"{s.requests if s.requests >= 0 else '-'} requests")
        out = list(results.values())
        self.results += out
        return out

    def _ready(self, n: int, clients: Sequence[Client]) -> list[Client]:
        ok = []
        for c in clients:
            err = self._prepare(c)
            if err:
                self.results.append(Result(n, c.name, error=err))
                self.say(f"  [{n}] {c.name}: {err.splitlines()[0]}")
            else:
                ok.append(c)
        return ok

    # ------------------------------------------------------------------ scenarios
    def run(self, scenarios: Sequence[int]) -> list[Result]:
        for n in scenarios:
            key, title = SCENARIOS[n]
            self.say(f"scenario {n}: {title}")
            getattr(self, "s_" + key.replace("-", "_"))(n)
        return self.results

    def s_issue_http(self, n: int) -> None:
        clients = self._ready(n, self.clients)
        self._interleave(n, self.cfg.reps, clients, lambda c, rep: [
            c.issue_http(f"h{rep}-{self.tag}.{c.name}.example.test")], timeout=120)

    def s_issue_dns(self, n: int) -> None:
        clients = self._ready(n, self.clients)
        self._interleave(n, self.cfg.reps, clients, lambda c, rep: [
            c.issue_dns(f"d{rep}-{self.tag}.{c.name}.example.test")], timeout=120)

    def s_batch(self, n: int) -> None:
        clients = self._ready(n, self.clients)
        k = self.cfg.batch_n
        ready = []
        for c in clients:
            try:
                c.batch_prepare([f"b{i}-{self.tag}.{c.name}.example.test" for i in range(k)])
                ready.append(c)
            except Exception as exc:
                self.results.append(Result(n, c.name, error=f"set-up failed: {_short(exc)}"))

        def cmds(c: Client, rep: int) -> list[Cmd]:
            if c.name == "acmeali":  # renews the same lineages (--force) every repetition
                return c.batch([f"b{i}-{self.tag}.{c.name}.example.test" for i in range(k)])
            return c.batch([f"b{rep}x{i}-{self.tag}.{c.name}.example.test" for i in range(k)])

        self._interleave(n, self.cfg.batch_reps, ready, cmds, timeout=900,
                         count=lambda c: k, count_each=True, serving=True)

    def idle_count(self, c: Client) -> int:
        return {"certbot": self.cfg.idle_n_certbot, "lego": self.cfg.idle_n_lego}.get(
            c.name, self.cfg.idle_n)

    def s_idle(self, n: int) -> None:
        clients = self._ready(n, self.clients)
        ready = []
        domains: dict[str, list[str]] = {}
        for c in clients:
            domains[c.name] = [f"i{i}-{self.tag}.{c.name}.example.test"
                               for i in range(self.idle_count(c))]
            try:
                c.idle_prepare(domains[c.name])
                # One untimed run: certbot records its ARI retry-after in each renewal
                # conf on the first run; every client gets a warm page cache.
                self.measure(c, c.idle(domains[c.name]), timeout=1800)
                ready.append(c)
            except Exception as exc:
                self.results.append(Result(n, c.name, error=f"set-up failed: {_short(exc)}"))
                self.say(f"  [{n}] {c.name}: set-up FAILED {_short(exc).splitlines()[0]}")
        self._interleave(n, self.cfg.reps, ready, lambda c, rep: c.idle(domains[c.name]),
                         timeout=1800, count=self.idle_count)

    def s_startup(self, n: int) -> None:
        clients = [c for c in self.clients] + [Python()]
        for c in clients:
            if not hasattr(c, "bed"):
                c.attach(self.bed)
        self._interleave(n, self.cfg.startup_reps, clients, lambda c, rep: [c.help()],
                         timeout=60, requests=False)


    def _fleet(self, n: int, work: Callable[[Any], None]) -> None:
        """Run ``work(FleetBed)`` for acmeali only (needs PostgreSQL from Debian)."""
        from bench import fleet

        client = next((c for c in self.clients if c.name == "acmeali"), None)
        if client is None or self._ready(n, [client]) == []:
            return
        fb = None
        try:
            fb = fleet.FleetBed(self.bed, client, self.bed.work / f"fleet{n}")
            work(fb)
        except Exception as exc:
            self.results.append(Result(n, "acmeali", error=_short(exc)))
            self.say(f"  [{n}] acmeali: FAILED {_short(exc).splitlines()[0]}")
        finally:
            if fb is not None:
                fb.close()

    def s_fleet(self, n: int) -> None:
        from bench import fleet

        def work(fb: Any) -> None:
            for label, sample, dups in fleet.renew_many(fb, self.cfg.fleet_n,
                                                        self.tag):
                self.results.append(Result(n, label, samples=[sample], count=self.cfg.fleet_n,
                                           note=f"duplicate issuances: {dups}"))
                self.say(f"  [{n}] {label}: {sample.wall:.1f}s wall, {sample.requests} "
                         f"requests, {dups} duplicate issuances")
        self._fleet(n, work)

    def s_idle_fleet(self, n: int) -> None:
        from bench import fleet

        def work(fb: Any) -> None:
            for label, samples in fleet.idle_many(fb, self.cfg.fleet_idle_n,
                                                  self.tag, self.cfg.reps):
                self.results.append(Result(n, label, samples=samples,
                                           count=self.cfg.fleet_idle_n))
                self.say(f"  [{n}] {label}: " + ", ".join(f"{x.wall:.2f}s" for x in samples))
        self._fleet(n, work)


def _short(exc: BaseException) -> str:
    if isinstance(exc, RunFailed):
        return str(exc)
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()
