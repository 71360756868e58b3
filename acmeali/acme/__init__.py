"""Client side of ACME (RFC 8555): no storage, no Alibaba Cloud knowledge.

``client.AcmeClient`` is the entry point; ``errors`` holds the exception tree and
``messages`` the resources as frozen dataclasses. Imported lazily by callers (it pulls in
requests, josepy and cryptography).
"""

from __future__ import annotations

from acmeali.acme.client import REVOCATION_REASONS, AcmeClient, identifier_for, select_chain
from acmeali.acme.errors import (
    AccountDoesNotExist,
    AcmeError,
    AcmeProblem,
    AcmeTimeout,
    AcmeUsageError,
    AuthorizationFailed,
    BadCSR,
    BadNonce,
    ChallengeFailure,
    ExternalAccountRequired,
    OrderFailed,
    RateLimited,
    Subproblem,
    TransportError,
    Unauthorized,
    UserActionRequired,
)
from acmeali.acme.messages import (
    Account,
    Authorization,
    Challenge,
    Directory,
    DirectoryMeta,
    Identifier,
    Order,
    Problem,
    RenewalInfo,
)

__all__ = [
    "REVOCATION_REASONS",
    "Account",
    "AccountDoesNotExist",
    "AcmeClient",
    "AcmeError",
    "AcmeProblem",
    "AcmeTimeout",
    "AcmeUsageError",
    "Authorization",
    "AuthorizationFailed",
    "BadCSR",
    "BadNonce",
    "Challenge",
    "ChallengeFailure",
    "Directory",
    "DirectoryMeta",
    "ExternalAccountRequired",
    "Identifier",
    "Order",
    "OrderFailed",
    "Problem",
    "RateLimited",
    "RenewalInfo",
    "Subproblem",
    "TransportError",
    "Unauthorized",
    "UserActionRequired",
    "identifier_for",
    "select_chain",
]
