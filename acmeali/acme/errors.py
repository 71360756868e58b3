"""Errors of the ACME layer, mapped in one place (``transport.py``) from HTTP and problems.

The CLI shows ``render()``; nothing here parses message text to decide what happened:
the problem document's ``type`` does (RFC 8555 §6.7).

    AcmealiError                          (acmeali.errors)
    └── AcmeError                         any protocol or CA failure
        ├── AcmeProblem                   the CA answered with a problem document
        │   ├── RateLimited               rateLimited: says when to retry
        │   ├── BadNonce                  badNonce: retried by transport, raised when exhausted
        │   ├── Unauthorized              unauthorized (also: deactivated account)
        │   ├── BadCSR                    badCSR
        │   ├── AccountDoesNotExist       accountDoesNotExist
        │   ├── UserActionRequired        userActionRequired: shows the instance URL / ToS
        │   └── ExternalAccountRequired   externalAccountRequired: needs --eab-kid/--eab-hmac-key
        ├── AuthorizationFailed           per identifier: challenge type + the CA's detail
        ├── OrderFailed                   the order became invalid during finalization
        ├── AcmeTimeout                   a poll did not finish before its deadline
        ├── TransportError                connection, TLS, or a non-ACME HTTP answer
        └── AcmeUsageError                the request cannot be made to this CA (exit 2)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from acmeali.errors import AcmealiError

ERROR_PREFIX = "urn:ietf:params:acme:error:"


def short_type(problem_type: str) -> str:
    """``urn:ietf:params:acme:error:badNonce`` -> ``badNonce``; other URIs are kept whole."""
    if problem_type.startswith(ERROR_PREFIX):
        return problem_type[len(ERROR_PREFIX):]
    return problem_type


@dataclass(frozen=True)
class Subproblem:
    """One entry of a problem's ``subproblems`` (RFC 8555 §6.7.1): which identifier, why."""

    type: str
    detail: str
    identifier: str | None = None


class AcmeError(AcmealiError):
    """Base of the protocol layer's failures."""


class AcmeUsageError(AcmeError):
    """The caller asked for something this CA cannot do (e.g. a profile it does not list)."""

    exit_code = 2


class AcmeProblem(AcmeError):
    """A problem document from the CA (``application/problem+json``)."""

    def __init__(self, type: str, detail: str = "", *, status: int | None = None,
                 subproblems: Sequence[Subproblem] = (), retry_after: float | None = None,
                 instance: str | None = None, url: str | None = None,
                 hint: str | None = None) -> None:
        self.type = short_type(type)
        self.detail = detail
        self.status = status
        self.subproblems = tuple(subproblems)
        self.retry_after = retry_after
        self.instance = instance
        self.url = url
        super().__init__(self._message(), hint=hint or self._default_hint())

    def _message(self) -> str:
        status = f" (HTTP {self.status})" if self.status else ""
        text = f"CA error {self.type}{status}: {self.detail or 'no detail given'}"
        for sub in self.subproblems:
            who = f"{sub.identifier}: " if sub.identifier else ""
            text += f"\n  - {who}{short_type(sub.type)}: {sub.detail}"
        return text

    def _default_hint(self) -> str | None:
        return None


class RateLimited(AcmeProblem):
    def _default_hint(self) -> str | None:
        if self.retry_after is None:
            return "the CA rate-limited this request; retry later"
        when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.retry_after)
        return (f"the CA rate-limited this request; retry after "
                f"{when.strftime('%Y-%m-%d %H:%M:%S UTC')} (in {int(self.retry_after)} s)")


class BadNonce(AcmeProblem):
    pass


class Unauthorized(AcmeProblem):
    pass


class BadCSR(AcmeProblem):
    def _default_hint(self) -> str | None:
        return "the CA refused the CSR; check the key type and the names it carries"


class AccountDoesNotExist(AcmeProblem):
    def _default_hint(self) -> str | None:
        return "no account exists for this key at this CA; register one first"


