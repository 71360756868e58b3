"""`acmeali deploy` end to end: the real CLI in a child process, the emulator as the cloud."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from acmeali.store.files import FileStore
from tests.emulator import AliyunEmulator
from tests.test_deploy_helpers import Lineage, TinyCA, make_lineage

Run = Callable[..., subprocess.CompletedProcess[str]]


def _store_lineage(state: Path, lin: Lineage) -> None:
    store = FileStore(state)
    version = store.write_version(lin.meta.name, privkey_pem=lin.bundle.privkey,
                                  cert_pem=lin.bundle.cert, chain_pem=lin.bundle.chain,
                                  fullchain_pem=lin.bundle.fullchain)
    store.activate(lin.meta.name, version)
    assert lin.meta.current is not None
    lin.meta.current.version = version
    store.save_meta(lin.meta)


@pytest.fixture
def setup(aliyun: AliyunEmulator, tmp_path: Path) -> tuple[Path, dict[str, str], Lineage]:
    cfg = tmp_path / "acmeali.toml"
    cfg.write_text(aliyun.config_toml())
    state = tmp_path / "state"
    lin = make_lineage(TinyCA(), ["example.test", "*.example.test"])
    lin.meta.deploy = ["cas"]
    _store_lineage(state, lin)
    env = {**aliyun.env(), "ACMEALI_CONFIG": str(cfg), "ACMEALI_STATE_DIR": str(state)}
    return state, env, lin


def _meta(state: Path, name: str) -> dict[str, object]:
    return json.loads((state / "renewal" / f"{name}.json").read_text())  # type: ignore[no-any-return]


def test_deploy_records_targets_and_outcomes(aliyun: AliyunEmulator, cli: Run,
                                             setup: tuple[Path, dict[str, str], Lineage]
                                             ) -> None:
    state, env, _lin = setup
    aliyun.add_cdn_domain("static.example.test")
    proc = cli("deploy", "--name", "example.test", "--target", "cdn:static.example.test",
               "--save", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("cdn:static.example.test: ")
    meta = _meta(state, "example.test")
    assert meta["deploy"] == ["cas", "cdn:static.example.test"]
    deps = meta["deployments"]
    assert isinstance(deps, dict) and deps["cdn:static.example.test"]["ok"]
    assert aliyun.state.cdn_domains["static.example.test"]["CertId"] is not None

    # default targets: the recorded ones; one line per target on stdout
    proc = cli("deploy", "--name", "example.test", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["cas", "cdn"]
    assert "already in CAS" in lines[0]
    assert len(aliyun.calls_of("UploadUserCertificate")) == 1


def test_failed_target_exits_1_and_is_pending(aliyun: AliyunEmulator, cli: Run,
                                              setup: tuple[Path, dict[str, str], Lineage]
                                              ) -> None:
    state, env, _lin = setup
    proc = cli("deploy", "--name", "example.test", "--target", "cdn:gone.example.test",
               "--target", "cas", env=env)
    assert proc.returncode == 1
    assert "cdn:gone.example.test" in proc.stderr and "InvalidDomain.NotFound" in proc.stderr
    assert "cas: " in proc.stdout
    deps = _meta(state, "example.test")["deployments"]
    assert isinstance(deps, dict)
    assert deps["cdn:gone.example.test"]["ok"] is False
    assert deps["cas"]["ok"] is True

    aliyun.add_cdn_domain("gone.example.test")  # fixed: the next run succeeds
    proc = cli("deploy", "--name", "example.test", env=env)
    assert proc.returncode == 0, proc.stderr


def test_dry_run_writes_nothing(aliyun: AliyunEmulator, cli: Run,
                                setup: tuple[Path, dict[str, str], Lineage]) -> None:
    state, env, _lin = setup
    before = (state / "renewal" / "example.test.json").read_bytes()
    proc = cli("deploy", "--name", "example.test", "--target", "cas", "--target",
               "hook:touch should-not-exist", "--dry-run", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "would call cas UploadUserCertificate" in proc.stdout
    assert "would run" in proc.stdout
    assert (state / "renewal" / "example.test.json").read_bytes() == before
    assert not aliyun.state.cas_certs


def test_bad_usage(cli: Run, setup: tuple[Path, dict[str, str], Lineage]) -> None:
    _, env, _ = setup
    proc = cli("deploy", "--name", "example.test", "--target", "s3:bucket", env=env)
    assert proc.returncode == 2 and "unknown kind" in proc.stderr
    proc = cli("deploy", "--name", "nope.test", env=env)
    assert proc.returncode == 1 and "nope.test" in proc.stderr


def test_one_off_target_is_not_recorded_and_remove_target(aliyun: AliyunEmulator, cli: Run,
                                                          setup: tuple[Path, dict[str, str],
                                                                       Lineage]) -> None:
    state, env, _lin = setup
    aliyun.add_cdn_domain("static.example.test")
    proc = cli("deploy", "--name", "example.test", "--target", "cdn:static.example.test",
               env=env)
    assert proc.returncode == 0, proc.stderr
    assert "add --save" in proc.stderr
    assert _meta(state, "example.test")["deploy"] == ["cas"]
    proc = cli("deploy", "--name", "example.test", "--remove-target", "cas", env=env)
    assert proc.returncode == 0, proc.stderr
    assert _meta(state, "example.test")["deploy"] == []


def test_delete_leaves_cas_uploads_unless_cleanup_cloud(emu: AliyunEmulator, cli: Run,
                                                        setup: tuple[Path, dict[str, str],
                                                                     Lineage]) -> None:
    from acmeali.aliyun import call, make_client
    from tests.test_deploy_helpers import settings_for

    state, env, _lin = setup
    ca = TinyCA()
    other = make_lineage(ca, ["b.example.test"])
    other.meta.deploy = ["cas"]
    _store_lineage(state, other)
    foreign_key, foreign_cert, foreign_chain = ca.issue(["b.example.test"])
    call(make_client("cas", settings_for(emu)), "UploadUserCertificate", {
        "Name": "uploaded-by-hand", "Cert": (foreign_cert + foreign_chain).decode(),
        "Key": foreign_key.decode()})
    for name in ("example.test", "b.example.test"):
        assert cli("deploy", "--name", name, env=env).returncode == 0
    ids = {n: _meta(state, n)["cas_uploads"][0]["cert_id"]  # type: ignore[index]
           for n in ("example.test", "b.example.test")}

    proc = cli("delete", "--name", "example.test", "--yes", env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"CertId {ids['example.test']}" in proc.stderr  # left in place, and said so
    assert ids["example.test"] in emu.state.cas_certs
    assert not emu.calls_of("DeleteUserCertificate")

    proc = cli("delete", "--name", "b.example.test", "--yes", "--cleanup-cloud", env=env)
    assert proc.returncode == 0, proc.stderr
    assert [c["CertId"] for c in emu.calls_of("DeleteUserCertificate")] == [
        str(ids["b.example.test"])]
    assert ids["b.example.test"] not in emu.state.cas_certs
    assert ids["example.test"] in emu.state.cas_certs
    assert any(c["Name"] == "uploaded-by-hand" for c in emu.state.cas_certs.values())
    assert not (state / "renewal" / "b.example.test.json").exists()


def test_delete_names_replaced_certificates_left_to_delete(
        cli: Run, setup: tuple[Path, dict[str, str], Lineage]) -> None:
    state, env, lin = setup
    lin.meta.replaced_certs = [{"kind": "clb", "id": "1234-cn-hangzhou",
                                "region": "cn-hangzhou", "replaced": "2025-01-01T00:00:00Z"}]
    FileStore(state).save_meta(lin.meta)
    proc = cli("delete", "--name", "example.test", "--yes", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "clb 1234-cn-hangzhou (cn-hangzhou)" in proc.stderr  # no later run retries it
