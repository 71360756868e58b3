"""What ALB and NLB share: a TLS listener holding one default certificate and additional
ones, by CAS identifier ``<CertId>-<region>``, each changing state asynchronously.

alb.py and nlb.py register the actions with their own parameter names. State:
``state.extra[product]["listeners"]``: ListenerId -> {"ListenerId", "RegionId",
"Protocol", "Default": identifier | None, "Additional": {identifier: status},
"Pending": {identifier: reads left before the status settles}}.
"""

from __future__ import annotations

import uuid
from typing import Any

from .state import ApiError, Backend

#: ListListenerCertificates' Status values (alibabacloud_alb20200616 / nlb20220430
#: models/_list_listener_certificates_response_body.py: Associating, Associated,
#: Diassociating [sic]).
ASSOCIATING, ASSOCIATED, DISSOCIATING = "Associating", "Associated", "Diassociating"


def listeners(b: Backend, product: str) -> dict[str, dict[str, Any]]:
    return b.state.extra.setdefault(product, {}).setdefault("listeners", {})


def new_listener(b: Backend, product: str, listener_id: str, region: str,
                 protocol: str) -> dict[str, Any]:
    lsn = {"ListenerId": listener_id, "RegionId": region, "Protocol": protocol,
           "Default": None, "Additional": {}, "Pending": {}}
    listeners(b, product)[listener_id] = lsn
    return lsn


def get_listener(b: Backend, product: str, listener_id: str,
                 region: str | None = None) -> dict[str, Any]:
    lsn = listeners(b, product).get(listener_id)
    # ALB/NLB API docs, error codes: ResourceNotFound.listener (404). A listener of another
    # region is not found either (the region is part of the endpoint / RegionId).
    if lsn is None or (region and region != lsn["RegionId"]):
        raise ApiError(404, "ResourceNotFound.listener",
                       f"The specified resource {listener_id} is not found.")
    return lsn


def check_unlocked(lsn: dict[str, Any]) -> None:
    """ALB/NLB API docs, error codes: Conflict.Lock / IncorrectStatus.listener when the
    listener is still configuring. assumption: any unsettled certificate locks it."""
    if lsn["Pending"]:
        raise ApiError(409, "Conflict.Lock", "The resource is locked by another operation: "
                       f"listener {lsn['ListenerId']} is configuring.")


def check_cert(b: Backend, identifier: str) -> None:
    """The certificate must be a CAS certificate of this account: ``<CertId>-<region>``
    (ALB model AssociateAdditionalCertificatesWithListenerRequestCertificates: "the globally
    unique certificate ID, which ends with a region ID, for example 1011****-cn-hangzhou")."""
    head, _, region = identifier.partition("-")
    cert = b.state.cas_certs.get(int(head)) if head.isdigit() else None
    if cert is None or cert["Region"] != region:
        # ALB API docs, UpdateListenerAttribute errors: ResourceNotFound.Certificate.
        raise ApiError(404, "ResourceNotFound.Certificate",
                       f"The specified certificate {identifier} is not found.")


def job() -> dict[str, Any]:
    # ALB/NLB write actions return a JobId (UpdateListenerAttributeResponseBody).
    return {"JobId": str(uuid.uuid4())}


def set_default(b: Backend, lsn: dict[str, Any], identifier: str) -> dict[str, Any]:
    check_unlocked(lsn)
    check_cert(b, identifier)
    if lsn["Default"] != identifier:
        lsn["Default"] = identifier
        # Asynchronous: docs "UpdateListenerAttribute is an asynchronous operation"; the
        # new certificate reads as Associating once before Associated (assumption: one read).
        lsn["Pending"][identifier] = 1
    return job()


def associate(b: Backend, lsn: dict[str, Any], identifiers: list[str]) -> dict[str, Any]:
    check_unlocked(lsn)
    if not identifiers:
        raise ApiError(400, "MissingParam", "Certificates is mandatory for this action.")
    for ident in identifiers:
        check_cert(b, ident)
        if ident == lsn["Default"]:
            # assumption: the default certificate cannot also be an additional one.
            raise ApiError(400, "ResourceAlreadyAssociated.certificate",
                           f"The certificate {ident} is already associated.")
    for ident in identifiers:
        if ident not in lsn["Additional"]:
            lsn["Additional"][ident] = ASSOCIATING
            lsn["Pending"][ident] = 1
    return job()


def dissociate(b: Backend, lsn: dict[str, Any], identifiers: list[str]) -> dict[str, Any]:
    check_unlocked(lsn)
    for ident in identifiers:
        if ident not in lsn["Additional"]:
            # assumption: dissociating what is not associated is an error.
            raise ApiError(400, "AssociationNotFound.Certificate",
                           f"The certificate {ident} is not associated with the listener.")
    for ident in identifiers:
        lsn["Additional"][ident] = DISSOCIATING
        lsn["Pending"][ident] = 1
    return job()


def list_certificates(lsn: dict[str, Any], max_results: int, token: str) -> dict[str, Any]:
    """ListListenerCertificates: default first, then the additional ones; one read settles
    whatever was pending (Associating -> Associated, Diassociating -> gone)."""
    rows: list[dict[str, Any]] = []
    if lsn["Default"]:
        status = ASSOCIATING if lsn["Pending"].get(lsn["Default"]) else ASSOCIATED
        rows.append({"CertificateId": lsn["Default"], "IsDefault": True, "Status": status,
                     "CertificateType": "Server"})
    for ident, status in lsn["Additional"].items():
        rows.append({"CertificateId": ident, "IsDefault": False, "Status": status,
                     "CertificateType": "Server"})
    for ident in list(lsn["Pending"]):
        lsn["Pending"][ident] -= 1
        if lsn["Pending"][ident] <= 0:
            del lsn["Pending"][ident]
            if lsn["Additional"].get(ident) == DISSOCIATING:
                del lsn["Additional"][ident]
            elif ident in lsn["Additional"]:
                lsn["Additional"][ident] = ASSOCIATED
    start = int(token) if token.isdigit() else 0
    page = rows[start:start + max_results]
    nxt = str(start + max_results) if start + max_results < len(rows) else ""
    return {"Certificates": page, "TotalCount": len(rows), "MaxResults": max_results,
            "NextToken": nxt}


def indexed(p: dict[str, str], prefix: str, suffix: str = "") -> list[str]:
    """``Prefix.1[.Suffix]``, ``Prefix.2[.Suffix]``...: the SDK's flattening of a list."""
    out: list[str] = []
    n = 1
    while True:
        key = f"{prefix}.{n}{'.' + suffix if suffix else ''}"
        if key not in p:
            return out
        out.append(p[key])
        n += 1
