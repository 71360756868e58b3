"""Turn certbot's lineages and account into acmeali's, without asking the CA for anything.

certbot keeps (under its ``--config-dir``, ``/etc/letsencrypt`` by default)::

    renewal/<name>.conf                       ConfigObj text: file paths + [renewalparams]
    live/<name>/{cert,chain,fullchain,privkey}.pem -> ../../archive/<name>/<kind>N.pem
    accounts/<host[:port]><path>/<id>/{private_key.json,regr.json,meta.json}

The live bundle is copied as version 1 of an acmeali lineage of the same name, and the
renewal parameters that have an acmeali counterpart become the lineage's recorded
settings (as if given to ``issue`` as flags, so they outrank ``[defaults]``). What has no
clean counterpart (nginx/apache/DNS plugins, a webroot per name, hook directories) is
reported, never guessed. The account of each lineage's server is imported once (the JWK
key and the account URL), so the first renewal registers nothing.

Importing into certbot's own directory (``--state-dir`` = ``--config-dir``) keeps every path
a server configuration names: acmeali re-points ``live/<name>/*.pem`` at its own archive
copy of the same bytes. certbot could no longer renew such a lineage, so its
``renewal/<name>.conf`` is renamed to ``<name>.conf.imported`` (certbot reads ``*.conf``).
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from acmeali.errors import UsageError

if TYPE_CHECKING:
    from acmeali.lineage import LineageMeta
    from acmeali.store.host import HostStore

IMPORTED_SUFFIX = ".imported"
# certbot renewalparams that say where certbot itself lives: nothing to map, nothing lost.
_INERT = {"account", "server", "authenticator", "installer", "config_dir", "work_dir",
          "logs_dir", "key_type", "rsa_key_size", "elliptic_curve", "http01_port",
          "http01_address", "webroot_path", "webroot_map", "pre_hook", "post_hook",
          "renew_hook", "deploy_hook", "reuse_key", "must_staple", "preferred_chain",
          "pref_challs", "manual_public_ip_logging_ok", "version", "user_agent",
          "user_agent_comment", "no_verify_ssl", "strict_permissions", "eab_kid",
          "eab_hmac_key", "preferred_challenges", "manual_auth_hook",
          "manual_cleanup_hook", "key_path", "issuance_timeout", "new_key",
          "required_profile", "preferred_profile", "ip_addresses", "manual"}


@dataclass
class CertbotLineage:
    """One ``renewal/<name>.conf`` and what it points at."""

    name: str
    conf_path: Path
    top: dict[str, str]
    params: dict[str, str]
    webroot_map: dict[str, str] = field(default_factory=dict)

    @property
    def server(self) -> str | None:
        return self.params.get("server") or None


@dataclass
class Mapping:
    """acmeali settings for a certbot lineage, and what could not be carried over."""

    settings: dict[str, Any]
    unmapped: list[str]


@dataclass
class ImportedAccount:
    server: str
    url: str
    key_pem: bytes
    key_type: str
    contacts: list[str]
    created: str | None


# ------------------------------------------------------------------ reading certbot's files
_SECTION = re.compile(r"^(\[+)\s*([^\]]+?)\s*\]+$")


def parse_renewal_conf(text: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(top-level keys, [renewalparams], [[webroot_map]]) of certbot's ConfigObj file.

    Only the subset certbot writes: ``key = value`` lines, sections, full-line comments.
    Values keep certbot's own spelling (lists stay comma-separated strings).
    """
    top: dict[str, str] = {}
    params: dict[str, str] = {}
    webroot_map: dict[str, str] = {}
    current = top
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _SECTION.match(line)
        if m:
            section = m.group(2)
            current = (params if section == "renewalparams"
                       else webroot_map if section == "webroot_map" else {})
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        current[key.strip()] = value
    return top, params, webroot_map


