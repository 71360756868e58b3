"""Unit tests for the pure parts of acmeali.acme: JWS/JWK computations against the RFC
examples, problem and resource parsing, Retry-After, identifiers. No network."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy import jwk as jose_jwk

from acmeali.acme import jws
from acmeali.acme.client import identifier_for, mailto
from acmeali.acme.errors import (
    AcmeProblem,
    AuthorizationFailed,
    BadNonce,
    ChallengeFailure,
    RateLimited,
    UserActionRequired,
    problem_from_json,
)
from acmeali.acme.messages import (
    Authorization,
    Challenge,
    Directory,
    Order,
    RenewalInfo,
    parse_time,
)
from acmeali.acme.transport import parse_retry_after

# RFC 7638 §3.1 (the RFC 7517 Appendix A.1 RSA key) and its thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
    "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
    "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
    "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
RFC8555_TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"  # RFC 8555 §8.3 example


def rfc7638_public_key() -> rsa.RSAPublicKey:
    n = int.from_bytes(b64d(RFC7638_N), "big")
    return rsa.RSAPublicNumbers(e=65537, n=n).public_key()


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def protected(signed: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(b64d(signed["protected"]))
    return out


# ---------------------------------------------------------------------------- RFC values
def test_thumbprint_rfc7638_example() -> None:
    assert jws.thumbprint(rfc7638_public_key()) == RFC7638_THUMBPRINT


def test_key_authorization_and_dns01_value() -> None:
    ka = jws.key_authorization(RFC8555_TOKEN, rfc7638_public_key())
    assert ka == f"{RFC8555_TOKEN}.{RFC7638_THUMBPRINT}"  # RFC 8555 §8.1
    digest = hashlib.sha256(ka.encode()).digest()
    expected = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert jws.dns01_txt_value(ka) == expected  # RFC 8555 §8.4
    assert "=" not in expected and len(expected) == 43


@pytest.mark.parametrize("token", ["", "a/b", "../x", "tok en", "abc="])
def test_key_authorization_refuses_non_base64url_tokens(token: str) -> None:
    with pytest.raises(ValueError):
        jws.key_authorization(token, rfc7638_public_key())


# ---------------------------------------------------------------------------- JWS
@pytest.mark.parametrize(("key", "alg"), [
    (ec.generate_private_key(ec.SECP256R1()), "ES256"),
    (ec.generate_private_key(ec.SECP384R1()), "ES384"),
    (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
])
def test_jws_header_with_jwk_and_signature_verifies(key: Any, alg: str) -> None:
    signed = jws.sign({"onlyReturnExisting": True}, key, url="https://ca/new-acct",
                      nonce="n0nce")
    head = protected(signed)
    assert head["alg"] == alg and head["nonce"] == "n0nce" and head["url"] == "https://ca/new-acct"
    assert "kid" not in head and head["jwk"] == jws.public_jwk_json(key)
    assert "d" not in head["jwk"]  # never the private part
    assert json.loads(b64d(signed["payload"])) == {"onlyReturnExisting": True}
    parsed = jws.JWS.from_json(signed)  # josepy round trip keeps nonce/url (Header subclass)
    combined = parsed.signature.combined
    assert isinstance(combined, jws.Header)
    assert combined.nonce == "n0nce" and combined.url == "https://ca/new-acct"
    assert parsed.verify()


def test_jws_with_kid_and_post_as_get() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signed = jws.sign(None, key, url="https://ca/authz/1", nonce="n", kid="https://ca/acct/7")
    head = protected(signed)
    assert head["kid"] == "https://ca/acct/7" and "jwk" not in head
    assert signed["payload"] == ""  # RFC 8555 §6.3: empty payload, not "{}"
    assert jws.JWS.from_json(signed).verify(jose_jwk.JWKEC(key=key.public_key()))


def test_jws_validates_inputs_itself() -> None:
    with pytest.raises(ValueError):
        jws.sign({}, ec.generate_private_key(ec.SECP521R1()), url="https://x", nonce="n")
    with pytest.raises(ValueError):
        jws.sign({}, ec.generate_private_key(ec.SECP256R1()), url="", nonce="n")
    with pytest.raises(ValueError):
        jws.sign({}, rsa.generate_private_key(public_exponent=65537, key_size=1024),
                 url="https://x", nonce="n")


def test_eab_binding_rfc8555_7_3_4() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    raw = b"0123456789abcdef0123456789abcdef"
    hmac_b64 = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    eab = jws.eab_binding(key, eab_kid="kid-1", hmac_key_b64=hmac_b64, url="https://ca/new-acct")
    head = protected(eab)
    assert head == {"alg": "HS256", "kid": "kid-1", "url": "https://ca/new-acct"}  # no nonce
    assert json.loads(b64d(eab["payload"])) == jws.public_jwk_json(key)
    mac = hmac.new(raw, f"{eab['protected']}.{eab['payload']}".encode(), hashlib.sha256)
    assert b64d(eab["signature"]) == mac.digest()
    with pytest.raises(ValueError):
        jws.eab_binding(key, eab_kid="", hmac_key_b64=hmac_b64, url="https://x")
    with pytest.raises(ValueError):
        jws.eab_binding(key, eab_kid="k", hmac_key_b64="", url="https://x")


def test_key_change_inner_jws_rfc8555_7_3_5() -> None:
    old = ec.generate_private_key(ec.SECP256R1())
    new = ec.generate_private_key(ec.SECP384R1())
    inner = jws.key_change_payload(account_url="https://ca/acct/1", old_key=old, new_key=new,
                                   url="https://ca/key-change")
    head = protected(inner)
    assert head["alg"] == "ES384" and head["url"] == "https://ca/key-change"
    assert head["jwk"] == jws.public_jwk_json(new) and "nonce" not in head and "kid" not in head
    assert json.loads(b64d(inner["payload"])) == {"account": "https://ca/acct/1",
                                                  "oldKey": jws.public_jwk_json(old)}
    assert jws.JWS.from_json(inner).verify()


# ---------------------------------------------------------------------------- errors
def test_problem_mapping_and_subproblems() -> None:
    doc = {"type": "urn:ietf:params:acme:error:malformed", "detail": "Some identifiers bad",
           "subproblems": [
               {"type": "urn:ietf:params:acme:error:rejectedIdentifier",
                "detail": "This CA will not issue for \"example.net\"",
                "identifier": {"type": "dns", "value": "example.net"}}]}
    p = problem_from_json(doc, status=400)
    assert type(p) is AcmeProblem and p.type == "malformed" and p.status == 400
    assert p.subproblems[0].identifier == "example.net"
    assert "example.net: rejectedIdentifier" in p.render()
    assert isinstance(problem_from_json({"type": "urn:ietf:params:acme:error:badNonce"}),
                      BadNonce)


def test_rate_limited_says_when_to_retry() -> None:
    p = problem_from_json({"type": "urn:ietf:params:acme:error:rateLimited",
                           "detail": "too many certificates"}, status=429, retry_after=3600)
    assert isinstance(p, RateLimited)
    assert "retry after" in p.render() and "3600 s" in p.render()


def test_user_action_required_shows_instance() -> None:
    p = problem_from_json({"type": "urn:ietf:params:acme:error:userActionRequired",
                           "detail": "new terms", "instance": "https://ca/tos-2"})
    assert isinstance(p, UserActionRequired) and "https://ca/tos-2" in p.render()


def test_authorization_failed_render() -> None:
    prob = problem_from_json({
        "type": "urn:ietf:params:acme:error:dns", "detail": "no TXT record found",
        "subproblems": [{"type": "urn:ietf:params:acme:error:dns", "detail": "SERVFAIL",
                         "identifier": {"type": "dns", "value": "a.example"}}]})
    err = AuthorizationFailed([ChallengeFailure("*.a.example", "dns-01", prob),
                               ChallengeFailure("b.example", None, None, status="expired")])
    text = err.render()
    assert "*.a.example (dns-01): dns: no TXT record found" in text
    assert "a.example: dns: SERVFAIL" in text
    assert "b.example (no challenge attempted): authorization expired" in text


# ---------------------------------------------------------------------------- messages
def test_directory_meta() -> None:
    d = Directory.from_json({
        "newNonce": "https://ca/nonce", "newAccount": "https://ca/acct",
        "newOrder": "https://ca/order", "revokeCert": "https://ca/revoke",
        "keyChange": "https://ca/kc", "renewalInfo": "https://ca/ari", "unknownThing": 1,
        "meta": {"termsOfService": "https://ca/tos", "externalAccountRequired": True,
                 "caaIdentities": ["ca.example"], "profiles": {"classic": "90 days",
                                                               "shortlived": "6 days"}}})
    assert d.renewal_info == "https://ca/ari" and d.key_change == "https://ca/kc"
    assert d.meta.terms_of_service == d.terms_of_service == "https://ca/tos"
    assert d.external_account_required and d.meta.caa_identities == ("ca.example",)
    assert set(d.profiles) == {"classic", "shortlived"}


def test_authorization_keeps_unknown_challenges() -> None:
    a = Authorization.from_json({
        "identifier": {"type": "dns", "value": "example.com"}, "status": "pending",
        "wildcard": True, "expires": "2026-01-01T00:00:00.123456789Z",
        "challenges": [
            {"type": "http-01", "url": "https://ca/c/1", "status": "pending", "token": "t1"},
            {"type": "dns-account-01", "url": "https://ca/c/2", "status": "pending",
             "something": {"new": True}},
            {"type": "dns-01", "url": "https://ca/c/3", "status": "invalid", "token": "t3",
             "error": {"type": "urn:ietf:params:acme:error:dns", "detail": "nope"}}]},
        url="https://ca/authz/1")
    assert a.name == "*.example.com" and a.wildcard
    assert [c.type for c in a.challenges] == ["http-01", "dns-account-01", "dns-01"]
    unknown = a.challenge("dns-account-01")
    assert unknown is not None and unknown.token == ""
    dns = a.challenge("dns-01")
    assert dns is not None and dns.error is not None and dns.error.detail == "nope"
    assert a.expires is not None and a.expires.year == 2026 and a.expires.tzinfo is not None


def test_order_and_challenge_parse() -> None:
    o = Order.from_json({"status": "invalid", "identifiers": [{"type": "ip", "value": "::1"}],
                         "authorizations": ["https://ca/a/1"], "finalize": "https://ca/f/1",
                         "replaces": "aaa.bbb", "profile": "classic",
                         "error": {"type": "urn:ietf:params:acme:error:badCSR",
                                   "detail": "bad"}},
                        url="https://ca/o/1")
    assert o.identifiers[0].type == "ip" and o.replaces == "aaa.bbb"
    assert o.error is not None and o.error.type == "badCSR"
    c = Challenge.from_json({"type": "http-01", "url": "https://ca/c", "status": "valid",
                             "token": "x", "validated": "2026-11-23T09:00:00Z"})
    assert c.validated is not None


def test_renewal_info() -> None:
    ri = RenewalInfo.from_json({"suggestedWindow": {"start": "2026-01-02T00:00:00Z",
                                                    "end": "2026-01-03T00:00:00Z"},
                                "explanationURL": "https://ca/why"}, retry_after=21600)
    assert ri.start < ri.end and ri.explanation_url == "https://ca/why"
    assert ri.retry_after == 21600


def test_parse_time_tolerates_garbage() -> None:
    assert parse_time("yesterday") is None and parse_time(None) is None


# ---------------------------------------------------------------------------- transport bits
def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("120") == 120.0
    now = time.time()
    later = email.utils.formatdate(now + 90, usegmt=True)
    value = parse_retry_after(later, now=now)
    assert value is not None and 88 <= value <= 91
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True)) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


# ---------------------------------------------------------------------------- identifiers
def test_identifiers() -> None:
    assert identifier_for("Example.COM.").to_json() == {"type": "dns", "value": "example.com"}
    assert identifier_for("*.example.com").value == "*.example.com"
    assert identifier_for("192.0.2.1").type == "ip"
    v6 = identifier_for("[2001:DB8:0:0:0:0:0:1]")
    assert (v6.type, v6.value) == ("ip", "2001:db8::1")  # RFC 8738 §3 / RFC 5952 form
    assert mailto("a@example.com") == "mailto:a@example.com"
    assert mailto("mailto:b@example.com") == "mailto:b@example.com"