class UserActionRequired(AcmeProblem):
    def _default_hint(self) -> str | None:
        # RFC 8555 §7.3.3: the instance URL is where a human must act (often new ToS).
        if self.instance:
            return f"visit {self.instance} (e.g. to agree to updated terms of service)"
        return "the CA requires an action from you (e.g. agreeing to new terms of service)"


class ExternalAccountRequired(AcmeProblem):
    def _default_hint(self) -> str | None:
        return "this CA requires External Account Binding: pass --eab-kid and --eab-hmac-key"


PROBLEM_CLASSES: dict[str, type[AcmeProblem]] = {
    "rateLimited": RateLimited,
    "badNonce": BadNonce,
    "unauthorized": Unauthorized,
    "badCSR": BadCSR,
    "accountDoesNotExist": AccountDoesNotExist,
    "userActionRequired": UserActionRequired,
    "externalAccountRequired": ExternalAccountRequired,
}


def problem_from_json(data: object, *, status: int | None = None,
                      retry_after: float | None = None, url: str | None = None) -> AcmeProblem:
    """Build the matching ``AcmeProblem`` subclass from a decoded problem document."""
    doc = data if isinstance(data, dict) else {}
    ptype = str(doc.get("type") or "about:blank")
    subs: list[Subproblem] = []
    for raw in doc.get("subproblems") or ():
        if not isinstance(raw, dict):
            continue
        ident = raw.get("identifier")
        value = ident.get("value") if isinstance(ident, dict) else None
        subs.append(Subproblem(type=str(raw.get("type", "")), detail=str(raw.get("detail", "")),
                               identifier=str(value) if value is not None else None))
    cls = PROBLEM_CLASSES.get(short_type(ptype), AcmeProblem)
    instance = doc.get("instance")
    return cls(ptype, str(doc.get("detail") or ""), status=status, subproblems=subs,
               retry_after=retry_after, instance=str(instance) if instance else None, url=url)


@dataclass(frozen=True)
class ChallengeFailure:
    """Why one identifier could not be validated."""

    identifier: str
    challenge_type: str | None
    problem: AcmeProblem | None
    status: str = "invalid"


class AuthorizationFailed(AcmeError):
    """One or more authorizations became invalid; shows the CA's own words per identifier."""

    def __init__(self, failures: Sequence[ChallengeFailure]) -> None:
        self.failures = tuple(failures)
        lines = ["the CA could not validate "
                 + ", ".join(f.identifier for f in self.failures) + ":"]
        for f in self.failures:
            how = f.challenge_type or "no challenge attempted"
            if f.problem is None:
                lines.append(f"  {f.identifier} ({how}): authorization {f.status}, no detail given")
                continue
            lines.append(f"  {f.identifier} ({how}): {f.problem.type}: "
                         f"{f.problem.detail or 'no detail given'}")
            for sub in f.problem.subproblems:
                who = f"{sub.identifier}: " if sub.identifier else ""
                lines.append(f"    - {who}{short_type(sub.type)}: {sub.detail}")
        super().__init__("\n".join(lines), hint="check that the challenge answer is reachable "
                         "by the CA (DNS records, port 80, firewall) and try again")


class OrderFailed(AcmeError):
    """The order went ``invalid`` (e.g. issuance failed after finalize)."""

    def __init__(self, url: str, problem: AcmeProblem | None) -> None:
        self.url = url
        self.problem = problem
        detail = problem.render() if problem else "no detail given"
        super().__init__(f"order {url} became invalid: {detail}")


class AcmeTimeout(AcmeError):
    def __init__(self, message: str) -> None:
        super().__init__(message, hint="the CA is slow or validation hangs; "
                         "retry later or raise the timeout")


class TransportError(AcmeError):
    """Could not talk to the CA at all (network, TLS), or got something that is not ACME."""