def _list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def find_lineages(config_dir: Path, names: tuple[str, ...] = ()) -> list[CertbotLineage]:
    renewal = config_dir / "renewal"
    if not renewal.is_dir():
        raise UsageError(f"{config_dir} has no renewal/ directory: not a certbot configuration "
                         "directory", hint="pass certbot's --config-dir (default "
                                           "/etc/letsencrypt)")
    found: list[CertbotLineage] = []
    for conf in sorted(renewal.glob("*.conf")):
        name = conf.name[: -len(".conf")]
        if names and name not in names:
            continue
        try:
            text = conf.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {conf}: {exc}") from None
        top, params, webroot_map = parse_renewal_conf(text)
        found.append(CertbotLineage(name, conf, top, params, webroot_map))
    unknown = [n for n in names if n not in {lin.name for lin in found}]
    if unknown:
        raise UsageError(f"no certbot lineage named {', '.join(unknown)} in {renewal}")
    return found


def read_bundle(config_dir: Path, lineage: CertbotLineage) -> dict[str, bytes]:
    """The four live PEM files: ``<config-dir>/live/<name>/`` first (a copied directory),
    else the absolute paths the renewal file names."""
    out: dict[str, bytes] = {}
    for kind in ("privkey", "cert", "chain", "fullchain"):
        candidates = [config_dir / "live" / lineage.name / f"{kind}.pem"]
        if lineage.top.get(kind):
            candidates.append(Path(lineage.top[kind]))
        for path in candidates:
            try:
                out[kind] = path.read_bytes()
                break
            except OSError:
                continue
        else:
            raise UsageError(f"certbot lineage {lineage.name}: cannot read its {kind}.pem "
                             f"({', '.join(str(c) for c in candidates)})")
    return out


# ------------------------------------------------------------------ settings
def map_settings(lineage: CertbotLineage, config_dir: Path) -> Mapping:
    """acmeali settings for what certbot recorded; the rest is named in ``unmapped``."""
    p = lineage.params
    s: dict[str, Any] = {}
    unmapped: list[str] = []
    auth = p.get("authenticator", "")
    if auth == "standalone":
        s["challenge"] = "http-01"
        if p.get("http01_port"):
            try:
                s["http_port"] = int(p["http01_port"])
            except ValueError:
                unmapped.append(f"http01_port = {p['http01_port']!r} is not a port number")
        if p.get("http01_address"):
            s["http_address"] = p["http01_address"]
    elif auth == "webroot":
        roots = list(dict.fromkeys([*lineage.webroot_map.values(), *_list(p.get("webroot_path"))]))
        if len(roots) == 1:
            s["challenge"] = "http-01"
            s["webroot"] = roots[0]
        else:
            unmapped.append(
                f"authenticator webroot with {len(roots) or 'no'} webroot directories "
                f"({', '.join(roots)}): acmeali has one webroot per lineage; set `webroot` in "
                "its [[certificates]] table (or issue again with --webroot DIR)")
    elif auth == "manual":
        unmapped.append(
            "authenticator manual"
            + (f" (auth hook {p['manual_auth_hook']!r})" if p.get("manual_auth_hook") else "")
            + ": certbot's hooks read CERTBOT_* variables; rewrite it as --dns-hook (which "
            "gets ACMEALI_ACTION/TXT_NAME/TXT_VALUE) or use --dns alidns")
    elif auth.startswith("dns"):
        unmapped.append(f"authenticator {auth}: no acmeali equivalent; use --dns alidns, or "
                        "--dns-hook CMD for another DNS provider")
    elif auth:
        unmapped.append(f"authenticator {auth}: acmeali does not edit web server "
                        "configurations; use --webroot DIR (and a deploy hook that reloads it)")
    if p.get("installer") and p["installer"] != "None":
        unmapped.append(f"installer {p['installer']}: acmeali installs nothing into server "
                        "configurations; the live paths stay, add a deploy hook such as "
                        f"'systemctl reload {p['installer']}'")
    for ours, theirs in (("pre_hook", "pre_hook"), ("post_hook", "post_hook"),
                         ("deploy_hook", "renew_hook"), ("deploy_hook", "deploy_hook")):
        if p.get(theirs) and p[theirs] != "None":
            s[ours] = p[theirs]
    if _true(p.get("reuse_key")):
        s["reuse_key"] = True
    if _true(p.get("must_staple")):
        s["must_staple"] = True
    if p.get("preferred_chain") and p["preferred_chain"] != "None":
        s["preferred_chain"] = p["preferred_chain"]
    if p.get("required_profile") or p.get("preferred_profile"):
        s["profile"] = p.get("required_profile") or p.get("preferred_profile")
    if lineage.top.get("renew_before_expiry"):
        unmapped.append(f"renew_before_expiry = {lineage.top['renew_before_expiry']}: acmeali "
                        "has one rule for all lineages ([renewal] days_before_expiry); by "
                        "default it follows the CA's ARI window, else a third of the lifetime")
    other = sorted(k for k in p if k not in _INERT)
    if other:
        unmapped.append(f"certbot settings without an acmeali counterpart: {', '.join(other)}")
    return Mapping(s, unmapped)


