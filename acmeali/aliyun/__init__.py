"""Alibaba Cloud access: SDK clients (imported lazily), one call wrapper, one error type.

Stdlib only at import time; the SDKs load on the first :func:`make_client`.
"""

from __future__ import annotations

from acmeali.aliyun.clients import cas_region, clear_clients, endpoint_for, make_client
from acmeali.aliyun.errors import AliyunError
from acmeali.aliyun.retry import call, redact_params
from acmeali.aliyun.services import Service

__all__ = ["AliyunError", "Service", "call", "cas_region", "clear_clients", "endpoint_for",
           "make_client", "redact_params"]
