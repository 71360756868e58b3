"""CAS deployment jobs (API 2020-04-07): cloud resources, contacts, jobs and their workers.

Sources: alibabacloud_cas20200407 3.9.4 models (_list_cloud_resources_request.py: CertIds
sent as a JSON array string by the SDK's "json" shrink style, CloudProduct, Keyword,
CurrentPage, ShowSize default 20; _list_cloud_resources_response_body.py;
_list_contact_*; _create_deployment_job_request.py: Name, JobType (user|cloud), CertIds,
ResourceIds, ContactIds all required, comma-separated; ScheduleTime "if not specified the
system starts the task immediately after the task is in the pending state";
_update_deployment_job_status_request.py: pending|scheduling|editing;
_describe_deployment_job_response_body.py: Status pending, editing, scheduling, processing,
error, success; _list_worker_resource_*: one row per resource with Status, CertId and
ResourceCertId, the certificate bound before) and the CAS API reference.

Modelled resources: the default certificate of ALB and NLB listeners and of CLB HTTPS
listeners (the products whose rows carry InstanceId/ListenerId/ListenerPort per the
model), (D)CDN domains bound by CAS reference, and what a test bound by hand
(``cas_hand_bound``); each with a stable Id. assumption: additional listener certificates
are not listed. This module holds the one ListCloudResources handler; products.py's
``cas_users`` (ListCertificates' UsingProductList) sees the listeners through
``CAS_USER_SOURCES``.
State ``state.extra["casjobs"]``: "ids": resource key -> Id; "contacts": ContactId ->
row; "jobs": JobId -> job; "fail": resource Ids whose worker ends in error.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from . import alb as alb_mod
from . import listeners as L
from . import nlb as nlb_mod
from . import slb as slb_mod
from .products import CAS, CAS_USER_SOURCES, Params, action, int_param
from .state import ApiError, Backend

_job_ids = itertools.count(7001)


def _st(b: Backend) -> dict[str, Any]:
    return b.state.extra.setdefault("casjobs", {"ids": {}, "contacts": {}, "jobs": {},
                                                "fail": set(), "next_id": 90001})


def add_contact(b: Backend, name: str = "ops", email: str = "ops@example.test") -> int:
    st = _st(b)
    contact_id = 5000 + len(st["contacts"]) + 1
    st["contacts"][contact_id] = {"ContactId": contact_id, "Name": name, "Email": email,
                                  "EmailStatus": 1, "Mobile": "", "MobileStatus": 0}
    return contact_id


def _rid(st: dict[str, Any], key: tuple[str, ...]) -> int:
    if key not in st["ids"]:
        st["ids"][key] = st["next_id"]
        st["next_id"] += 1
    return int(st["ids"][key])


def _cas_id(identifier: str | None) -> int | None:
    head = (identifier or "").partition("-")[0]
    return int(head) if head.isdigit() else None


def resources(b: Backend) -> list[dict[str, Any]]:
    """Every modelled resource with the CAS certificate it serves now."""
    st = _st(b)
    rows: list[dict[str, Any]] = []
    for product, label in ((alb_mod.ALB, "ALB"), (nlb_mod.NLB, "NLB")):
        for lsn in L.listeners(b, product).values():
            rows.append({"Id": _rid(st, (label, lsn["ListenerId"])), "CloudProduct": label,
                         "CloudName": "aliyun", "ListenerId": lsn["ListenerId"],
                         "InstanceId": lsn["ListenerId"], "RegionId": lsn["RegionId"],
                         "CertId": _cas_id(lsn["Default"]), "DefaultResource": 1,
                         "EnableHttps": 1, "Status": "online"})
    slb = b.state.extra.get(slb_mod.SLB, {})
    for (lb_id, port), lsn in slb.get("listeners", {}).items():
        cert = slb["certs"].get(lsn["ServerCertificateId"] or "", {})
        cas_id = cert.get("AliCloudCertificateId") or ""
        rows.append({"Id": _rid(st, ("SLB", lb_id, str(port))), "CloudProduct": "SLB",
                     "CloudName": "aliyun", "InstanceId": lb_id, "ListenerPort": str(port),
                     "ListenerId": f"{lb_id}-{port}", "RegionId": lsn["RegionId"],
                     "CertId": int(cas_id) if str(cas_id).isdigit() else None,
                     "DefaultResource": 1, "EnableHttps": 1, "Status": "online"})
    for label, domains in (("CDN", b.state.cdn_domains), ("DCDN", b.state.dcdn_domains)):
        for name, dom in sorted(domains.items()):
            cas_id = dom.get("CertId") if dom.get("CertType") == "cas" else None
            rows.append({"Id": _rid(st, (label, name)), "CloudProduct": label,
                         "CloudName": "aliyun", "Domain": name, "RegionId": b.region,
                         "CertId": cas_id, "Status": "online",
                         "EnableHttps": 1 if dom.get("SslProtocol") == "on" else 0})
    for cas_id, bound in sorted(b.state.cas_hand_bound.items()):
        for product, domain in bound:
            rows.append({"Id": _rid(st, ("hand", product, domain)), "CloudProduct": product,
                         "CloudName": "aliyun", "Domain": domain, "RegionId": b.region,
                         "CertId": cas_id, "EnableHttps": 1, "Status": "online"})
    for row in rows:
        cert = b.state.cas_certs.get(row["CertId"] or -1)
        row["CertName"] = cert["Name"] if cert else ""
    return rows


def _listener_users(b: Backend, cert_id: int) -> list[dict[str, Any]]:
    return [{"CloudProduct": r["CloudProduct"], "Domain": r["ListenerId"]}
            for r in resources(b)
            if r["CertId"] == cert_id and r["CloudProduct"] in ("ALB", "NLB", "SLB")
            and r.get("ListenerId")]


CAS_USER_SOURCES.append(_listener_users)


@action(CAS, "ListCloudResources")
def list_cloud_resources(b: Backend, p: Params) -> dict[str, Any]:
    rows = resources(b)
    raw = p.get("CertIds") or ""
    if raw:
        try:  # the SDK sends List[int] as a JSON array string (shrink style "json")
            wanted = {int(x) for x in (json.loads(raw) if raw.startswith("[")
                                       else raw.split(",")) if str(x).strip()}
        except (ValueError, TypeError):
            raise ApiError(400, "InvalidParameter", f"CertIds {raw!r} is not valid.") from None
        rows = [r for r in rows if r["CertId"] in wanted]
    if p.get("CloudProduct"):
        rows = [r for r in rows if r["CloudProduct"] == p["CloudProduct"]]
    if p.get("Keyword"):
        rows = [r for r in rows if p["Keyword"] in (r.get("InstanceId") or "")
                or p["Keyword"] in (r.get("ListenerId") or "")]
    page, size = int_param(p, "CurrentPage", 1), int_param(p, "ShowSize", 20, high=100)
    return {"Data": rows[(page - 1) * size:page * size], "Total": len(rows),
            "CurrentPage": page, "ShowSize": size}


@action(CAS, "ListContact")
def list_contact(b: Backend, p: Params) -> dict[str, Any]:
    rows = list(_st(b)["contacts"].values())
    page, size = int_param(p, "CurrentPage", 1), int_param(p, "ShowSize", 20, high=100)
    return {"ContactList": rows[(page - 1) * size:page * size], "TotalCount": len(rows),
            "CurrentPage": page, "ShowSize": size}


def _int_list(p: Params, name: str) -> list[int]:
    try:
        return [int(x) for x in p[name].split(",") if x.strip()]
    except ValueError:
        raise ApiError(400, "InvalidParameter", f"{name} is not valid.") from None


@action(CAS, "CreateDeploymentJob", "Name", "JobType", "CertIds", "ResourceIds", "ContactIds")
def create_deployment_job(b: Backend, p: Params) -> dict[str, Any]:
    st = _st(b)
    if p["JobType"] not in ("user", "cloud"):
        raise ApiError(400, "InvalidParameter", "JobType must be user or cloud.")
    certs = _int_list(p, "CertIds")
    if len(certs) != 1 or certs[0] not in b.state.cas_certs:
        # assumption: one existing certificate per job (the console deploys one at a time).
        raise ApiError(404, "CertificateNotFound", f"The certificate {p['CertIds']} does not "
                       "exist.")
    known = {r["Id"]: r for r in resources(b)}
    res_ids = _int_list(p, "ResourceIds")
    missing = [r for r in res_ids if r not in known]
    if not res_ids or missing:
        raise ApiError(404, "ResourceNotFound", f"The cloud resources {missing} do not exist.")
    contacts = _int_list(p, "ContactIds")
    if not contacts or any(c not in st["contacts"] for c in contacts):
        raise ApiError(404, "ContactNotFound", "The contact does not exist.")  # assumption
    job_id = next(_job_ids)
    st["jobs"][job_id] = {"Id": job_id, "Name": p["Name"], "JobType": p["JobType"],
                          "Status": "editing", "CertId": certs[0], "ResourceIds": res_ids,
                          "Workers": {}, "ScheduleTime": p.get("ScheduleTime", "")}
    return {"JobId": job_id}


def _job(b: Backend, raw: str) -> dict[str, Any]:
    job = _st(b)["jobs"].get(int(raw)) if raw.isdigit() else None
    if job is None:
        raise ApiError(404, "JobNotFound", f"The deployment job {raw} does not exist.")
    return job


@action(CAS, "UpdateDeploymentJobStatus", "JobId", "Status")
def update_deployment_job_status(b: Backend, p: Params) -> dict[str, Any]:
    job = _job(b, p["JobId"])
    if p["Status"] not in ("pending", "scheduling", "editing"):
        raise ApiError(400, "InvalidParameter", "Status must be pending, scheduling or editing.")
    if job["Status"] not in ("editing", "pending", "scheduling"):
        # assumption: a running or finished job cannot be moved back.
        raise ApiError(400, "InvalidStatus", f"The job is {job['Status']}.")
    job["Status"] = p["Status"]
    return {}


def _bind(b: Backend, row: dict[str, Any], cert_id: int) -> None:
    """What a worker does: point the resource's default certificate at ``cert_id``."""
    cas = b.state.cas_certs[cert_id]
    ident = f"{cert_id}-{cas['Region']}"
    if row["CloudProduct"] in ("ALB", "NLB"):
        product = alb_mod.ALB if row["CloudProduct"] == "ALB" else nlb_mod.NLB
        L.listeners(b, product)[row["ListenerId"]]["Default"] = ident
        return
    if row["CloudProduct"] in ("CDN", "DCDN") and row.get("Domain") in (
            b.state.cdn_domains if row["CloudProduct"] == "CDN" else b.state.dcdn_domains):
        domains = b.state.cdn_domains if row["CloudProduct"] == "CDN" else b.state.dcdn_domains
        domains[row["Domain"]].update(SslProtocol="on", CertType="cas", CertId=cert_id,
                                      CertName=cas["Name"], CertRegion=cas["Region"],
                                      SSLPub=cas["Cert"], SSLPri=None)
        return
    if row["CloudProduct"] != "SLB" or "ListenerPort" not in row:  # bound by hand
        old = b.state.cas_hand_bound.get(row["CertId"], [])
        entry = (row["CloudProduct"], row["Domain"])
        if entry in old:
            old.remove(entry)
        b.state.cas_hand_bound.setdefault(cert_id, []).append(entry)
        return
    created = slb_mod.upload_server_certificate(b, {
        "RegionId": row["RegionId"], "AliCloudCertificateId": str(cert_id),
        "AliCloudCertificateRegionId": cas["Region"], "AliCloudCertificateName": cas["Name"]})
    key = (row["InstanceId"], int(row["ListenerPort"]))
    b.state.extra[slb_mod.SLB]["listeners"][key]["ServerCertificateId"] = \
        created["ServerCertificateId"]


