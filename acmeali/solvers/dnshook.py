"""``--dns hook``: the user's command adds and removes each TXT record.

Values reach the command only through ``ACMEALI_*`` environment variables (never the
shell's word splitting); it is run once per record, with ``ACMEALI_ACTION`` ``present`` or
``cleanup``. ``ACMEALI_TXT_NAME`` is ``_acme-challenge.<domain>`` as the CA asks for it
(a contract: hooks written before CNAME following existed keep working), so the hook
does not follow CNAMEs; the propagation check still does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from acmeali.errors import ChallengeError
from acmeali.hooks import HookError, run_hook
from acmeali.solvers.registry import (
    OptionCheck,
    OptionError,
    ProviderEnv,
    RecordData,
    TxtRecord,
    boolean,
)
from acmeali.solvers.registry import string as _string

HOOK_TIMEOUT = 300.0


class Hook:
    """The ``hook`` DNS provider."""

    name: ClassVar[str] = "hook"
    options: ClassVar[Mapping[str, OptionCheck]] = {"command": _string, "sequential": boolean}
    follows_cname: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any], env: ProviderEnv) -> None:
        self.command = str(options["command"])
        # A DNS service that keeps one TXT value per name (apex + wildcard need two).
        self.sequential = bool(options.get("sequential", False))

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        if not options.get("command"):
            raise OptionError("command", "--dns hook needs --dns-hook CMD (or dns_hook, or "
                                         "command in [dns.hook], in the config)")

    def _env(self, action: str, record: TxtRecord) -> dict[str, str]:
        return {
            "ACMEALI_ACTION": action,
            "ACMEALI_DOMAIN": record.identifier,
            "ACMEALI_TXT_NAME": record.name,
            "ACMEALI_TXT_VALUE": record.value,
            "ACMEALI_TXT_TTL": str(record.ttl),
        }

    def add_txt(self, record: TxtRecord) -> RecordData | None:
        try:
            run_hook(self.command, self._env("present", record), timeout=HOOK_TIMEOUT,
                     what=f"DNS hook (present {record.name})")
        except HookError as exc:
            raise ChallengeError(
                f"the DNS hook could not publish {record.name} TXT for "
                f"{record.identifier}: {exc.message}",
                hint=exc.hint or "run the hook by hand with ACMEALI_ACTION=present and "
                                 "ACMEALI_TXT_NAME/ACMEALI_TXT_VALUE set to see why") from None
        return {}

    def remove_txt(self, record: TxtRecord, data: Mapping[str, str]) -> None:
        try:
            run_hook(self.command, self._env("cleanup", record), timeout=HOOK_TIMEOUT,
                     what=f"DNS hook (cleanup {record.name})")
        except HookError as exc:
            raise ChallengeError(f"{exc.message} (the TXT record may need removing by hand)",
                                 hint=exc.hint) from None
