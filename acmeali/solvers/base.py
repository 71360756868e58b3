"""The solver contract: one small protocol, plus optional capabilities found at run time.

Shaped after lego's ``challenge/provider.go``: the core is present / wait / clean up, so a
new way of publishing an answer is a small class. Issuance presents *every* task first,
then waits once, answers, and cleans up in ``finally`` (lego's prober) — so ``cleanup``
may be called for tasks whose ``present`` failed halfway, and must never raise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from acmeali.errors import ChallengeError

# RFC 8555 §8.1: tokens are base64url without padding. Anything else could, as a path
# component, escape the webroot; refuse it rather than trust the CA.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


@dataclass(frozen=True)
class ChallengeTask:
    """One identifier's challenge, with every value any solver could need precomputed."""

    identifier: str          # "example.com" (for "*.example.com" the CA gives the base name)
    token: str
    key_authorization: str   # token "." base64url(JWK thumbprint), RFC 8555 §8.1
    txt_name: str            # "_acme-challenge.<domain>" (dns-01)
    txt_value: str           # base64url(SHA-256(key_authorization)), RFC 8555 §8.4


class Solver(Protocol):
    """What issuance needs from a way of answering challenges."""

    challenge_type: str  # "http-01" | "dns-01"

    def present(self, tasks: Sequence[ChallengeTask]) -> None:
        """Publish every task's answer; raise ChallengeError/UsageError when one cannot be."""

    def wait_ready(self, tasks: Sequence[ChallengeTask], deadline: float) -> None:
        """Return once the CA can see the answers (``deadline`` is on ``time.monotonic``)."""

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        """Remove what ``present`` published; best effort, warns, never raises."""


@runtime_checkable
class HasReadyTimeout(Protocol):
    """Optional: a solver that knows how long its answers may take to become visible.

    Issuance may use it to size the ``deadline`` it gives ``wait_ready`` (lego's
    ``ProviderTimeout``); solvers without it are fine with the caller's choice.
    """

    def ready_timeout(self) -> float:
        """Seconds ``wait_ready`` may reasonably need."""


def check_token(token: str) -> str:
    """Return ``token`` if it is base64url as RFC 8555 requires, else raise ChallengeError."""
    if not _TOKEN.fullmatch(token):
        raise ChallengeError(f"the CA sent a challenge token that is not base64url: {token[:60]!r}")
    return token
