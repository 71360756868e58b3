"""Load balancer and CAS-job targets: the behaviour the contract suite does not cover."""

from __future__ import annotations

from acmeali.deployers import deploy
from acmeali.lineage import LineageMeta
from tests.emulator import AliyunEmulator
from tests.test_deploy_helpers import Lineage, TinyCA, captured, make_lineage, make_ui, settings_for


def _run(emu: AliyunEmulator, lin: Lineage, targets: list[str]) -> dict[str, tuple[bool, str]]:
    ui = make_ui()
    out = deploy(lin.meta, lin.bundle, targets, settings=settings_for(emu, cas_keep_previous=0),
                 ui=ui)
    return {o.target: (o.ok, o.message + " | " + captured(ui)[1]) for o in out}


def _renew(ca: TinyCA, lin: Lineage) -> Lineage:
    assert lin.meta.current is not None
    return make_lineage(ca, lin.meta.domains, meta=lin.meta,
                        version=lin.meta.current.version + 1)


def test_cas_job_partial_failure_is_recorded_and_retried(emu: AliyunEmulator) -> None:
    ca = TinyCA()
    for lsn in ("lsn-a", "lsn-b"):
        emu.add_alb_listener(lsn)
    emu.add_cas_contact()
    rids = {r["ListenerId"]: r["Id"] for r in emu.cloud_resources()}
    spec = f"cas-deploy:{rids['lsn-a']},{rids['lsn-b']}"
    emu.state.extra["casjobs"]["fail"].add(rids["lsn-b"])
    lin = make_lineage(ca, ["example.test"])
    ok, msg = _run(emu, lin, [spec])[spec]
    assert not ok and f"{rids['lsn-b']}: error" in msg and "1 of 2" in msg
    dep = lin.meta.deployments[spec]
    assert not dep.ok and dep.details["resources"] == {str(rids["lsn-a"]): dep.cas_ids[0]}
    emu.state.extra["casjobs"]["fail"].clear()
    ok, msg = _run(emu, lin, [spec])[spec]
    assert ok, msg
    job = emu.calls_of("CreateDeploymentJob")[-1]
    assert job["ResourceIds"] == str(rids["lsn-b"])  # only the one that failed
    assert job["JobType"] == "user" and job["ContactIds"]


def test_cas_job_without_contact_says_what_to_do(emu: AliyunEmulator) -> None:
    emu.add_alb_listener("lsn-a")
    rid = emu.cloud_resources()[0]["Id"]
    lin = make_lineage(TinyCA(), ["example.test"])
    ok, msg = _run(emu, lin, [f"cas-deploy:{rid}"])[f"cas-deploy:{rid}"]
    assert not ok and "contact" in msg and "CAS console" in msg


def test_follow_moves_only_what_served_the_previous_certificate(emu: AliyunEmulator) -> None:
    ca = TinyCA()
    for lsn in ("lsn-old", "lsn-other"):
        emu.add_alb_listener(lsn)
    emu.add_cas_contact()
    lin = make_lineage(ca, ["example.test"])
    assert _run(emu, lin, ["cas", "cas-deploy:follow"])["cas-deploy:follow"][0]
    (old_id,) = emu.state.cas_certs
    listeners = emu.state.extra["alb"]["listeners"]
    listeners["lsn-old"]["Default"] = f"{old_id}-cn-hangzhou"  # bound by hand
    listeners["lsn-other"]["Default"] = "999-cn-hangzhou"  # someone else's certificate
    lin = _renew(ca, lin)
    res = _run(emu, lin, ["cas", "cas-deploy:follow"])
    assert res["cas-deploy:follow"][0], res
    (new_id,) = emu.state.cas_certs  # the old upload was deleted once nothing used it
    assert listeners["lsn-old"]["Default"] == f"{new_id}-cn-hangzhou"
    assert listeners["lsn-other"]["Default"] == "999-cn-hangzhou"
    assert lin.meta.deployments["cas-deploy:follow"].cas_ids == [new_id]


def test_alb_extra_replaces_only_its_own_previous_certificate(emu: AliyunEmulator) -> None:
    ca = TinyCA()
    emu.add_alb_listener("lsn-x")
    lin = make_lineage(ca, ["example.test"])
    assert _run(emu, lin, ["alb:lsn-x:extra"])["alb:lsn-x:extra"][0]
    (first,) = emu.state.cas_certs
    lsn = emu.state.extra["alb"]["listeners"]["lsn-x"]
    lsn["Additional"]["777-cn-hangzhou"] = "Associated"  # someone else's, kept
    lin = _renew(ca, lin)
    ok, msg = _run(emu, lin, ["alb:lsn-x:extra"])["alb:lsn-x:extra"]
    assert ok, msg
    (second,) = set(emu.state.cas_certs)
    assert sorted(lsn["Additional"]) == sorted([f"{second}-cn-hangzhou", "777-cn-hangzhou"])
    assert first != second


def test_clb_keeps_a_server_certificate_a_failed_target_still_serves(
        emu: AliyunEmulator) -> None:
    ca = TinyCA()
    emu.add_clb_listener("lb-1", 443)
    emu.add_clb_listener("lb-2", 443)
    lin = make_lineage(ca, ["example.test"])
    targets = ["clb:lb-1:443", "clb:lb-2:443"]
    assert all(ok for ok, _ in _run(emu, lin, targets).values())
    certs = emu.state.extra["slb"]["certs"]
    (old_sc,) = certs
    lin = _renew(ca, lin)
    res = _run(emu, lin, ["clb:lb-1:443"])
    assert res["clb:lb-1:443"][0]
    # lb-2 was not moved this time and still serves the old server certificate: kept.
    assert old_sc in certs and len(certs) == 2
    res = _run(emu, lin, targets)
    assert all(ok for ok, _ in res.values()), res
    assert old_sc not in certs and len(certs) == 1  # nothing uses it now: deleted


