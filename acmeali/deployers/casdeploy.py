"""``cas-deploy:<resource-id>[,<resource-id>...]`` and ``cas-deploy:follow``: let CAS
deploy the certificate itself, with a deployment job.

CAS can push a certificate to most Alibaba Cloud products (``ListCloudResources`` lists
the resources it knows, with the certificate each serves). A job is created in the
``editing`` state (``CreateDeploymentJob``: name, ``JobType=user``, the CertId, the
resource ids and a contact, all required), started with ``UpdateDeploymentJobStatus
pending``, and polled with ``DescribeDeploymentJob`` until ``success`` or ``error``
(bounded); ``ListWorkerResource`` gives the per-resource outcome.

``follow`` deploys wherever CAS reports a *previous* certificate of this lineage (every
older acmeali upload still recorded) as deployed: a renewal then also reaches resources
someone bound by hand in the console. Resources already on the new certificate are left
alone (idempotent), and the result is read back with ``ListCloudResources``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from acmeali.deployers.base import DeployContext, PartialDeployError, Target, TargetResult
from acmeali.deployers.cas import CAS
from acmeali.errors import DeployError

PAGE_SIZE = 100
MAX_PAGES = 100
JOB_TIMEOUT = 600.0  # seconds; CAS jobs usually end within minutes
FIRST_POLL = 0.5
MAX_POLL = 10.0
ENDED = ("success", "error")


@dataclass(frozen=True)
class CasDeploy(Target):
    """``cas-deploy:<ids>`` / ``cas-deploy:follow``."""

    kind = "cas-deploy"
    usage = ("cas-deploy:<resource-id>[,<resource-id>...]", "cas-deploy:follow")
    summary = ("a CAS deployment job to these cloud resources, or (follow) wherever CAS "
               "reports the previous certificate")
    services = (CAS,)
    ram_actions = CAS.ram_actions(
        "ListCloudResources", "ListContact", "CreateDeploymentJob", "UpdateDeploymentJobStatus",
        "DescribeDeploymentJob", "ListWorkerResource")

    spec: str
    resource_ids: tuple[int, ...] = ()
    follow: bool = False

    @classmethod
    def parse(cls, spec: str, arg: str) -> CasDeploy:
        if arg == "follow":
            return cls(spec, (), True)
        ids = [p.strip() for p in arg.split(",")]
        if not arg or not all(p.isdigit() for p in ids):
            raise cls.fail(spec, "resource ids are the numbers ListCloudResources (or the CAS "
                                 "console's deployment page) shows")
        return cls(spec, tuple(dict.fromkeys(int(p) for p in ids)))

    def plan(self) -> str:
        if self.follow:
            return "a CAS deployment job wherever CAS reports the previous certificate"
        return f"a CAS deployment job to resources {', '.join(map(str, self.resource_ids))}"

    # ------------------------------------------------------------------ reads
    @staticmethod
    def resources(ctx: DeployContext, cert_ids: list[int]) -> dict[int, dict[str, Any]]:
        """Resource Id -> row, for resources serving one of ``cert_ids`` (all pages)."""
        out: dict[int, dict[str, Any]] = {}
        if not cert_ids:
            return out
        for page in range(1, MAX_PAGES + 1):
            body = ctx.api(CAS, "ListCloudResources", {
                "CertIds": cert_ids, "CurrentPage": page, "ShowSize": PAGE_SIZE})
            rows = body.get("Data") or []
            for row in rows:
                if row.get("Id") is not None:
                    out[int(row["Id"])] = dict(row)
            if not rows or page * PAGE_SIZE >= int(body.get("Total") or 0):
                break
        return out

    def _wanted(self, ctx: DeployContext, current: int) -> list[int]:
        if not self.follow:
            return list(self.resource_ids)
        previous = sorted({int(e["cert_id"]) for e in ctx.meta.cas_uploads
                           if e.get("fingerprint") != ctx.cert.fingerprint
                           and int(e.get("cert_id") or 0) not in (0, current)})
        return sorted(self.resources(ctx, previous))

    def check(self, ctx: DeployContext) -> bool:
        cas = ctx.cas.ensure()
        done = self.resources(ctx, [cas.cert_id])
        dep = ctx.meta.deployments.get(self.spec)
        recorded = [int(r) for r in ((dep.details if dep else {}).get("resources") or {})]
        return all(r in done for r in (recorded if self.follow else self.resource_ids))

    # ------------------------------------------------------------------ deploy
    def deploy(self, ctx: DeployContext) -> TargetResult:
        cas = ctx.cas.ensure()
        wanted = self._wanted(ctx, cas.cert_id)
        already = self.resources(ctx, [cas.cert_id])
        todo = [r for r in wanted if r not in already]
        done = {r: cas.cert_id for r in wanted if r in already}
        if self.follow:  # keep following what moved earlier
            dep = ctx.meta.deployments.get(self.spec)
            for rid in ((dep.details if dep else {}).get("resources") or {}):
                if int(rid) in already:
                    done[int(rid)] = cas.cert_id
        if not todo:
            what = (f"{len(done)} resource(s)" if done else
                    "no resource serves a previous certificate" if self.follow
                    else "nothing to do")
            return self._result(f"already deployed: {what}" if done else what, done, None)
        contact = self._contact(ctx)
        body = ctx.api(CAS, "CreateDeploymentJob", {
            "Name": f"acmeali-{ctx.meta.name}-{ctx.cert.fingerprint[:8]}"[:64],
            "JobType": "user", "CertIds": str(cas.cert_id),
            "ResourceIds": ",".join(map(str, todo)), "ContactIds": str(contact)})
        if ctx.dry_run:
            ctx.api(CAS, "UpdateDeploymentJobStatus", {"JobId": "<new>", "Status": "pending"})
            return TargetResult(f"would deploy to resources {', '.join(map(str, todo))}")
        job_id = int(body.get("JobId") or 0)
        if not job_id:
            raise DeployError("CAS CreateDeploymentJob returned no JobId")
        ctx.api(CAS, "UpdateDeploymentJobStatus", {"JobId": job_id, "Status": "pending"})
        status = self._wait(ctx, job_id)
        workers = self._workers(ctx, job_id)
        after = self.resources(ctx, [cas.cert_id])
        failed: dict[int, str] = {}
        for rid in todo:
            worker = workers.get(rid, {})
            if rid in after:
                done[rid] = cas.cert_id
            else:
                failed[rid] = str(worker.get("Status") or status)
        details = {"job_id": job_id, "resources": {str(r): c for r, c in done.items()}}
        if failed:
            old = {int(workers.get(r, {}).get("ResourceCertId") or 0) for r in failed} - {0}
            shown = "; ".join(f"{r}: {s}" for r, s in failed.items())
            raise PartialDeployError(
                f"CAS deployment job {job_id} ({status}): {len(failed)} of {len(todo)} "
                f"resource(s) failed: {shown}", details, frozenset({cas.cert_id} | old),
                hint="see the job in the CAS console (Deployment); `acmeali deploy` retries")
        return self._result(f"job {job_id}: deployed to {len(todo)} resource(s) "
                            f"({', '.join(map(str, todo))})", done, job_id)

    def _result(self, message: str, done: dict[int, int], job_id: int | None) -> TargetResult:
        return TargetResult(message, {"job_id": job_id,
                                      "resources": {str(r): c for r, c in done.items()}},
                            frozenset(done.values()))

    @staticmethod
    def _contact(ctx: DeployContext) -> int:
        body = ctx.api(CAS, "ListContact", {"CurrentPage": 1, "ShowSize": 20})
        for row in body.get("ContactList") or []:
            if row.get("ContactId"):
                return int(row["ContactId"])
        raise DeployError("CAS deployment jobs need a contact, and this account has none",
                          hint="add one in the CAS console (Certificate Management Service -> "
                               "Contacts), then run `acmeali deploy` again")

    @staticmethod
    def _wait(ctx: DeployContext, job_id: int) -> str:
        deadline = time.monotonic() + JOB_TIMEOUT
        delay = FIRST_POLL
        while True:
            status = str(ctx.api(CAS, "DescribeDeploymentJob", {"JobId": job_id})
                         .get("Status") or "")
            if status in ENDED:
                return status
            if time.monotonic() + delay > deadline:
                raise DeployError(f"CAS deployment job {job_id} is still {status!r} after "
                                  f"{JOB_TIMEOUT:.0f}s",
                                  hint="it may still finish; `acmeali deploy` checks again")
            time.sleep(delay)
            delay = min(MAX_POLL, delay * 2)

    @staticmethod
    def _workers(ctx: DeployContext, job_id: int) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for page in range(1, MAX_PAGES + 1):
            body = ctx.api(CAS, "ListWorkerResource", {"JobId": job_id, "CurrentPage": page,
                                                      "ShowSize": PAGE_SIZE})
            rows = body.get("Data") or []
            for row in rows:
                if row.get("ResourceId") is not None:
                    out[int(row["ResourceId"])] = dict(row)
            if not rows or page * PAGE_SIZE >= int(body.get("Total") or 0):
                break
        return out
