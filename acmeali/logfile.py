"""The run log: every run appends what ``-v`` would show to a rotated file.

certbot users look in ``/var/log/letsencrypt/letsencrypt.log`` after a failed cron run;
acmeali's stderr is gone by then. The file (default ``<state>/logs/acmeali.log``,
``--log-file`` or ``[logging] file``) gets a header line per run (the command line with
secret-bearing values blanked), every line the terminal output would have at ``-v``
(also under ``-q``), the ``acmeali`` loggers at INFO (DEBUG with ``-vv``), and the exit
code. Rotation is by size (``acmeali.log.1``, ``.2``, ...); files are 0600.

Secrets never get in: besides the pattern redaction stderr logs use, the values of the
secret environment variables and of ``--eab-hmac-key`` are blanked wherever they appear.
A log that cannot be opened (a read-only state directory, say) never fails the command.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Sequence
from io import TextIOWrapper
from pathlib import Path
from typing import TYPE_CHECKING

from acmeali import __version__
from acmeali.errors import AcmealiError

if TYPE_CHECKING:
    from acmeali.context import Context

# Environment variables whose values are blanked: any name that says it holds a secret
# (ALIBABA_CLOUD_ACCESS_KEY_SECRET, ..._SECURITY_TOKEN, ACMEALI_EAB_HMAC_KEY, TSIG secrets).
SECRET_ENV = re.compile(r"SECRET|TOKEN|HMAC|PASSWORD|PASSPHRASE|PRIVATE")
SECRET_FLAGS = ("--eab-hmac-key",)
_RESULT_CAP = 4000  # characters of one result kept (a `certs list` of 1,000 rows is not news)


def _secret_values(argv: Sequence[str], extra: Sequence[str | None] = ()) -> list[str]:
    values = [v for k, v in os.environ.items() if SECRET_ENV.search(k.upper())]
    values += [v for v in extra if v]
    for i, arg in enumerate(argv):
        for flag in SECRET_FLAGS:
            if arg == flag and i + 1 < len(argv):
                values.append(argv[i + 1])
            elif arg.startswith(flag + "="):
                values.append(arg.split("=", 1)[1])
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


class _Blank(logging.Filter):
    """Pattern redaction (context.redact) plus the literal secret values of this run."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        from acmeali.context import redact

        msg = record.getMessage()
        clean = redact(msg)
        for s in self._secrets:
            clean = clean.replace(s, "***")
        if clean != msg:
            record.msg, record.args = clean, None
        return True