def hook_directories(config_dir: Path) -> list[str]:
    """certbot's renewal-hooks/{pre,deploy,post} scripts, which acmeali does not run."""
    found = []
    for kind in ("pre", "deploy", "post"):
        d = config_dir / "renewal-hooks" / kind
        try:
            scripts = sorted(e.name for e in d.iterdir() if e.is_file())
        except OSError:
            continue
        if scripts:
            found.append(f"renewal-hooks/{kind}: {', '.join(scripts)}")
    return found


# ------------------------------------------------------------------ accounts
def account_dir(config_dir: Path, server: str, account_id: str) -> Path:
    """Where certbot keeps ``account_id`` of ``server``: accounts/<netloc><path>/<id>."""
    parts = urlsplit(server)
    return config_dir / "accounts" / (parts.netloc + parts.path).strip("/") / account_id


def _b64int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def jwk_to_pem(jwk: dict[str, Any]) -> bytes:
    """The PEM (PKCS#8) of certbot's private_key.json: an RSA or EC private JWK."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key: Any
    kty = jwk.get("kty")
    if kty == "RSA":
        n, e = _b64int(jwk["n"]), _b64int(jwk["e"])
        key = rsa.RSAPrivateNumbers(
            p=_b64int(jwk["p"]), q=_b64int(jwk["q"]), d=_b64int(jwk["d"]),
            dmp1=_b64int(jwk["dp"]), dmq1=_b64int(jwk["dq"]), iqmp=_b64int(jwk["qi"]),
            public_numbers=rsa.RSAPublicNumbers(e, n)).private_key()
    elif kty == "EC":
        curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
        curve = curves.get(jwk.get("crv", ""))
        if curve is None:
            raise ValueError(f"unsupported curve {jwk.get('crv')!r}")
        key = ec.derive_private_key(_b64int(jwk["d"]), curve)
    else:
        raise ValueError(f"unsupported key type {kty!r}")
    return bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def read_account(config_dir: Path, server: str, account_id: str) -> ImportedAccount:
    from acmeali.keys import key_type_of, load_private_key

    d = account_dir(config_dir, server, account_id)
    try:
        regr = json.loads((d / "regr.json").read_text(encoding="utf-8"))
        jwk = json.loads((d / "private_key.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"certbot account {account_id} for {server}: cannot read {d} "
                         f"({getattr(exc, 'strerror', None) or exc})") from None
    try:
        meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    url = regr.get("uri") if isinstance(regr, dict) else None
    if not isinstance(url, str) or not url.startswith("https://"):
        raise UsageError(f"certbot account {account_id}: {d / 'regr.json'} has no account URL")
    try:
        key_pem = jwk_to_pem(jwk)
    except (KeyError, ValueError, TypeError) as exc:
        raise UsageError(f"certbot account {account_id}: {d / 'private_key.json'} is not a "
                         f"usable private key ({exc})") from None
    body = regr.get("body") or {}
    contacts = [c for c in body.get("contact", []) if isinstance(c, str)]
    return ImportedAccount(server=server, url=url, key_pem=key_pem,
                           key_type=key_type_of(load_private_key(key_pem)), contacts=contacts,
                           created=meta.get("creation_dt") if isinstance(meta, dict) else None)


def save_account(store: HostStore, account: ImportedAccount) -> None:
    from acmeali.lineage import to_iso, utcnow

    record = {"url": account.url, "contacts": account.contacts,
              "created": account.created or to_iso(utcnow()), "key_type": account.key_type,
              "server": account.server, "imported_from": "certbot"}
    store.save_account(account.server, record, account.key_pem)


# ------------------------------------------------------------------ lineages
def build_meta(lineage: CertbotLineage, bundle: dict[str, bytes], mapping: Mapping,
               server: str) -> tuple[LineageMeta, Any]:
    """The acmeali metadata for ``bundle`` (not yet stored) and the private key."""
    from acmeali import certutil, keys
    from acmeali.config import CertSettings
    from acmeali.lineage import LineageMeta, to_iso, utcnow

    key = keys.load_private_key(bundle["privkey"], source=f"certbot lineage {lineage.name}")
    leaf = certutil.load_chain(bundle["cert"])[0]
    names = certutil.names_of(leaf)
    if not names:
        raise UsageError(f"certbot lineage {lineage.name}: its certificate names no domain")
    key_type = keys.key_type_of(key)
    settings = dict(mapping.settings, key_type=key_type)
    # Recorded as issuance records settings: everything but deploy, tuples as lists.
    record = {k: (list(v) if isinstance(v, tuple) else v)
              for k, v in asdict(CertSettings(**settings)).items() if k != "deploy"}
    meta = LineageMeta(name=lineage.name, domains=names, server=server, key_type=key_type,
                       settings=record, flag_keys=sorted(settings), deploy=[])
    meta.last_renewal = {"time": to_iso(utcnow()), "ok": True, "error": None,
                         "imported_from": "certbot"}
    return meta, key


def store_lineage(store: HostStore, meta: LineageMeta, key: Any,
                  bundle: dict[str, bytes]) -> int:
    """Write the bundle as a new version, make it live, save the metadata."""
    from acmeali import certutil

    version = store.write_version(meta.name, privkey_pem=bundle["privkey"],
                                  cert_pem=bundle["cert"], chain_pem=bundle["chain"],
                                  fullchain_pem=bundle["fullchain"])
    _current_first(store, meta.name, version)
    store.activate(meta.name, version)
    facts = certutil.cert_facts(bundle["fullchain"], key, version)
    from acmeali.keys import key_type_of

    facts.key_type = key_type_of(key)
    meta.current = facts
    store.save_meta(meta)
    return version


def _current_first(store: HostStore, name: str, version: int) -> None:
    """Create ``live/<name>/current`` before ``activate`` re-points the ``*.pem`` links at it.

    In certbot's own directory those links are what nginx reads right now; ``activate``
    switches them before it creates ``current`` (fine for a new lineage, where nothing
    reads them yet), which would leave them dangling for a moment here.
    """
    from acmeali.store.files import FileStore

    if not isinstance(store, FileStore):
        return  # a shared storage: this host's live/ is written by activate itself
    live = store.root / "live" / store.safe_name(name)
    if not live.is_dir() or (live / "current").is_symlink():
        return
    tmp = live / f".current.{os.getpid()}.import.tmp"
    os.symlink(f"../../archive/{store.safe_name(name)}/v{version}", tmp)
    os.replace(tmp, live / "current")


def disable_certbot_conf(lineage: CertbotLineage) -> Path:
    """Rename certbot's renewal file so certbot stops renewing the lineage (reversible)."""
    target = lineage.conf_path.with_name(lineage.conf_path.name + IMPORTED_SUFFIX)
    os.replace(lineage.conf_path, target)
    return target
