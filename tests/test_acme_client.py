"""AcmeClient end to end against a real Pebble (and challtestsrv for DNS).

Each test uses fresh account keys and fresh names, so tests share the session's Pebble
without seeing each other's state. http-01 answers come from a tiny threaded server bound
where Pebble's VA looks (``pebble.http_port``); dns-01 answers go into challtestsrv.
"""

from __future__ import annotations

import http.server
import ipaddress
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from acmeali.acme import (
    AcmeClient,
    AcmeProblem,
    AcmeUsageError,
    AuthorizationFailed,
    ExternalAccountRequired,
    TransportError,
    select_chain,
)
from acmeali.acme.messages import Order
from tests.peers.pebble import Pebble, PebbleOptions, eab_key

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


# ---------------------------------------------------------------------------- helpers
def new_key(kind: str = "ec256") -> PrivateKey:
    if kind == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def csr_der(key: PrivateKey, names: Sequence[str]) -> bytes:
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([]))
           .add_extension(x509.SubjectAlternativeName(sans), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.DER)


def fresh_name(suffix: str = "example.com") -> str:
    return f"t{uuid.uuid4().hex[:12]}.{suffix}"


def client_for(pebble: Pebble) -> AcmeClient:
    return AcmeClient(pebble.directory_url, ca_bundle=pebble.ca_bundle, timeout=10)


def registered(pebble: Pebble, key: PrivateKey | None = None) -> AcmeClient:
    client = client_for(pebble)
    client.register(key or new_key(), contacts=["admin@example.com"], agree_tos=True)
    return client


class Http01Server:
    """Serves ``/.well-known/acme-challenge/<token>`` from a dict, on Pebble's VA port."""

    def __init__(self, port: int) -> None:
        self.answers: dict[str, str] = {}
        self.hits: list[str] = []
        answers, hits = self.answers, self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.path.rsplit("/", 1)[-1]
                hits.append(self.path)
                body = answers.get(token)
                if not self.path.startswith("/.well-known/acme-challenge/") or body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Http01Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http01(pebble: Pebble) -> Iterator[Http01Server]:
    # Function-scoped: other test files may bind the same port for their own solvers.
    with Http01Server(pebble.http_port) as srv:
        yield srv


def solve_http01(client: AcmeClient, order: Order, server: Http01Server) -> None:
    for authz in client.pending_authorizations(order):
        chall = authz.challenge("http-01")
        assert chall is not None
        server.answers[chall.token] = client.key_authorization(chall.token)
        client.answer_challenge(chall)


def solve_dns01(client: AcmeClient, order: Order, pebble: Pebble,
                value_for: dict[str, str] | None = None) -> None:
    for authz in client.pending_authorizations(order):
        chall = authz.challenge("dns-01")
        assert chall is not None
        value = (value_for or {}).get(authz.name) or client.dns01_value(chall.token)
        pebble.challtestsrv.set_txt(f"_acme-challenge.{authz.identifier.value}", value)
        client.answer_challenge(chall)


def deadline(seconds: float = 30.0) -> float:
    return time.monotonic() + seconds


def verify_chain(pem: str, root_pem: str) -> list[x509.Certificate]:
    """Every certificate signed by the next one, the top one by the root."""
    certs = x509.load_pem_x509_certificates(pem.encode())
    root = x509.load_pem_x509_certificate(root_pem.encode())
    for child, parent in zip(certs, [*certs[1:], root], strict=True):
        assert child.issuer == parent.subject
        child.verify_directly_issued_by(parent)
    return certs


def issue_http01(client: AcmeClient, names: Sequence[str], server: Http01Server,
                 cert_key: PrivateKey | None = None) -> tuple[list[str], PrivateKey]:
    order = client.new_order(list(names))
    solve_http01(client, order, server)
    client.wait_authorizations(order, deadline())
    cert_key = cert_key or new_key()
    order = client.finalize(order, csr_der(cert_key, names), deadline())
    return client.download(order), cert_key


def leaf_of(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem.encode())[0]


def cn(pem: str) -> str:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


