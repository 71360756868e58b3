"""One error tree for the whole tool.

Every error knows its exit code and how to show itself in one paragraph, so the CLI's
``main`` is a thin mapping (click's model) and lower layers never print.

    AcmealiError (exit 1)            an operation failed
    ├── UsageError (exit 2)          bad arguments, bad input files, bad names
    │   ├── ConfigError              names the TOML key path that is wrong
    │   └── KeyFileError             missing/unreadable key, wrong passphrase, not a key
    ├── StoreError                   state directory problems (corrupt lineage, I/O)
    │   └── LockHeld                 another process holds a lock
    ├── ChallengeError               a solver could not present/verify a challenge
    ├── acme.errors.AcmeError        protocol and CA problems (see acme/errors.py)
    ├── aliyun.errors.AliyunError    Alibaba Cloud API failures
    └── DeployError                  a deploy target failed
"""

from __future__ import annotations


class AcmealiError(Exception):
    """Base of all expected failures; anything else is a bug and shows a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        """The paragraph shown to the user: what went wrong, then what to do."""
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(AcmealiError):
    exit_code = 2


class ConfigError(UsageError):
    def __init__(self, path: str, message: str, *, source: str | None = None) -> None:
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{path}: {message}" if path else f"{where}{message}")
        self.key_path = path


class KeyFileError(UsageError):
    pass


class StoreError(AcmealiError):
    pass


class LockHeld(StoreError):
    """Raised when a lock is taken by a live process and the caller chose not to wait."""


class ChallengeError(AcmealiError):
    pass


class DeployError(AcmealiError):
    pass
