"""`acmeali key generate|show|pkcs8` and `acmeali csr`: keys and CSRs without the CA.

Useful on their own (bring-your-own-CSR issuance, converting a key to the unencrypted
PKCS#8 Alibaba Cloud requires) and as the walk-through of what issuance does inside.
cryptography is imported inside the handlers so that ``acmeali --help`` stays cheap.
Every bad input is a one-line exit-2 error raised before anything is written.
"""

from __future__ import annotations

from pathlib import Path

from acmeali.cli import CommandParsers
from acmeali.config import KEY_TYPES
from acmeali.context import Context
from acmeali.errors import UsageError


def register(cp: CommandParsers) -> None:
    key = cp.add("key", help="generate, inspect and convert private keys", leaf=False,
                 description="Generate, inspect and convert private keys (EC P-256/P-384, "
                             "RSA 2048/3072/4096).")
    sub = CommandParsers.group(key, "key_command")

    g = sub.add("generate", help="write a new private key (mode 0600)")
    g.add_argument("--type", dest="key_type", choices=KEY_TYPES, default="ec256",
                   help="key type (default: ec256)")
    g.add_argument("--out", required=True, metavar="FILE", help="where to write the key")
    g.add_argument("--pkcs8", action="store_true",
                   help="write PKCS#8 instead of the traditional PKCS#1/SEC1 form")
    g.add_argument("--passphrase-file", metavar="F",
                   help="encrypt the key with the first line of this file")
    g.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    g.set_defaults(handler=run_generate)

    s = sub.add("show", help="key type, size, public-key SHA-256 and RFC 7638 JWK thumbprint")
    s.add_argument("file", metavar="FILE", help="a PEM (or DER) private key")
    s.add_argument("--passphrase-file", metavar="F", help="passphrase of an encrypted key")
    s.set_defaults(handler=run_show)

    p = sub.add("pkcs8", help="convert a key to unencrypted PKCS#8 (what Alibaba Cloud accepts)")
    p.add_argument("infile", metavar="IN", help="PKCS#1, SEC1 or PKCS#8 private key")
    p.add_argument("--out", required=True, metavar="OUT", help="where to write the PKCS#8 key")
    p.add_argument("--passphrase-file", metavar="F", help="passphrase of an encrypted IN")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(handler=run_pkcs8)

    c = cp.add("csr", help="write a certificate signing request for a key and names")
    c.add_argument("--key", required=True, metavar="FILE", help="the certificate's private key")
    c.add_argument("-d", "--domain", dest="names", action="append", required=True,
                   metavar="NAME", help="a DNS name, wildcard or IP address (repeatable)")
    c.add_argument("--email", metavar="ADDR", help="put emailAddress in the subject")
    c.add_argument("--must-staple", action="store_true",
                   help="request OCSP must-staple (TLS Feature status_request)")
    c.add_argument("--out", required=True, metavar="FILE", help="where to write the PEM CSR")
    c.add_argument("--passphrase-file", metavar="F", help="passphrase of an encrypted key")
    c.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    c.set_defaults(handler=run_csr)


def _check_out(out: str, force: bool) -> Path:
    """Refuse early (before slow RSA generation) when the output cannot be written."""
    path = Path(out)
    if path.is_dir():
        raise UsageError(f"--out {out}: is a directory; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"--out {out}: directory {path.parent} does not exist")
    if (path.exists() or path.is_symlink()) and not force:
        raise UsageError(f"--out {out}: file exists; pass --force to overwrite it")
    return path


def _write(path: Path, data: bytes, *, mode: int, force: bool) -> None:
    from acmeali.store.files import write_file_atomic

    try:
        write_file_atomic(path, data, mode=mode, overwrite=force)
    except FileExistsError:
        raise UsageError(f"--out {path}: file exists; pass --force to overwrite it") from None
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot write it ({exc.strerror})") from None


def run_generate(ctx: Context) -> int:
    from acmeali import keys

    out = _check_out(ctx.arg("out"), ctx.arg("force", False))
    pf = ctx.arg("passphrase_file")
    passphrase = keys.read_passphrase_file(pf) if pf else None
    key_type: str = ctx.arg("key_type")
    if key_type.startswith("rsa"):
        ctx.ui.progress(f"generating {key_type} key ...")
    key = keys.generate_key(key_type)
    pem = keys.private_key_pem(key, pkcs8=bool(ctx.arg("pkcs8")), passphrase=passphrase)
    _write(out, pem, mode=0o600, force=ctx.arg("force", False))
    ctx.ui.done_progress()
    ctx.ui.result(f"wrote {key_type} key to {out} ({keys.pem_format(pem)}, mode 0600)")
    return 0


def run_show(ctx: Context) -> int:
    from acmeali import keys

    path = ctx.arg("file")
    key = keys.load_private_key_file(path, ctx.arg("passphrase_file"))
    kind = keys.key_type_of(key)
    algo = {"ec256": "EC P-256", "ec384": "EC P-384"}.get(kind, "RSA")
    data = keys.read_key_file(path)
    lines = [
        f"file: {path}",
        f"type: {kind} ({algo}, {key.key_size} bits)",
        f"format: {keys.pem_format(data)}",
        f"public key sha256: {keys.public_key_sha256(key)}",
        f"jwk thumbprint: {keys.jwk_thumbprint(key)}",
    ]
    ctx.ui.result("\n".join(lines))
    return 0


def run_pkcs8(ctx: Context) -> int:
    from acmeali import keys

    out = _check_out(ctx.arg("out"), ctx.arg("force", False))
    key = keys.load_private_key_file(ctx.arg("infile"), ctx.arg("passphrase_file"))
    _write(out, keys.private_key_pem(key, pkcs8=True), mode=0o600, force=ctx.arg("force", False))
    ctx.ui.result(f"wrote unencrypted PKCS#8 {keys.key_type_of(key)} key to {out} (mode 0600)")
    return 0


def _check_email(addr: str) -> str:
    local, at, domain = addr.partition("@")
    if (not at or not local or "." not in domain or not addr.isascii()
            or any(c.isspace() for c in addr)):
        raise UsageError(f"--email {addr!r} is not an e-mail address (expected name@example.com)")
    return addr


def run_csr(ctx: Context) -> int:
    from acmeali.names import InvalidName, normalize_names

    try:
        names, notices = normalize_names(ctx.arg("names") or [])
    except InvalidName as exc:
        raise UsageError(f"-d: {exc}") from None
    email = _check_email(ctx.arg("email")) if ctx.arg("email") else None
    out = _check_out(ctx.arg("out"), ctx.arg("force", False))

    from acmeali import keys

    key = keys.load_private_key_file(ctx.arg("key"), ctx.arg("passphrase_file"))
    for notice in notices:
        ctx.ui.info(f"notice: {notice}")
    csr = keys.build_csr(key, names, email=email, must_staple=bool(ctx.arg("must_staple")))
    _write(out, csr, mode=0o644, force=ctx.arg("force", False))
    ctx.ui.result(f"wrote CSR for {', '.join(names)} to {out}")
    return 0
