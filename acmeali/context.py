"""What every command handler gets: parsed args, lazily loaded config, state and output.

Precedence everywhere: command-line flag > config file > environment default > built-in.
"""

from __future__ import annotations

import argparse
import logging
import re
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acmeali.config import Config, default_state_dir, load_config, resolve_server
from acmeali.errors import UsageError
from acmeali.ui import UI

if TYPE_CHECKING:
    from acmeali.store.host import HostStore

# Values that must never reach a log line, whatever module logs them.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(access_?key_?secret|accesskeysecret|secret|password|passphrase|"
               r"hmac_?key|security_?token)(['\"]?\s*[:=]\s*['\"]?)([^\s'\",&]+)"),
    re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.S),
)


def redact(text: str) -> str:
    """Blank out secrets and private keys in a string meant for humans or logs."""
    text = _SECRET_PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    return _SECRET_PATTERNS[1].sub("<private key redacted>", text)


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        red = redact(msg)
        if red != msg:
            record.msg, record.args = red, None
        return True


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_RedactingFilter())
    root = logging.getLogger("acmeali")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def check_ca_bundle(path: str) -> None:
    """A usage error (exit 2) unless ``path`` is a file of PEM certificates: requests
    would otherwise fail at the first connection with an SSL error that names no file."""
    from acmeali.validate import MAX_CA_BUNDLE_BYTES, InvalidValue, read_input_file

    what = f"--ca-bundle {path}"
    if not Path(path).exists():
        raise UsageError(f"{what}: no such file; give a PEM file of trust roots")
    try:
        raw = read_input_file(path, what, limit=MAX_CA_BUNDLE_BYTES)
    except InvalidValue as exc:
        raise UsageError(str(exc)) from None
    from cryptography import x509

    try:
        x509.load_pem_x509_certificates(raw)
    except ValueError:
        raise UsageError(f"{what}: not a PEM file of certificates "
                         "(-----BEGIN CERTIFICATE----- blocks)",
                         hint="give the CA's trust roots in PEM form") from None


class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.verbose: int = getattr(args, "verbose", 0) or 0
        self.quiet: bool = bool(getattr(args, "quiet", False))
        self.ui = UI(verbose=self.verbose, quiet=self.quiet)
        setup_logging(self.verbose)
        if getattr(args, "non_interactive", False):
            # -n: every "is someone at the terminal?" check answers no, as under cron.
            import os
            import sys

            sys.stdin = open(os.devnull)  # the process's stdin from now on

    def arg(self, name: str, default: Any = None) -> Any:
        return getattr(self.args, name, default)

    @cached_property
    def config(self) -> Config:
        return load_config(self.arg("config"))

    @cached_property
    def state_dir(self) -> Path:
        flag = self.arg("state_dir")
        if flag:
            return Path(flag)
        if self.config.state_dir:
            return Path(self.config.state_dir)
        return default_state_dir()

    @cached_property
    def server(self) -> str:
        flag = self.arg("server")
        if self.arg("staging"):
            from acmeali.config import LETSENCRYPT_STAGING

            if flag and resolve_server(flag) != LETSENCRYPT_STAGING:
                raise UsageError("--staging and --server name different CAs; give one of them")
            return LETSENCRYPT_STAGING
        if flag:
            url = resolve_server(flag)
            if not url.startswith("https://"):
                raise UsageError(f"--server {flag!r}: expected an https:// ACME directory URL, "
                                 "letsencrypt or letsencrypt-staging")
            return url
        return self.config.acme.server

    @cached_property
    def ca_bundle(self) -> str | None:
        bundle: str | None = self.arg("ca_bundle") or self.config.acme.ca_bundle
        if bundle:
            check_ca_bundle(bundle)
        return bundle

    @cached_property
    def store(self) -> HostStore:
        """``[storage] backend``: the state directory, or a shared database (imported only
        when chosen) with this host's live files under the state directory."""
        from acmeali.store.host import open_host_store

        return open_host_store(self.config.storage, self.state_dir)
