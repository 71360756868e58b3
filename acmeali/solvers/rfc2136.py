"""``--dns rfc2136``: TXT records by DNS UPDATE (RFC 2136) signed with TSIG (RFC 8945).

BIND, Knot, PowerDNS and most self-hosted DNS accept it, so a zone outside Alidns has a
standard way in. Configured in ``[dns.rfc2136]`` (per certificate overridable):
``server`` (the primary, ``host`` or ``host:port``), ``tsig_key_name``, ``tsig_algorithm``
(``hmac-sha256`` by default) and ``tsig_secret_file``, a file holding the base64 secret
alone (the ``secret`` of ``tsig-keygen``'s output; the whole output is accepted too), or
the secret in ``$ACMEALI_TSIG_SECRET``. The secret never comes from the command line,
never reaches a log, an exception or a hook.

The zone is found by asking the primary for the SOA of the name (its answer, or the SOA in
the authority section of a negative answer, names the zone); a server that will not say
(REFUSED) is bypassed by the usual walk up the names through the resolvers.
Adding a value the RRset already holds is a no-op (RFC 2136 §3.4.2.2), which makes a retry
harmless; such a value is this challenge's digest, so whoever published it was us (an
earlier, interrupted attempt) and it is removed with the rest.
dnspython is imported only inside methods.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from acmeali.errors import ChallengeError, UsageError
from acmeali.solvers.registry import (
    OptionCheck,
    OptionError,
    ProviderEnv,
    RecordData,
    TxtRecord,
    choice,
    dns_name,
    host_port,
    string,
)

if TYPE_CHECKING:
    import dns.message
    import dns.update

log = logging.getLogger(__name__)

# The HMAC algorithms dnspython signs with (dns.tsig), by their RFC 8945 names. Not its
# truncated ones (hmac-sha256-128...): dnspython sends them under their own algorithm
# names, which RFC 8945 §6 does not define and BIND answers with BADKEY.
ALGORITHMS = ("hmac-sha256", "hmac-sha224", "hmac-sha384", "hmac-sha512", "hmac-sha1",
              "hmac-md5")
SECRET_ENV = "ACMEALI_TSIG_SECRET"  # noqa: S105 - the variable's name
MAX_SECRET_FILE = 64 * 1024
TIMEOUT = 10.0
_KEYGEN_SECRET = re.compile(r'secret\s+"([^"]+)"')


def _rcode_hint(rcode: str) -> str:
    return {
        "NOTAUTH": "the server did not accept the TSIG key: check tsig_key_name, "
                   "tsig_algorithm and the secret against the server's key statement",
        "REFUSED": "the server refused the update: its zone needs allow-update (or "
                   "update-policy) for this key",
        "NOTZONE": "the name is not in the zone the server says; check for a delegation",
    }.get(rcode, "check the primary's log for why it refused the update")


class Rfc2136:
    """The ``rfc2136`` DNS provider."""

    name: ClassVar[str] = "rfc2136"
    options: ClassVar[Mapping[str, OptionCheck]] = {
        "server": host_port, "tsig_key_name": dns_name,
        "tsig_algorithm": choice(ALGORITHMS), "tsig_secret_file": string,
    }

    def __init__(self, options: Mapping[str, Any], env: ProviderEnv) -> None:
        from acmeali.solvers.dns01 import parse_hostport

        self.server = str(options["server"])
        self.host, self.port = parse_hostport(self.server)
        self.key_name = str(options["tsig_key_name"])
        self.algorithm = str(options.get("tsig_algorithm") or "hmac-sha256")
        self.resolvers = tuple(env.settings.dns_resolvers)
        self._secret = _read_secret(options.get("tsig_secret_file"))
        self._zones: dict[str, str] = {}

    def __repr__(self) -> str:  # the secret stays out of any debug output
        return f"Rfc2136(server={self.server!r}, key={self.key_name!r}, {self.algorithm})"

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        for key in ("server", "tsig_key_name"):
            if not options.get(key):
                raise OptionError(key, f"--dns rfc2136 needs {key} in [dns.rfc2136]")

    # ------------------------------------------------------------------ plumbing
    def _address(self) -> str:
        from acmeali.solvers.dns01 import _addresses

        try:
            return _addresses(self.host, self.port)[0][0]
        except (OSError, IndexError) as exc:
            raise ChallengeError(f"rfc2136: cannot resolve the server {self.host}: {exc}",
                                 hint="check server in [dns.rfc2136]") from None

    def _send(self, message: dns.message.Message, what: str) -> dns.message.Message:
        import dns.exception
        import dns.query

        try:
            response: dns.message.Message = dns.query.tcp(message, self._address(),
                                                          port=self.port, timeout=TIMEOUT)
        except dns.exception.DNSException as exc:
            # TSIG failures (BADKEY, BADSIG, BADTIME) arrive as exceptions naming the key,
            # never the secret.
            raise ChallengeError(f"rfc2136: {what} at {self.server} failed: "
                                 f"{type(exc).__name__}: {exc}",
                                 hint=_rcode_hint("NOTAUTH")) from None
        except OSError as exc:
            raise ChallengeError(f"rfc2136: cannot reach {self.server} for {what}: "
                                 f"{exc.strerror or exc}",
                                 hint="check server in [dns.rfc2136] and that the primary "
                                      "listens on TCP") from None
        return response

    def _update(self, zone: str) -> dns.update.UpdateMessage:
        import dns.name
        import dns.tsig
        import dns.tsigkeyring
        import dns.update

        keyring = dns.tsigkeyring.from_text({self.key_name: self._secret})
        algorithm = dns.name.from_text(
            "hmac-md5.sig-alg.reg.int" if self.algorithm == "hmac-md5" else self.algorithm)
        return dns.update.UpdateMessage(zone + ".", keyring=keyring,
                                        keyname=dns.name.from_text(self.key_name),
                                        keyalgorithm=algorithm)

    def _check(self, response: dns.message.Message, what: str) -> None:
        import dns.rcode

        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            text = dns.rcode.to_text(rcode)
            raise ChallengeError(f"rfc2136: {self.server} answered {text} to {what}",
                                 hint=_rcode_hint(text))

    def zone_of(self, fqdn: str) -> str:
        """The zone holding ``fqdn``: the SOA the primary names, else the resolvers' walk."""
        if fqdn in self._zones:
            return self._zones[fqdn]
        import dns.message
        import dns.rcode
        import dns.rdatatype

        query = dns.message.make_query(fqdn + ".", "SOA")
        response = self._send(query, f"the SOA query for {fqdn}")
        zone = None
        if response.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            for rrset in (*response.answer, *response.authority):
                if rrset.rdtype == dns.rdatatype.SOA:
                    zone = str(rrset.name).rstrip(".").lower()
                    break
        if zone is None:
            zone = self._zone_by_resolvers(fqdn)
        log.info("rfc2136: %s is in zone %s", fqdn, zone)
        self._zones[fqdn] = zone
        return zone

    def _zone_by_resolvers(self, fqdn: str) -> str:
        import dns.exception
        import dns.resolver

        from acmeali.solvers.dns01 import make_resolver

        try:
            resolver = make_resolver(self.resolvers or None, TIMEOUT)
            return str(dns.resolver.zone_for_name(fqdn + ".", resolver=resolver,
                                                  lifetime=TIMEOUT)).rstrip(".").lower()
        except (dns.exception.DNSException, OSError) as exc:
            raise ChallengeError(f"rfc2136: cannot find the zone of {fqdn}: {exc}",
                                 hint=f"{self.server} should answer SOA queries for its "
                                      f"zones") from None

    # ------------------------------------------------------------------ DnsProvider
    def add_txt(self, record: TxtRecord) -> RecordData | None:
        zone = self.zone_of(record.fqdn)
        update = self._update(zone)
        update.add(record.fqdn + ".", record.ttl, "TXT", f'"{record.value}"')
        self._check(self._send(update, f"adding TXT {record.fqdn}"), f"adding TXT {record.fqdn}")
        log.info("rfc2136: added TXT %s at %s (key %s, %s)", record.fqdn, self.server,
                 self.key_name, self.algorithm)
        return {"zone": zone}

    def remove_txt(self, record: TxtRecord, data: Mapping[str, str]) -> None:
        """Delete exactly this value (RFC 2136 §2.5.4); other values of the name stay."""
        zone = data.get("zone") or self.zone_of(record.fqdn)
        update = self._update(zone)
        update.delete(record.fqdn + ".", "TXT", f'"{record.value}"')
        what = f"removing TXT {record.fqdn}"
        self._check(self._send(update, what), what)


