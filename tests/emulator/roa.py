"""ROA requests (Function Compute 3.0, cloud-native API Gateway): the resource path and
the JSON body, handed to the action as the parameters ``__path__`` and ``__body__``.

Source: the SDKs' ``call_api`` with ``style='ROA'``, ``req_body_type='json'`` (FC
client.py update_custom_domain_with_options: PUT /2023-03-30/custom-domains/{name}; APIG
client.py update_domain_with_options: PUT /v1/domains/{domainId}); the signature (V3) is
the same as RPC's with the path as canonical URI, verified by server.py before this runs.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote


def params(req: Any) -> dict[str, str]:
    """``__path__`` (decoded) for any request not on ``/``; ``__body__`` for JSON bodies."""
    out: dict[str, str] = {}
    if req.path not in ("", "/"):
        out["__path__"] = unquote(req.path)
        out["__method__"] = req.method
    ctype = (req.headers.get("content-type") or [""])[0]
    if req.body and ctype.startswith("application/json"):
        out["__body__"] = req.body.decode()
    return out


def body(p: dict[str, str]) -> dict[str, Any]:
    raw = p.get("__body__") or "{}"
    value = json.loads(raw)
    return value if isinstance(value, dict) else {}


def last_segment(p: dict[str, str]) -> str:
    return p.get("__path__", "").rstrip("/").rsplit("/", 1)[-1]
