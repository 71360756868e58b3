"""Deploy target strings (``cas``, ``cdn:static.example.com``, ...) parsed once, up front.

The grammar of each kind belongs to its target class (``deployers/registry.py`` lists them);
this module keeps the entry points config loading and the commands use. Stdlib only: no
Alibaba Cloud SDK is imported to validate a target.
"""

from __future__ import annotations

from acmeali.deployers.base import Target, TargetSyntaxError
from acmeali.deployers.registry import kinds, parse_target

__all__ = ["Target", "TargetSyntaxError", "kinds", "parse_target"]