def _read_secret(path: Any) -> str:
    """The base64 TSIG secret: ``tsig_secret_file`` when set, else ``$ACMEALI_TSIG_SECRET``."""
    if path:
        p = Path(str(path)).expanduser()
        try:
            if not p.is_file():
                raise UsageError(f"[dns.rfc2136] tsig_secret_file {p}: not a regular file")
            if p.stat().st_size > MAX_SECRET_FILE:
                raise UsageError(f"[dns.rfc2136] tsig_secret_file {p}: too large for a secret")
            text = p.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise UsageError(f"[dns.rfc2136] tsig_secret_file {p}: {exc.strerror}") from None
        source = f"tsig_secret_file {p}"
        found = _KEYGEN_SECRET.search(text)  # the whole `tsig-keygen` output pasted in
        secret = found.group(1) if found else text.strip()
    else:
        secret = os.environ.get(SECRET_ENV, "").strip()
        source = f"${SECRET_ENV}"
        if not secret:
            raise UsageError("--dns rfc2136 needs the TSIG secret",
                             hint=f"set tsig_secret_file in [dns.rfc2136] (a file holding the "
                                  f"base64 secret of `tsig-keygen`), or ${SECRET_ENV}")
    try:
        if not secret or len(base64.b64decode(secret, validate=True)) == 0:
            raise binascii.Error
    except (binascii.Error, ValueError):
        raise UsageError(f"rfc2136: the TSIG secret from {source} is not base64",
                         hint="give the secret value of `tsig-keygen`'s output alone") from None
    return secret