def _advance(b: Backend, job: dict[str, Any]) -> None:
    """One status step per DescribeDeploymentJob: pending/scheduling -> processing ->
    success | error (assumption: the real job takes minutes; one step per poll here)."""
    if job["Status"] in ("pending", "scheduling"):
        job["Status"] = "processing"
        return
    if job["Status"] != "processing":
        return
    fail = _st(b)["fail"]
    known = {r["Id"]: r for r in resources(b)}
    for rid in job["ResourceIds"]:
        row = known[rid]
        worker = {"ResourceId": rid, "CloudProduct": row["CloudProduct"],
                  "InstanceId": row.get("InstanceId"), "ListenerId": row.get("ListenerId"),
                  "RegionId": row["RegionId"], "CertId": job["CertId"],
                  "ResourceCertId": row["CertId"], "JobId": job["Id"]}
        if rid in fail:
            worker["Status"] = "error"
        else:
            _bind(b, row, job["CertId"])
            worker["Status"] = "success"
        job["Workers"][rid] = worker
    job["Status"] = ("error" if any(w["Status"] == "error" for w in job["Workers"].values())
                     else "success")


@action(CAS, "DescribeDeploymentJob", "JobId")
def describe_deployment_job(b: Backend, p: Params) -> dict[str, Any]:
    job = _job(b, p["JobId"])
    _advance(b, job)
    return {"Id": job["Id"], "Name": job["Name"], "JobType": job["JobType"],
            "Status": job["Status"], "ProductName": ",".join(sorted(
                {w["CloudProduct"] for w in job["Workers"].values()})),
            "CertType": "upload", "Del": 0, "Rollback": 0}


@action(CAS, "ListWorkerResource", "JobId")
def list_worker_resource(b: Backend, p: Params) -> dict[str, Any]:
    job = _job(b, p["JobId"])
    rows = [dict(w, Id=i + 1) for i, w in enumerate(job["Workers"].values())]
    if p.get("Status"):
        rows = [r for r in rows if r["Status"] == p["Status"]]
    page, size = int_param(p, "CurrentPage", 1), int_param(p, "ShowSize", 50, high=100)
    return {"Data": rows[(page - 1) * size:page * size], "Total": len(rows),
            "CurrentPage": page, "ShowSize": size}