class _RotatingFile(logging.FileHandler):
    """Size-rotated like ``logging.handlers.RotatingFileHandler`` (``acmeali.log.1`` is the
    newest old file), without importing ``logging.handlers`` (socket, pickle, queue: ~20 ms
    on every cron run). Files are created 0600: the log names hosts and accounts."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.max_bytes = max_bytes
        self.backups = backups
        super().__init__(path, mode="a", encoding="utf-8")

    def _open(self) -> TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.stream is not None and self.max_bytes > 0:
                size = self.stream.tell()
                if size and size + len(self.format(record)) + 1 > self.max_bytes:
                    self._rotate()
        except OSError:
            self.handleError(record)
        super().emit(record)

    def _rotate(self) -> None:
        if self.stream is not None:
            self.stream.close()
        base = self.baseFilename
        if self.backups > 0:
            for i in range(self.backups - 1, 0, -1):
                if os.path.exists(f"{base}.{i}"):
                    os.replace(f"{base}.{i}", f"{base}.{i + 1}")
            os.replace(base, f"{base}.1")
        else:
            os.truncate(base, 0)
        self.stream = self._open()


class _WhenReady(logging.Handler):
    """Writes to the log file once one of ``anchors`` exists (at once without anchors),
    keeping the records until then. Filters and levels apply on entry."""

    def __init__(self, path: Path, anchors: tuple[Path, ...], max_bytes: int,
                 backups: int) -> None:
        super().__init__()
        self._path, self._anchors = path, anchors
        self._max_bytes, self._backups = max_bytes, backups
        self._file: _RotatingFile | None = None
        self._pending: list[logging.LogRecord] = []
        self._failed = False

    def _ready(self) -> bool:
        if self._file is not None:
            return True
        if self._failed or (self._anchors and not any(a.is_dir() for a in self._anchors)):
            return False
        try:
            for d in reversed([self._path.parent, *self._path.parent.parents]):
                if not d.is_dir():
                    d.mkdir(mode=0o700)  # new levels 0700
            self._file = _RotatingFile(self._path, self._max_bytes, self._backups)
        except OSError:
            self._failed = True  # never fail the command over its log
            return False
        self._file.setFormatter(self.formatter)
        for record in self._pending:
            self._file.emit(record)
        self._pending.clear()
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if self._ready():
            assert self._file is not None
            self._file.emit(record)
        elif not self._failed:
            self._pending.append(record)

    def close(self) -> None:
        self._ready()
        if self._file is not None:
            self._file.close()
        super().close()


class RunLog:
    """The open log of one run; ``finish`` writes the exit code and closes it."""

    def __init__(self, handler: logging.Handler | None, run_logger: logging.Logger) -> None:
        self.handler = handler
        self._logger = run_logger

    def finish(self, code: int) -> None:
        if self.handler is None:
            return
        self._logger.info("exit %d", code)
        logging.getLogger("acmeali").removeHandler(self.handler)
        self._logger.removeHandler(self.handler)
        self.handler.close()
        self.handler = None


def loggable(text: str) -> str:
    """``text`` with key blocks redacted, *then* capped: a cap first could cut a private key
    block before its END line, where the redaction pattern no longer finds it."""
    from acmeali.context import redact

    text = redact(text)
    if len(text) > _RESULT_CAP:
        text = f"{text[:_RESULT_CAP]}... ({len(text) - _RESULT_CAP} more characters)"
    return text


def log_path(ctx: Context) -> Path | None:
    """Where this run logs, or None when logging to a file is switched off."""
    flag = ctx.arg("log_file")
    if flag:
        return Path(flag)
    settings = ctx.config.logging
    if not settings.enabled:
        return None
    if settings.file:
        return Path(settings.file)
    return ctx.state_dir / "logs" / "acmeali.log"


def start(ctx: Context, argv: Sequence[str]) -> RunLog:
    """Open the run log and connect the UI and the ``acmeali`` loggers to it."""
    run_logger = logging.getLogger("acmeali.run")  # propagate=False: no stderr echo
    run_logger.propagate = False
    try:
        path = log_path(ctx)
        if path is None:
            return RunLog(None, run_logger)
        settings = ctx.config.logging
        # The default log lives in the state directory, and a state directory that holds
        # no account and no lineage yet gets none: a first try with bad input or a typo
        # leaves nothing behind. The records wait until one of them exists.
        explicit = bool(ctx.arg("log_file") or settings.file)
        anchors = () if explicit else (ctx.state_dir / "accounts", ctx.state_dir / "renewal")
        handler: logging.Handler = _WhenReady(path, anchors, settings.max_bytes,
                                              settings.backups)
    except (AcmealiError, OSError) as exc:
        # Not fatal: the command reports a bad config itself when it needs one.
        msg = exc.message if isinstance(exc, AcmealiError) else str(exc)
        if ctx.verbose:
            ctx.ui.err.write(f"note: no log file for this run ({msg})\n")
        return RunLog(None, run_logger)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Blank(_secret_values(argv, [ctx.config.acme.eab_hmac_key])))
    level = logging.DEBUG if ctx.verbose >= 2 else logging.INFO
    handler.setLevel(level)
    root = logging.getLogger("acmeali")
    for h in root.handlers:  # stderr keeps the level -v/-q chose
        if h.level == logging.NOTSET:
            h.setLevel(root.level)
    root.setLevel(min(root.level, level))
    root.addHandler(handler)
    run_logger.setLevel(logging.INFO)
    run_logger.handlers[:] = [handler]

    def sink(level: int, text: str) -> None:
        run_logger.log(level, "%s", loggable(text))

    ctx.ui.sink = sink
    run_logger.info("acmeali %s (python %s): acmeali %s", __version__,
                    sys.version.split()[0], " ".join(_blank_argv(argv)))
    return RunLog(handler, run_logger)


def _blank_argv(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    hide = False
    for arg in argv:
        if hide:
            out.append("***")
            hide = False
        elif arg in SECRET_FLAGS:
            out.append(arg)
            hide = True
        elif any(arg.startswith(f + "=") for f in SECRET_FLAGS):
            out.append(arg.split("=", 1)[0] + "=***")
        else:
            out.append(arg)
    return out
