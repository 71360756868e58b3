"""JWS for ACME (RFC 8555 §6.2), on josepy: only JWK, JWS and the EAB HMAC come from it.

josepy's ``Header`` knows only RFC 7515's registered names, so ``nonce`` and ``url`` are
added by a subclass, and the ``header`` field is re-declared on the ``Signature`` subclass
(otherwise ``from_json`` decodes with the base ``Header`` and round-trips lose fields).
josepy checks its inputs with ``assert``; everything callers pass is validated here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy import b64 as jose_b64
from josepy import json_util, jwa
from josepy import jwk as jose_jwk
from josepy import jws as jose_jws

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

# Signatures sent to the CA always carry every header in the protected part (§6.2).
_PROTECT = frozenset({"alg", "jwk", "kid", "nonce", "url"})


class Header(jose_jws.Header):
    """JOSE header with ACME's ``nonce`` and ``url`` (RFC 8555 §6.4, §6.5)."""

    nonce: str | None = json_util.field("nonce", omitempty=True)
    url: str | None = json_util.field("url", omitempty=True)


class Signature(jose_jws.Signature):
    __slots__ = jose_jws.Signature._orig_slots
    header_cls = Header
    header: Header = json_util.field("header", omitempty=True, default=Header(),
                                decoder=Header.from_json)


class JWS(jose_jws.JWS):
    __slots__ = jose_jws.JWS._orig_slots
    signature_cls = Signature


def b64(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return jose_b64.b64encode(data).decode("ascii")


def b64decode(data: str) -> bytes:
    return jose_b64.b64decode(data)


def jwk_of(key: PrivateKey) -> jose_jwk.JWK:
    """The josepy JWK of a private key (EC P-256/P-384 or RSA)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            raise ValueError(f"unsupported EC curve {key.curve.name} (use P-256 or P-384)")
        return jose_jwk.JWKEC(key=key)
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ValueError(f"RSA key of {key.key_size} bits is too small (2048 at least)")
        return jose_jwk.JWKRSA(key=key)
    raise TypeError(f"unsupported account key type {type(key).__name__}")


def alg_for(key: PrivateKey) -> jwa.JWASignature:
    """ES256 for P-256, ES384 for P-384, RS256 for RSA (RFC 7518 §3.1)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": jwa.ES256, "secp384r1": jwa.ES384}[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return jwa.RS256
    raise TypeError(f"unsupported account key type {type(key).__name__}")


def _public_jwk(key: PrivateKey | PublicKey) -> jose_jwk.JWK:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return jose_jwk.JWKEC(key=key)
    if isinstance(key, rsa.RSAPublicKey):
        return jose_jwk.JWKRSA(key=key)
    return jwk_of(key).public_key()


def public_jwk_json(key: PrivateKey | PublicKey) -> dict[str, Any]:
    """The public JWK as a JSON object (what goes into ``jwk`` headers and payloads)."""
    out: dict[str, Any] = _public_jwk(key).to_json()
    return out


def thumbprint(key: PrivateKey | PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), base64url; josepy returns raw bytes."""
    return b64(_public_jwk(key).thumbprint())


def key_authorization(token: str, key: PrivateKey | PublicKey) -> str:
    """``token || '.' || base64url(thumbprint(accountKey))`` (RFC 8555 §8.1)."""
    if not token or any(c not in _B64_CHARS for c in token):
        # §8.3/§8.4: tokens are base64url; anything else must never reach a file name or DNS.
        raise ValueError(f"challenge token is not base64url: {token!r}")
    return f"{token}.{thumbprint(key)}"


def dns01_txt_value(key_authorization: str) -> str:
    """base64url(SHA-256(key authorization)) (RFC 8555 §8.4)."""
    return b64(hashlib.sha256(key_authorization.encode("ascii")).digest())


_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _payload_bytes(payload: Any) -> bytes:
    # POST-as-GET (§6.3) signs the empty string, not "{}" nor "null".
    if payload is None:
        return b""
    return json.dumps(payload, separators=(",", ":")).encode()


def sign(payload: Any, key: PrivateKey, *, url: str, nonce: str | None,
         kid: str | None = None) -> dict[str, Any]:
    """Flattened JWS for one ACME request.

    ``payload=None`` means POST-as-GET. With ``kid`` the account URL identifies the key
    (§6.2); without, the public ``jwk`` is embedded (newAccount, revocation by certificate
    key). ``nonce=None`` only for the inner JWS of keyChange (§7.3.5).
    """
    if not url:
        raise ValueError("JWS needs the request URL (RFC 8555 §6.4)")
    if kid is not None and not kid:
        raise ValueError("empty kid")
    jwk = jwk_of(key)
    alg = alg_for(key)
    headers: dict[str, Any] = {"url": url}
    if nonce is not None:
        headers["nonce"] = nonce
    if kid is not None:
        headers["kid"] = kid
    jws = JWS.sign(_payload_bytes(payload), key=jwk, alg=alg, include_jwk=kid is None,
                   protect=_PROTECT, **headers)
    out: dict[str, Any] = jws.to_partial_json(flat=True)
    return {k: out[k] for k in ("protected", "payload", "signature")}


def eab_binding(account_key: PrivateKey, *, eab_kid: str, hmac_key_b64: str,
                url: str) -> dict[str, Any]:
    """externalAccountBinding object for newAccount (RFC 8555 §7.3.4).

    A JWS with ``alg`` HS256, ``kid`` the CA's key identifier, ``url`` the newAccount URL
    and no nonce, over the account's public JWK, MACed with the base64url-decoded key.
    """
    if not eab_kid:
        raise ValueError("EAB key identifier is empty")
    try:
        raw = b64decode(hmac_key_b64.strip())
    except Exception as exc:
        raise ValueError("EAB HMAC key is not base64url") from exc
    if not raw:
        raise ValueError("EAB HMAC key is empty")
    payload = json.dumps(public_jwk_json(account_key), separators=(",", ":")).encode()
    jws = JWS.sign(payload, key=jose_jwk.JWKOct(key=raw), alg=jwa.HS256, include_jwk=False,
                   protect=frozenset({"alg", "kid", "url"}), kid=eab_kid, url=url)
    out: dict[str, Any] = jws.to_partial_json(flat=True)
    return {k: out[k] for k in ("protected", "payload", "signature")}


def key_change_payload(*, account_url: str, old_key: PrivateKey, new_key: PrivateKey,
                       url: str) -> dict[str, Any]:
    """Inner JWS of keyChange (RFC 8555 §7.3.5): signed by the NEW key, with ``jwk`` and
    ``url`` but no nonce, over ``{"account": <kid>, "oldKey": <old public JWK>}``."""
    if not account_url:
        raise ValueError("key rollover needs the account URL")
    inner = {"account": account_url, "oldKey": public_jwk_json(old_key)}
    return sign(inner, new_key, url=url, nonce=None)