def test_region_in_the_spec_reaches_the_api(emu: AliyunEmulator) -> None:
    emu.add_nlb_listener("lsn-sh", region="cn-shanghai")
    emu.add_clb_listener("lb-bj", 443, region="cn-beijing")
    lin = make_lineage(TinyCA(), ["example.test"])
    res = _run(emu, lin, ["nlb:cn-shanghai:lsn-sh", "clb:cn-beijing:lb-bj:443",
                          "nlb:lsn-sh"])
    assert res["nlb:cn-shanghai:lsn-sh"][0] and res["clb:cn-beijing:lb-bj:443"][0], res
    assert not res["nlb:lsn-sh"][0]  # [aliyun] region is cn-hangzhou: not found there
    assert {c["RegionId"] for c in emu.calls_of("UploadServerCertificate")} == {"cn-beijing"}
    assert isinstance(lin.meta, LineageMeta)


def _saved(lin: Lineage) -> Lineage:
    """The lineage as the next run reads it back from its record (JSON round trip)."""
    import json

    meta = LineageMeta.from_json(json.loads(json.dumps(lin.meta.to_json())))
    return Lineage(meta, lin.bundle, lin.key_pem)


def _deployed_once(emu: AliyunEmulator, *listeners: str) -> tuple[TinyCA, Lineage, str]:
    """A lineage deployed to ``clb:lb-1:443`` (plus idle ``listeners``), and the CLB server
    certificate that deploy made: what the next renewal replaces."""
    ca = TinyCA()
    for lb in ("lb-1", *listeners):
        emu.add_clb_listener(lb, 443)
    lin = make_lineage(ca, ["example.test"])
    assert _run(emu, lin, ["clb:lb-1:443"])["clb:lb-1:443"][0]
    (old_sc,) = emu.state.extra["slb"]["certs"]
    return ca, lin, old_sc


def test_clb_retries_a_failed_deletion_on_the_next_run(emu: AliyunEmulator) -> None:
    ca, lin, old_sc = _deployed_once(emu)
    certs = emu.state.extra["slb"]["certs"]
    lin = _renew(ca, lin)
    emu.faults.deny("DeleteServerCertificate", count=1)
    ok, msg = _run(emu, lin, ["clb:lb-1:443"])["clb:lb-1:443"]
    assert ok and f"kept the old CLB server certificate {old_sc}" in msg, msg
    assert old_sc in certs and len(certs) == 2
    # The next run, from the saved record, with nothing left to move: deleted all the same.
    lin = _saved(lin)
    ok, msg = _run(emu, lin, ["clb:lb-1:443"])["clb:lb-1:443"]
    assert ok and f"deleted the old CLB server certificate {old_sc}" in msg, msg
    assert old_sc not in certs and len(certs) == 1
    assert not lin.meta.replaced_certs


def test_clb_leftover_is_retried_by_a_run_without_clb_targets(emu: AliyunEmulator) -> None:
    ca, lin, old_sc = _deployed_once(emu)
    certs = emu.state.extra["slb"]["certs"]
    lin = _renew(ca, lin)
    emu.faults.throttle("DeleteServerCertificate", count=100, retry_after_ms=10)
    assert _run(emu, lin, ["clb:lb-1:443"])["clb:lb-1:443"][0]
    emu.faults.reset()
    assert old_sc in certs
    # A later run that deploys only to CAS (a redeploy of another target, say).
    lin = _saved(lin)
    assert _run(emu, lin, ["cas"])["cas"][0]
    assert old_sc not in certs and not lin.meta.replaced_certs


def test_clb_replacement_survives_a_run_killed_before_its_record_was_saved(
        emu: AliyunEmulator) -> None:
    ca, lin, old_sc = _deployed_once(emu)
    certs = emu.state.extra["slb"]["certs"]
    lin = _saved(_renew(ca, lin))
    on_disk = _saved(lin)  # what the record says when the run below is killed
    emu.faults.deny("DeleteServerCertificate", count=1)  # ... before it deleted anything
    assert _run(emu, lin, ["clb:lb-1:443"])["clb:lb-1:443"][0]
    assert old_sc in certs
    ok, msg = _run(emu, on_disk, ["clb:lb-1:443"])["clb:lb-1:443"]
    assert ok and "already serves" in msg, msg
    assert old_sc not in certs and len(certs) == 1


def test_clb_leftover_in_use_elsewhere_is_kept_and_one_gone_is_dropped(
        emu: AliyunEmulator) -> None:
    ca, lin, old_sc = _deployed_once(emu, "lb-hand")
    st = emu.state.extra["slb"]
    st["listeners"][("lb-hand", 443)]["ServerCertificateId"] = old_sc  # bound by hand
    lin = _renew(ca, lin)
    ok, msg = _run(emu, lin, ["clb:lb-1:443"])["clb:lb-1:443"]
    assert ok and "in use" in msg, msg  # CLB refuses: reported, kept, recorded
    assert old_sc in st["certs"]
    assert [e["id"] for e in lin.meta.replaced_certs] == [old_sc]
    st["listeners"][("lb-hand", 443)]["ServerCertificateId"] = None
    del st["certs"][old_sc]  # then deleted by hand
    ok, msg = _run(emu, _saved(lin), ["clb:lb-1:443"])["clb:lb-1:443"]
    assert ok, msg
    assert not emu.calls_of("DeleteServerCertificate")[1:]  # gone: nothing to delete