# ---------------------------------------------------------------------------- accounts
def test_account_lifecycle(pebble: Pebble) -> None:
    key = new_key()
    client = client_for(pebble)
    assert client.directory.meta.terms_of_service
    account = client.register(key, contacts=["a@example.com"], agree_tos=True)
    assert account.created and account.status == "valid"
    assert account.contacts == ("mailto:a@example.com",)
    assert client.kid == account.url

    # An already registered key is found, not an error (200 instead of 201).
    again = client_for(pebble).register(key, contacts=["a@example.com"], agree_tos=True)
    assert again.url == account.url and not again.created
    found = client_for(pebble).find_account(key)
    assert found is not None and found.url == account.url
    assert client_for(pebble).find_account(new_key()) is None

    updated = client.update_contacts(["b@example.com", "mailto:c@example.com"])
    assert updated.contacts == ("mailto:b@example.com", "mailto:c@example.com")
    assert client.fetch_account().contacts == updated.contacts

    # Rollover: the old key no longer finds the account, the new key does and works.
    new = new_key("ec384")
    client.rollover(new)
    assert client_for(pebble).find_account(key) is None
    found = client_for(pebble).find_account(new)
    assert found is not None and found.url == account.url
    assert client.new_order([fresh_name()]).status == "pending"

    # Deactivation: the CA refuses the account afterwards, in its own words.
    assert client.deactivate().status == "deactivated"
    with pytest.raises(AcmeProblem) as err:
        client.new_order([fresh_name()])
    assert err.value.type == "unauthorized"
    assert "deactivated" in err.value.render()


def test_rsa_and_p384_account_keys_sign(pebble: Pebble, http01: Http01Server) -> None:
    for kind in ("rsa", "ec384"):
        client = registered(pebble, new_key(kind))
        chains, _ = issue_http01(client, [fresh_name()], http01)
        verify_chain(chains[0], pebble.root_pem())


def test_account_not_selected_is_a_usage_error(pebble: Pebble) -> None:
    with pytest.raises(AcmeUsageError):
        client_for(pebble).new_order([fresh_name()])


def test_tls_verification_failure_hints_at_ca_bundle(pebble: Pebble) -> None:
    client = AcmeClient(pebble.directory_url)  # Pebble's self-signed listener: not trusted
    with pytest.raises(TransportError) as err:
        _ = client.directory
    assert "--ca-bundle" in err.value.render()


def test_connection_refused_is_retried_then_reported() -> None:
    from tests.peers.pebble import free_port

    client = AcmeClient(f"https://127.0.0.1:{free_port()}/dir")
    client.transport.backoff = 0.01
    with pytest.raises(TransportError, match="cannot reach the CA"):
        _ = client.directory
    assert client.request_count == 4  # bounded: first try + 3 retries


def test_plain_http_directory_refused() -> None:
    with pytest.raises(AcmeUsageError):
        AcmeClient("http://127.0.0.1/dir")


def test_ca_bundle_adds_to_default_roots(pebble: Pebble) -> None:
    from acmeali.acme.transport import trust_context

    base = len(trust_context(None).get_ca_certs())
    ctx = trust_context(pebble.ca_bundle)
    assert base > 50  # certifi/system roots still there
    assert len(ctx.get_ca_certs()) == base + 1


# ---------------------------------------------------------------------------- EAB
@pytest.fixture(scope="module")
def pebble_eab_alt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pebble, str, str]]:
    """One extra Pebble for both EAB and alternate roots (saves a start-up)."""
    kid, hmac_key = eab_key()
    opts = PebbleOptions(eab_keys={kid: hmac_key}, alternate_roots=2)
    with Pebble(tmp_path_factory.mktemp("pebble-eab"), opts) as p:
        yield p, kid, hmac_key


def test_eab_required(pebble_eab_alt: tuple[Pebble, str, str]) -> None:
    pebble, kid, hmac_key = pebble_eab_alt
    client = client_for(pebble)
    assert client.directory.meta.external_account_required
    with pytest.raises(ExternalAccountRequired) as missing:
        client.register(new_key(), agree_tos=True)
    assert "--eab-kid" in missing.value.render()

    wrong = eab_key()[1]
    with pytest.raises(AcmeProblem) as bad:
        client.register(new_key(), agree_tos=True, eab=(kid, wrong))
    assert bad.value.detail  # the CA's words, e.g. the binding's signature is invalid

    account = client.register(new_key(), agree_tos=True, eab=(kid, hmac_key))
    assert account.created and account.status == "valid"


# ---------------------------------------------------------------------------- orders
def test_http01_issuance_verifies_to_root(pebble: Pebble, http01: Http01Server) -> None:
    client = registered(pebble)
    name = fresh_name()
    chains, cert_key = issue_http01(client, [name], http01)
    certs = verify_chain(chains[0], pebble.root_pem())
    leaf = certs[0]
    assert leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [name]
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert leaf.public_key().public_bytes(*spki) == cert_key.public_key().public_bytes(*spki)
    assert len(http01.hits) >= 1  # Pebble's VA really fetched the answer


def test_ip_identifier_http01(pebble: Pebble, http01: Http01Server) -> None:
    client = registered(pebble)
    order = client.new_order(["127.0.0.1"])
    assert [(i.type, i.value) for i in order.identifiers] == [("ip", "127.0.0.1")]
    chains, _ = issue_http01(client, ["127.0.0.1"], http01)
    leaf = verify_chain(chains[0], pebble.root_pem())[0]
    ips = leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)
    assert ips == [ipaddress.ip_address("127.0.0.1")]


