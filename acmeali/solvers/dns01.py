"""dns-01 (RFC 8555 §8.4): the one dns-01 solver, whatever provider publishes the records.

A provider (``registry.DnsProvider``) only adds and removes TXT records. ``Dns01Solver``
does the rest for all of them: follows a CNAME on ``_acme-challenge``, publishes each
(name, value) once, keeps the record ledger on disk before waiting (so a killed run's
records are removed by the next run), waits for propagation, and cleans up without raising.

Answering the challenge before the record has reached every authoritative server lets the
CA ask a server that does not have it yet, and a failed authorization costs a new order
(and counts against rate limits). So, as lego's ``dns01/precheck.go`` does, the check
follows a CNAME on ``_acme-challenge`` to the name really holding the record, finds that
name's zone, and requires the value on *every* authoritative server, asked directly
without recursion (no resolver cache in between). With ``--dns-resolver HOST:PORT`` the
given resolvers are asked instead (split-horizon DNS, test beds).

dnspython is imported only inside functions: ``renew`` with nothing due must not pay for it.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from acmeali.config import CertSettings
from acmeali.errors import AcmealiError, ChallengeError, UsageError
from acmeali.faults import checkpoint
from acmeali.solvers import registry
from acmeali.solvers.base import ChallengeTask
from acmeali.solvers.ledger import LedgerEntry, RecordLedger
from acmeali.solvers.registry import (
    HasPropagationTimeout,
    PresentsInBatch,
    ProviderEnv,
    RecordData,
    TxtRecord,
)
from acmeali.ui import UI

if TYPE_CHECKING:
    import dns.message
    import dns.resolver

    from acmeali.config import AliyunSettings

log = logging.getLogger(__name__)

FIRST_INTERVAL = 0.5
MAX_INTERVAL = 10.0
QUERY_TIMEOUT = 3.0
MAX_CNAME_HOPS = 10
CNAME_LOOKUP_LIFETIME = 10.0


# --------------------------------------------------------------------------- the solver
def build_provider(name: str, env: ProviderEnv) -> registry.DnsProvider:
    """A configured provider, or a UsageError naming what is missing."""
    if name not in registry.PROVIDERS:
        raise UsageError(f"unknown DNS provider {name!r}; "
                         f"expected one of {', '.join(registry.PROVIDERS)}")
    options = registry.provider_options(name, env.settings)
    try:
        registry.check_complete(name, options)
    except registry.OptionError as exc:
        raise UsageError(exc.message, hint=f"set it in [dns.{name}] of the config file") from None
    provider: registry.DnsProvider = registry.provider_class(name)(options, env)
    return provider


class Dns01Solver:
    """The only dns-01 Solver: CNAME, dedupe, ledger, propagation and cleanup for every
    provider. ``ledger`` is None for dry runs and library use: nothing is persisted."""

    challenge_type = "dns-01"

    def __init__(self, provider: registry.DnsProvider, settings: CertSettings, ui: UI, *,
                 ledger: RecordLedger | None = None) -> None:
        self.provider = provider
        self.settings = settings
        self.ui = ui
        self.ledger = ledger
        self._entries: list[LedgerEntry] = []   # published (or being published), not removed
        # Leftovers an earlier run could not remove yet: kept in the ledger for the next run.
        self._kept: list[LedgerEntry] = ledger.load() if ledger is not None else []
        self._targets: dict[str, str] = {}

    # ------------------------------------------------------------------ CNAME
    def record_name(self, txt_name: str) -> str:
        """Where the TXT record goes: the end of the CNAME chain from ``txt_name``.

        Users point ``_acme-challenge`` at a zone they can update by API (delegation keeps
        write access away from the main zone). Providers that publish the name as given
        (the hook, manual: the user's own tooling decides) set ``follows_cname = False``.
        """
        name = txt_name.rstrip(".").lower()
        if not getattr(self.provider, "follows_cname", True):
            return name
        cached = self._targets.get(name)
        if cached:
            return cached
        import dns.exception

        target = name
        try:
            resolver = make_resolver(self.settings.dns_resolvers or None, CNAME_LOOKUP_LIFETIME)
            target = follow_cname(name, resolver)[-1].lower()
        except (dns.exception.DNSException, OSError) as exc:
            log.debug("CNAME lookup of %s failed (%s); using the name itself", name, exc)
        if target != name:
            self.ui.info(f"{name} is a CNAME to {target}; the TXT record goes there")
        self._targets[name] = target
        return target

    # ------------------------------------------------------------------ Solver protocol
    @property
    def sequential(self) -> bool:
        """Whether issuance must solve one authorization at a time (the provider says so)."""
        return bool(getattr(self.provider, "sequential", False))

    def ready_timeout(self) -> float:
        timeout = self.settings.dns_timeout
        if isinstance(self.provider, HasPropagationTimeout):
            timeout = max(timeout, self.provider.propagation_timeout())
        return timeout

    def _save(self) -> None:
        if self.ledger is not None:
            self.ledger.save(self._kept + self._entries)

    def present(self, tasks: Sequence[ChallengeTask]) -> None:
        """Publish every (name, value) once; the ledger is on disk before the first add."""
        new: list[LedgerEntry] = []
        seen = {(e.record.fqdn, e.record.value) for e in self._entries}
        for task in tasks:
            fqdn = self.record_name(task.txt_name)
            if (fqdn, task.txt_value) in seen:
                continue
            seen.add((fqdn, task.txt_value))
            record = TxtRecord(identifier=task.identifier, name=task.txt_name.rstrip("."),
                               fqdn=fqdn, value=task.txt_value, ttl=self.settings.dns_ttl)
            new.append(LedgerEntry(self.provider.name, record))
        if not new:
            return
        self._entries.extend(new)
        self._save()
        attempted = 0
        try:
            if isinstance(self.provider, PresentsInBatch):
                attempted = len(new)
                self._confirm(new, self.provider.add_all([e.record for e in new]))
            else:
                for entry in new:
                    attempted += 1  # from here on it may exist, even if the add fails
                    self._confirm([entry], [self.provider.add_txt(entry.record)])
        finally:
            for entry in new[attempted:]:  # never tried: nothing to clean up
                self._entries.remove(entry)
            self._save()

    def _confirm(self, entries: Sequence[LedgerEntry], results: Sequence[RecordData | None]
                 ) -> None:
        for entry, data in zip(entries, results, strict=True):
            if data is None:  # identical record there before us: not ours to remove
                self._entries.remove(entry)
            else:
                entry.data = dict(data)

    def wait_ready(self, tasks: Sequence[ChallengeTask], deadline: float) -> None:
        checkpoint("dns-propagation")  # crash tests: records published, ledger on disk
        wait_for_txt(tasks, resolvers=self.settings.dns_resolvers,
                     timeout=self.ready_timeout(), ui=self.ui, deadline=deadline)

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        """Remove what ``present`` published for ``tasks``; warns, never raises."""
        wanted = {(t.txt_name.rstrip(".").lower(), t.txt_value) for t in tasks}
        mine = [e for e in self._entries if (e.record.name.lower(), e.record.value) in wanted]
        for entry in mine:
            if remove_entry(self.provider, entry, self.ui):
                self._entries.remove(entry)
        try:
            self._save()
        except Exception as exc:  # cleanup never raises
            self.ui.warn(f"could not update the DNS record ledger: {exc}")


def remove_entry(provider: registry.DnsProvider, entry: LedgerEntry, ui: UI) -> bool:
    """``provider.remove_txt`` for one ledger entry; True when done, warns when not."""
    rec = entry.record
    try:
        provider.remove_txt(rec, entry.data or {})
        return True
    except AcmealiError as exc:
        ui.warn(f"could not remove the TXT record {rec.fqdn} (\"{rec.value}\"): {exc.render()}")
    except Exception as exc:
        ui.warn(f"could not remove the TXT record {rec.fqdn} (\"{rec.value}\"): {exc}")
    return False


def clean_leftovers(ledger: RecordLedger, settings: CertSettings, ui: UI,
                    aliyun: AliyunSettings | None = None) -> None:
    """Remove the TXT records an interrupted earlier run left (its ledger); never raises.

    What cannot be removed now stays in the ledger for the next run, with a warning.
    """
    entries = ledger.load()
    if not entries:
        return
    env = ProviderEnv(settings=settings, ui=ui, aliyun=aliyun)
    providers: dict[str, registry.DnsProvider] = {}
    left: list[LedgerEntry] = []
    for entry in entries:
        try:
            provider = providers.get(entry.provider)
            if provider is None:
                provider = providers[entry.provider] = build_provider(entry.provider, env)
        except AcmealiError as exc:
            ui.warn(f"cannot remove the TXT record {entry.record.fqdn} an interrupted run left "
                    f"({exc.message}); it is retried next time")
            left.append(entry)
            continue
        if remove_entry(provider, entry, ui):
            ui.info(f"removed TXT {entry.record.fqdn} left by an interrupted run")
        else:
            left.append(entry)
    try:
        ledger.save(left)
    except Exception as exc:
        ui.warn(f"could not update the DNS record ledger: {exc}")

# --------------------------------------------------------------------------- propagation
@dataclass
class _Server:
    """One place to ask: a resolver (recursive) or an authoritative server (no recursion)."""

    label: str                  # shown to the user: "127.0.0.1:8053", "ns1.example.com"
    addresses: list[tuple[str, int]]
    recursive: bool
    seen: str = "not asked yet"
    ok: bool = False


@dataclass
class _Name:
    """A TXT name being waited for, with every value expected there (apex + wildcard)."""

    name: str                   # as published: "_acme-challenge.example.com"
    values: set[str]
    effective: str | None = None  # after following CNAMEs
    servers: list[_Server] | None = None
    problem: str | None = None  # why discovery failed, for the timeout message
    done: bool = False
    chain: list[str] = field(default_factory=list)


def parse_hostport(text: str, default_port: int = 53) -> tuple[str, int]:
    """``HOST:PORT`` / ``[v6]:PORT`` / ``HOST`` -> (host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, default_port


def _addresses(host: str, port: int) -> list[tuple[str, int]]:
    """An IP stays itself; a host name is resolved by the system (IPv4 first)."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return [(host, port)]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    addrs = sorted({(str(i[4][0]), port) for i in infos}, key=lambda a: ":" in a[0])
    return addrs


def make_resolver(servers: Sequence[str] | None, lifetime: float) -> dns.resolver.Resolver:
    """A recursive resolver without cache: the given HOST:PORT list, else the system's."""
    import dns.nameserver
    import dns.resolver

    if servers:
        r = dns.resolver.Resolver(configure=False)
        nameservers: list[str | dns.nameserver.Nameserver] = []
        for s in servers:
            host, port = parse_hostport(s)
            for ip, p in _addresses(host, port):
                nameservers.append(dns.nameserver.Do53Nameserver(ip, p))
        r.nameservers = nameservers
    else:
        try:
            r = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            raise ChallengeError(
                "dns-01: this host has no DNS resolver configured (/etc/resolv.conf)",
                hint="give --dns-resolver HOST:PORT") from None
    r.cache = None  # a cached NXDOMAIN from before the hook ran would hide the record
    r.lifetime = lifetime
    r.timeout = min(QUERY_TIMEOUT, lifetime)
    return r




def follow_cname(name: str, resolver: dns.resolver.Resolver) -> list[str]:
    """The CNAME chain from ``name`` (first element) to the name that holds the TXT record.

    Users point ``_acme-challenge.example.com`` at a zone they can update by API (a common
    way to keep DNS credentials off the web server); the record is checked where it lives.
    """
    import dns.resolver

    chain = [name.rstrip(".")]
    while len(chain) <= MAX_CNAME_HOPS:
        try:
            answer = resolver.resolve(chain[-1] + ".", "CNAME", raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return chain
        if answer.rrset is None:
            return chain
        target = str(answer.rrset[0].target).rstrip(".")
        if target in chain:
            raise ChallengeError(f"dns-01: CNAME loop at {chain[0]}: {' -> '.join(chain)} -> "
                                 f"{target}")
        chain.append(target)
    raise ChallengeError(f"dns-01: more than {MAX_CNAME_HOPS} CNAMEs from {chain[0]}")


def authoritative_servers(name: str, resolver: dns.resolver.Resolver, *,
                          ns_port: int = 53) -> tuple[str, list[_Server]]:
    """(zone, its name servers) for ``name``: zone found by walking up SOAs (lego's way)."""
    import dns.resolver

    zone = dns.resolver.zone_for_name(name if name.endswith(".") else name + ".",
                                      resolver=resolver, lifetime=resolver.lifetime)
    ns_answer = resolver.resolve(zone, "NS")
    servers: list[_Server] = []
    for rr in sorted(ns_answer, key=str):
        host = str(rr.target)
        addrs: list[tuple[str, int]] = []
        for rdtype in ("A", "AAAA"):
            try:
                a = resolver.resolve(host, rdtype, raise_on_no_answer=False)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers):
                continue
            if a.rrset is not None:
                addrs += [(str(x.address), ns_port) for x in a.rrset]
        servers.append(_Server(label=host.rstrip("."), addresses=addrs, recursive=False,
                               seen="no address found for this name server" if not addrs
                               else "not asked yet"))
    if not servers:
        raise ChallengeError(f"dns-01: zone {zone} has no NS records")
    return str(zone).rstrip("."), servers


def _ask(server: _Server, name: str, timeout: float) -> tuple[set[str] | None, str]:
    """TXT values at ``name`` on ``server`` (None when it could not say), and a summary."""
    import dns.exception
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    qname = name if name.endswith(".") else name + "."
    last = "no address found for this name server"
    for ip, port in server.addresses:
        q = dns.message.make_query(qname, "TXT")
        if not server.recursive:
            q.flags &= ~dns.flags.RD  # ask the server itself, not whatever it forwards to
        try:
            resp: dns.message.Message
            resp, _ = dns.query.udp_with_fallback(q, ip, timeout=timeout, port=port)
        except (dns.exception.DNSException, OSError) as exc:
            last = f"no answer ({type(exc).__name__}: {exc})" if str(exc) else \
                f"no answer ({type(exc).__name__})"
            continue
        rcode = resp.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            return set(), "NXDOMAIN"
        if rcode != dns.rcode.NOERROR:
            last = f"answered {dns.rcode.to_text(rcode)}"
            continue
        values: set[str] = set()
        for rrset in resp.answer:
            if rrset.rdtype == dns.rdatatype.TXT and str(rrset.name).lower() == qname.lower():
                for rd in rrset:
                    values.add(b"".join(rd.strings).decode("utf-8", "replace"))
        if not values:
            return values, "no TXT record"
        return values, "saw " + ", ".join(sorted(f'"{v}"' for v in values))
    return None, last


def _discover(item: _Name, *, resolvers: Sequence[str], bootstrap: Sequence[str] | None,
              ns_port: int, lifetime: float) -> None:
    """Fill in ``item.effective`` and ``item.servers``; on failure leave ``item.problem``."""
    import dns.exception

    lookup = make_resolver(resolvers or bootstrap, lifetime)
    try:
        if item.effective is None:
            item.chain = follow_cname(item.name, lookup)
            item.effective = item.chain[-1]
        if resolvers:
            item.servers = [_Server(label=r, addresses=_addresses(*parse_hostport(r)),
                                    recursive=True) for r in resolvers]
        else:
            zone, item.servers = authoritative_servers(item.effective, lookup, ns_port=ns_port)
            log.info("dns-01: %s is in zone %s, served by %s", item.effective, zone,
                     ", ".join(s.label for s in item.servers))
        item.problem = None
    except (dns.exception.DNSException, OSError) as exc:
        item.problem = f"could not find its name servers: {type(exc).__name__}: {exc}"
        log.info("dns-01: %s: %s", item.name, item.problem)


def _describe(item: _Name) -> str:
    shown = item.name
    if item.effective and item.effective != item.name:
        shown += f" (CNAME -> {item.effective})"
    return shown


def wait_for_txt(tasks: Sequence[ChallengeTask], *, resolvers: Sequence[str] = (),
                 timeout: float, ui: UI, deadline: float | None = None,
                 bootstrap: Sequence[str] | None = None, ns_port: int = 53,
                 first_interval: float = FIRST_INTERVAL) -> None:
    """Block until every task's TXT value is visible everywhere it must be, or raise.

    Where: on each of ``resolvers`` (``HOST:PORT``, asked with recursion) when given, else
    on every authoritative server of the zone of the name (asked without recursion),
    found through ``bootstrap`` resolvers (``HOST:PORT``; default: the system's) whose
    servers are then queried on ``ns_port`` (53; tests point both at a local server).
    Gives up at ``min(now + timeout, deadline)`` (monotonic) with a ChallengeError saying,
    per server, what it saw. Every record must already be published: this only looks.
    """
    start = time.monotonic()
    end = start + timeout
    if deadline is not None:
        end = min(end, deadline)
    names: dict[str, _Name] = {}
    for t in tasks:
        key = t.txt_name.rstrip(".").lower()
        names.setdefault(key, _Name(name=t.txt_name.rstrip("."), values=set())).values.add(
            t.txt_value)
    if not names:
        return
    interval = first_interval
    while True:
        now = time.monotonic()
        for item in names.values():
            if item.done:
                continue
            remaining = max(0.1, end - now)
            if item.servers is None:
                _discover(item, resolvers=resolvers, bootstrap=bootstrap, ns_port=ns_port,
                          lifetime=min(QUERY_TIMEOUT * 3, remaining))
                if item.servers is None:
                    continue
            assert item.effective is not None
            for server in item.servers:
                if server.ok:
                    continue
                seen, summary = _ask(server, item.effective, min(QUERY_TIMEOUT, remaining))
                server.seen = summary
                server.ok = seen is not None and item.values <= seen
            item.done = all(s.ok for s in item.servers)
        pending = [n for n in names.values() if not n.done]
        elapsed = time.monotonic() - start
        if not pending:
            log.info("dns-01: %d TXT name(s) visible after %.1fs", len(names), elapsed)
            return
        if time.monotonic() >= end:
            raise _timeout_error(pending, elapsed, bool(resolvers))
        ui.progress(_progress_line(pending, elapsed))
        time.sleep(max(0.0, min(interval, end - time.monotonic())))
        interval = min(interval * 1.5, MAX_INTERVAL)


def _progress_line(pending: Iterable[_Name], elapsed: float) -> str:
    items = list(pending)
    first = items[0]
    if first.servers is None:
        where = "(finding its name servers)"
    else:
        ok = sum(s.ok for s in first.servers)
        where = f"on {ok}/{len(first.servers)} servers"
    more = f" (+{len(items) - 1} more)" if len(items) > 1 else ""
    return f"waiting for {first.effective or first.name} TXT {where}{more}, {elapsed:.0f}s"


def _timeout_error(pending: Sequence[_Name], elapsed: float, by_resolver: bool) -> ChallengeError:
    lines = []
    for item in pending:
        values = " and ".join(f'"{v}"' for v in sorted(item.values))
        lines.append(f"{_describe(item)} TXT {values} not visible after {elapsed:.0f}s")
        if item.servers is None:
            lines.append(f"  {item.problem or 'name servers not found'}")
            continue
        for s in item.servers:
            if not s.ok:
                lines.append(f"  {s.label}: {s.seen}")
    if by_resolver:
        hint = ("check that the record was published; the --dns-resolver servers must see it "
                "(raise --dns-timeout if they are slow)")
    else:
        hint = ("check that the record was published in the zone those servers serve; slow "
                "providers need a longer --dns-timeout; --dns-resolver HOST:PORT checks "
                "given resolvers instead")
    return ChallengeError("dns-01: " + "\n".join(lines), hint=hint)
