"""How the products modelled in waf.py, esa.py, oss.py and apig.py refer to a CAS
certificate, checked the same way everywhere."""

from __future__ import annotations

from typing import Any

from .products import cas_get
from .state import ApiError, Backend


def by_identifier(b: Backend, ident: str, product: str) -> dict[str, Any]:
    """``<CertId>-<region>``: the CAS certificate, which must exist in that CAS region.

    Source: the identifier form in the ALB/WAF/APIG models ("<CertId>-cn-hangzhou").
    assumption: a certificate that is not in CAS, or named with another region, is refused
    with a not-found error (code per product, a guess)."""
    cert_id, _, region = str(ident).partition("-")
    if not cert_id.isdigit() or region != b.state.cas_region:
        raise ApiError(400, "InvalidParameter.CertId",
                       f"{product}: the certificate {ident!r} is not a CAS identifier "
                       f"<CertId>-{b.state.cas_region}.")
    return by_id(b, cert_id, product)


def by_id(b: Backend, cert_id: Any, product: str) -> dict[str, Any]:
    try:
        return cas_get(b, str(cert_id))
    except ApiError:
        raise ApiError(404, "Certificate.NotFound",
                       f"{product}: the CAS certificate {cert_id} does not exist.") from None


def st(emu_or_backend: Any, name: str, **empty: Any) -> dict[str, Any]:
    """The module's state under ``state.extra[name]`` (an emulator or a backend)."""
    state = emu_or_backend.state
    return state.extra.setdefault(name, {k: (v() if callable(v) else v)
                                         for k, v in empty.items()})