def test_dns01_apex_and_wildcard_in_one_order(pebble: Pebble) -> None:
    client = registered(pebble)
    apex = fresh_name()
    names = [apex, f"*.{apex}"]
    order = client.new_order(names)
    pending = client.pending_authorizations(order)
    assert sorted(a.name for a in pending) == sorted(names)
    assert [a.wildcard for a in pending if a.name.startswith("*.")] == [True]
    solve_dns01(client, order, pebble)
    authzs = client.wait_authorizations(order, deadline())
    assert all(a.status == "valid" for a in authzs)
    key = new_key()
    order = client.finalize(order, csr_der(key, names), deadline())
    chains = client.download(order)
    leaf = verify_chain(chains[0], pebble.root_pem())[0]
    sans = leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert sorted(sans) == sorted(names)


def test_failed_authorization_shows_ca_detail(pebble: Pebble) -> None:
    client = registered(pebble)
    name = fresh_name()
    order = client.new_order([name])
    solve_dns01(client, order, pebble, value_for={name: "not-the-right-value"})
    with pytest.raises(AuthorizationFailed) as err:
        client.wait_authorizations(order, deadline())
    (failure,) = err.value.failures
    assert failure.identifier == name and failure.challenge_type == "dns-01"
    assert failure.problem is not None and failure.problem.detail
    text = err.value.render()
    assert name in text and "dns-01" in text and failure.problem.detail in text


def test_profile_not_offered_is_refused_locally(pebble: Pebble) -> None:
    client = registered(pebble)
    before = client.request_count
    with pytest.raises(AcmeUsageError, match="no certificate profiles"):
        client.new_order([fresh_name()], profile="shortlived")
    assert client.request_count == before


def test_renewal_info_none_without_ari(pebble: Pebble) -> None:
    # Pebble 2.4 (Debian) has no renewalInfo in its directory.
    client = client_for(pebble)
    if client.directory.renewal_info is None:
        assert client.renewal_info("aaaa.bbbb") is None


# ---------------------------------------------------------------------------- chains
def test_alternate_chains_and_select_chain(pebble_eab_alt: tuple[Pebble, str, str],
                                           ) -> None:
    pebble, kid, hmac_key = pebble_eab_alt
    client = client_for(pebble)
    client.register(new_key(), agree_tos=True, eab=(kid, hmac_key))
    with Http01Server(pebble.http_port) as srv:
        chains, _ = issue_http01(client, [fresh_name()], srv)
    assert len(chains) == 3
    roots = [pebble.root_pem(i) for i in range(3)]
    for root in roots:
        chosen = select_chain(chains, cn(root))
        verify_chain(chosen, root)
    assert select_chain(chains, "No Such Root CA") == chains[0]
    assert select_chain(chains, None) == chains[0]
    # The leaf is the same certificate in every chain.
    assert len({leaf_of(c).serial_number for c in chains}) == 1


# ---------------------------------------------------------------------------- revocation
def test_revoke_by_account_key(pebble: Pebble, http01: Http01Server) -> None:
    client = registered(pebble)
    chains, _ = issue_http01(client, [fresh_name()], http01)
    leaf = leaf_of(chains[0])
    serial = format(leaf.serial_number, "x")
    assert pebble.cert_status(serial)["Status"] == "Valid"
    client.revoke(leaf.public_bytes(serialization.Encoding.DER), "superseded")
    status = pebble.cert_status(serial)
    assert status["Status"] == "Revoked" and status["Reason"] == 4


def test_revoke_by_certificate_key_without_account(pebble: Pebble,
                                                   http01: Http01Server) -> None:
    client = registered(pebble)
    chains, cert_key = issue_http01(client, [fresh_name()], http01)
    leaf = leaf_of(chains[0])
    serial = format(leaf.serial_number, "x")
    anonymous = client_for(pebble)  # no account at all: the certificate key signs (§7.6)
    anonymous.revoke(leaf.public_bytes(serialization.Encoding.DER), "keyCompromise",
                     cert_key=cert_key)
    status = pebble.cert_status(serial)
    assert status["Status"] == "Revoked" and status["Reason"] == 1


def test_revoke_unknown_reason_is_usage_error(pebble: Pebble) -> None:
    with pytest.raises(AcmeUsageError, match="keyCompromise"):
        registered(pebble).revoke(b"\x30\x00", "because")


# ---------------------------------------------------------------------------- nonces, cost
def test_issuance_survives_nonce_rejection(pebble_nonce_reject: Pebble) -> None:
    pebble = pebble_nonce_reject
    client = registered(pebble)
    with Http01Server(pebble.http_port) as srv:
        chains, _ = issue_http01(client, [fresh_name()], srv)
    verify_chain(chains[0], pebble.root_pem())
    assert client.transport.bad_nonce_retries > 0
    # Every badNonce answer carried a fresh nonce that was used: one HEAD in all.
    assert [m for m, _ in client.transport.requests_log].count("HEAD") == 1


def test_request_count_is_protocol_minimum(pebble: Pebble, http01: Http01Server) -> None:
    """One single-name http-01 issuance with an existing account, from a fresh client.

    Minimum: GET directory, HEAD newNonce (the directory carries no nonce), newOrder,
    authz, challenge, one authz poll, finalize, one order poll (Pebble finalizes
    asynchronously: the finalize answer is "processing"), certificate = 9. Every POST
    response's Replay-Nonce feeds the next request, so there is only one HEAD.
    """
    setup = registered(pebble)
    key, kid = setup.account_key, setup.kid
    assert key is not None and kid is not None
    client = client_for(pebble)
    client.use_account(key, kid)
    seen_before = len(pebble.requests_seen())
    started = time.monotonic()
    chains, _ = issue_http01(client, [fresh_name()], http01)
    elapsed = time.monotonic() - started
    seen = pebble.requests_seen()[seen_before:]
    verify_chain(chains[0], pebble.root_pem())
    methods = [m for m, _ in seen]
    assert methods.count("HEAD") == 1
    assert client.request_count == len(seen) == 9, (seen, elapsed)
    print(f"\nsingle-name http-01 issuance: {client.request_count} requests, {elapsed:.3f}s")


def test_download_path_is_pem(pebble: Pebble, http01: Http01Server) -> None:
    client = registered(pebble)
    chains, _ = issue_http01(client, [fresh_name()], http01)
    assert chains[0].startswith("-----BEGIN CERTIFICATE-----")
    assert chains[0].count("BEGIN CERTIFICATE") >= 2


# ---------------------------------------------------------------------------- ARI
class FakeAriCA:
    """Pebble 2.4 has no ARI (RFC 9773): a tiny HTTPS peer serving a directory with
    ``renewalInfo`` and the ARI resource, to exercise the real transport end to end."""

    def __init__(self, workdir: Path) -> None:
        import json
        import ssl

        from tests.peers.pebble import make_tls_cert

        cert, key = make_tls_cert(workdir)
        self.ca_bundle = str(cert)
        self.calls: list[str] = []
        calls = self.calls
        state: dict[str, object] = {"ari_503_left": 1, "base": ""}

        class Handler(http.server.BaseHTTPRequestHandler):
            def _send(self, code: int, body: object, ctype: str = "application/json",
                      headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                calls.append(self.path)
                base = str(state["base"])
                if self.path == "/dir":
                    self._send(200, {"newNonce": base + "/nonce", "newAccount": base + "/a",
                                     "newOrder": base + "/o", "revokeCert": base + "/r",
                                     "renewalInfo": base + "/ari"})
                elif self.path == "/ari/limited":
                    self._send(429, {"type": "urn:ietf:params:acme:error:rateLimited",
                                     "detail": "slow down"}, "application/problem+json",
                               {"Retry-After": "120"})
                elif self.path.startswith("/ari/"):
                    if state["ari_503_left"]:
                        state["ari_503_left"] = 0
                        self._send(503, {}, headers={"Retry-After": "0"})
                        return
                    self._send(200, {"suggestedWindow": {"start": "2030-01-01T00:00:00Z",
                                                         "end": "2030-01-02T00:00:00Z"},
                                     "explanationURL": "https://ca.example/why"},
                               headers={"Retry-After": "21600"})
                else:
                    self._send(404, {})

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        state["base"] = f"https://127.0.0.1:{self.server.server_port}"
        self.url = f"{state['base']}/dir"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_renewal_info_via_ari(tmp_path: Path) -> None:
    from acmeali.acme import RateLimited

    ca = FakeAriCA(tmp_path)
    try:
        client = AcmeClient(ca.url, ca_bundle=ca.ca_bundle)
        info = client.renewal_info("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
        assert info is not None
        assert (info.start.year, info.end.day) == (2030, 2)
        assert info.explanation_url == "https://ca.example/why"
        assert info.retry_after == 21600
        # GET is idempotent: the 503 was retried; ARI is unauthenticated: no nonce, no HEAD.
        ari = "/ari/aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
        assert ca.calls == ["/dir", ari, ari]
        with pytest.raises(RateLimited) as err:
            client.renewal_info("limited")
        assert err.value.retry_after == 120 and "retry after" in err.value.render()
    finally:
        ca.close()
