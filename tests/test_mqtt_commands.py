"""``acmeali mqtt`` through the real CLI and the real OnsMqtt SDK against the emulator,
which checks proof of possession (verification certificate signed by the CA, CN = the
instance's registration code) the way the service does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from acmeali.localca import LocalCA, write_outputs
from tests.conftest import run_acmeali

INSTANCE = "mqtt-cn-test0001"


class Cli:
    def __init__(self, emu: Any, tmp_path: Path) -> None:
        self.emu = emu
        self.config = tmp_path / "config.toml"
        self.config.write_text(emu.config_toml())

    def __call__(self, *args: str, code: int = 0) -> Any:
        r = run_acmeali("--config", str(self.config), *args, env=self.emu.env())
        assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr)
        return r


@pytest.fixture
def cli(aliyun: Any, tmp_path: Path) -> Cli:
    aliyun.add_mqtt_instance(INSTANCE)
    return Cli(aliyun, tmp_path)


def _make_ca(path: Path, cn: str) -> LocalCA:
    _, files = LocalCA.create(path, key_type="ec256", subject=f"O=acmeali tests,CN={cn}")
    write_outputs(path, files, force=False)
    return LocalCA.load(path)


def test_register_and_manage_ca_and_devices(cli: Cli, aliyun: Any, tmp_path: Path) -> None:
    ca = _make_ca(tmp_path / "ca", "fleet CA")
    sn = format(ca.cert.serial_number, "x")

    r = cli("mqtt", "register-ca", "--instance", INSTANCE, "--ca", str(tmp_path / "ca"))
    assert f"Sn {sn}" in r.stdout
    (call,) = aliyun.calls_of("RegisterCaCertificate")
    assert call["CaName"] == "fleet CA"
    assert call["CaContent"].strip() == ca.cert_pem.decode().strip()
    ver = x509.load_pem_x509_certificate(call["VerificationContent"].encode())
    code = aliyun.state.mqtt[INSTANCE]["CaCertificates"][sn]["RegistrationCode"]
    assert ver.subject.rfc4514_string() == f"CN={code}"
    # the verification certificate was kept in memory, not left behind
    assert sorted(p.name for p in (tmp_path / "ca").iterdir()) == ["CA.crt", "CA.key",
                                                                   "serials.txt"]

    r = cli("mqtt", "ca", "list", "--instance", INSTANCE)
    header, row = r.stdout.strip().splitlines()
    assert header.split() == ["SN", "NAME", "STATUS", "VALID", "FROM", "VALID", "UNTIL"]
    assert row.startswith(sn) and "fleet CA" in row and "active" in row
    listed = json.loads(cli("mqtt", "ca", "list", "--instance", INSTANCE, "--json").stdout)
    assert [c["Sn"] for c in listed] == [sn] and listed[0]["Status"] == "1"
    shown = json.loads(cli("mqtt", "ca", "show", "--instance", INSTANCE, "--sn", sn,
                           "--json").stdout)
    assert shown["CaName"] == "fleet CA"
    assert "BEGIN CERTIFICATE" in cli("mqtt", "ca", "show", "--instance", INSTANCE,
                                      "--sn", sn).stdout

    # devices appear when they first connect
    d1 = ca.device_cert("sensor-1", key_type="ec256")
    d2 = ca.device_cert("sensor-2", key_type="ec256")
    dsn1 = aliyun.register_device(INSTANCE, d1.cert_pem.decode())
    dsn2 = aliyun.register_device(INSTANCE, d2.cert_pem.decode())
    out = cli("mqtt", "device", "list", "--instance", INSTANCE).stdout
    assert dsn1 in out and dsn2 in out and "sensor-1" in out and "sensor-2" in out
    by_ca = json.loads(cli("mqtt", "device", "list", "--instance", INSTANCE, "--ca-sn", sn,
                           "--json").stdout)
    assert {d["DeviceSn"] for d in by_ca} == {dsn1, dsn2}
    one = json.loads(cli("mqtt", "device", "list", "--instance", INSTANCE, "--device-sn", dsn2,
                         "--json").stdout)
    assert [d["DeviceSn"] for d in one] == [dsn2]  # docs/mqtt.md: --device-sn filters
    assert json.loads(cli("mqtt", "ca", "list", "--instance", INSTANCE, "--sn", "ffff",
                          "--json").stdout) == []
    dev = ("--instance", INSTANCE, "--ca-sn", sn, "--device-sn", dsn1)
    assert "sensor-1" in cli("mqtt", "device", "show", *dev).stdout

    cli("mqtt", "device", "deactivate", *dev)
    with pytest.raises(PermissionError):
        aliyun.register_device(INSTANCE, d1.cert_pem.decode())
    cli("mqtt", "device", "activate", *dev)
    assert aliyun.register_device(INSTANCE, d1.cert_pem.decode()) == dsn1
    r = cli("mqtt", "device", "delete", *dev)
    assert f"{dsn1} deleted" in r.stdout
    left = json.loads(cli("mqtt", "device", "list", "--instance", INSTANCE, "--json").stdout)
    assert [d["DeviceSn"] for d in left] == [dsn2]

    # deactivating the CA locks out its devices; activating lets them back in
    cli("mqtt", "ca", "deactivate", "--instance", INSTANCE, "--sn", sn)
    assert "inactive" in cli("mqtt", "ca", "list", "--instance", INSTANCE).stdout
    with pytest.raises(PermissionError):
        aliyun.register_device(INSTANCE, d2.cert_pem.decode())
    cli("mqtt", "ca", "activate", "--instance", INSTANCE, "--sn", sn)
    assert aliyun.register_device(INSTANCE, d2.cert_pem.decode()) == dsn2

    cli("mqtt", "ca", "delete", "--instance", INSTANCE, "--sn", sn)
    assert "no CA certificates" in cli("mqtt", "ca", "list", "--instance", INSTANCE).stdout
    assert "no device certificates" in cli("mqtt", "device", "list", "--instance",
                                           INSTANCE).stdout


def test_two_cas_and_paging(cli: Cli, aliyun: Any, tmp_path: Path) -> None:
    cas = [_make_ca(tmp_path / f"ca{i}", f"CA {i}") for i in range(2)]
    for i in range(2):
        cli("mqtt", "register-ca", "--instance", INSTANCE, "--ca", str(tmp_path / f"ca{i}"),
            "--name", f"named-{i}")
    for i in range(3):
        aliyun.register_device(INSTANCE, cas[1].device_cert(f"d{i}", key_type="ec256")
                               .cert_pem.decode())
    listed = json.loads(cli("mqtt", "ca", "list", "--instance", INSTANCE, "--json").stdout)
    assert sorted(c["CaName"] for c in listed) == ["named-0", "named-1"]
    sn0 = format(cas[0].cert.serial_number, "x")
    assert "no device certificates under CA" in cli(
        "mqtt", "device", "list", "--instance", INSTANCE, "--ca-sn", sn0).stdout


def test_register_failures(cli: Cli, aliyun: Any, tmp_path: Path) -> None:
    # bad CA directory: refused before any API call
    r = cli("mqtt", "register-ca", "--instance", INSTANCE, "--ca", str(tmp_path / "none"),
            code=2)
    assert "no such directory" in r.stderr
    assert aliyun.calls == []

    _make_ca(tmp_path / "ca", "x")
    r = cli("mqtt", "register-ca", "--instance", "mqtt-cn-nope", "--ca", str(tmp_path / "ca"),
            code=1)
    assert "GetRegisterCode" in r.stderr and "Traceback" not in r.stderr
    cli("mqtt", "register-ca", "--instance", INSTANCE, "--ca", str(tmp_path / "ca"))
    r = cli("mqtt", "register-ca", "--instance", INSTANCE, "--ca", str(tmp_path / "ca"), code=1)
    assert "RegisterCaCertificate" in r.stderr and "already" in r.stderr.lower()

    r = cli("mqtt", "ca", "deactivate", "--instance", INSTANCE, "--sn", "deadbeef", code=1)
    assert "InactivateCaCertificate" in r.stderr
    r = cli("mqtt", "ca", "show", "--instance", INSTANCE, code=2)
    assert "--sn" in r.stderr


def test_local_ca_server_cert_deployed_for_the_instance(cli: Cli, aliyun: Any,
                                                        tmp_path: Path) -> None:
    """The seed documents' upload step in one command: server_chain.crt and its key go to
    CAS, and the output names the identifier to pick in the MQTT console."""
    _make_ca(tmp_path / "ca", "fleet CA")
    out = tmp_path / "server"
    cli("ca", "server-cert", "--ca", str(tmp_path / "ca"), "-d", "mqtt.example.test",
        "--out", str(out))
    chain, key = out / "server_chain.crt", out / "server.key"
    r = cli("deploy", "--cert", str(chain), "--key", str(key),
            "--target", f"mqtt-server:{INSTANCE}")
    (cert_id, stored), = aliyun.state.cas_certs.items()
    assert str(stored["Cert"]).count("BEGIN CERTIFICATE") == 2  # server, then the CA
    assert "BEGIN PRIVATE KEY" in str(stored["Key"])  # PKCS#8 whatever the file held
    assert f"{cert_id}-" in r.stdout and "restart" in r.stdout
    # Again: found in CAS, not uploaded twice; nothing was written to a state directory.
    cli("deploy", "--cert", str(chain), "--key", str(key), "--target", "cas")
    assert len(aliyun.calls_of("UploadUserCertificate")) == 1

    other = tmp_path / "other"
    cli("ca", "server-cert", "--ca", str(tmp_path / "ca"), "-d", "other.example.test",
        "--out", str(other))
    r = cli("deploy", "--cert", str(chain), "--key", str(other / "server.key"),
            "--target", "cas", code=2)
    assert "does not belong to the certificate" in r.stderr
    r = cli("deploy", "--cert", str(chain), "--target", "cas", code=2)
    assert "--key" in r.stderr
    assert len(aliyun.calls_of("UploadUserCertificate")) == 1


# ----------------------------------------------------------------- issue 11: as documented
def test_listing_more_than_a_page_when_total_counts_pages(cli: Cli, aliyun: Any,
                                                          tmp_path: Path) -> None:
    """ListCaCertificate/ListDeviceCertificate document Data.Total as the number of pages:
    150 CAs are 2 pages, and all 150 are listed."""
    from tests.emulator.mqtt import new_instance

    with aliyun.state.lock:
        inst = aliyun.state.mqtt.setdefault("mqtt-cn-many", new_instance())
        for i in range(150):
            sn = f"{i + 1:040x}"
            inst["CaCertificates"][sn] = {"Sn": sn, "CaName": f"ca-{i}", "Status": "1",
                                          "ValidBegin": "0", "ValidEnd": "0"}
            inst["DeviceCertificates"][f"d{sn}"] = {
                "DeviceSn": f"d{sn}", "CaSn": sn, "DeviceName": f"dev-{i}", "Status": "1",
                "ValidBegin": "0", "ValidEnd": "0"}
    listed = json.loads(cli("mqtt", "ca", "list", "--instance", "mqtt-cn-many",
                            "--json").stdout)
    assert len(listed) == 150
    devices = json.loads(cli("mqtt", "device", "list", "--instance", "mqtt-cn-many",
                             "--json").stdout)
    assert len(devices) == 150
    pages = [p["PageNo"] for p in aliyun.calls_of("ListCaCertificate")]
    assert pages == ["1", "2"]


def test_real_error_codes_get_hints_and_region_is_an_option(cli: Cli, aliyun: Any,
                                                            tmp_path: Path) -> None:
    r = cli("mqtt", "ca", "list", "--instance", "mqtt-cn-elsewhere", "--region",
            "cn-shanghai", code=1)
    assert "MqttInstanceNotFound" in r.stderr and "--region" in r.stderr
    r = cli("mqtt", "ca", "show", "--instance", INSTANCE, "--sn", "00ab", code=1)
    assert "FindCaBySnError" in r.stderr and "mqtt ca list" in r.stderr


def test_region_option_picks_the_regional_endpoint() -> None:
    from acmeali.aliyun.clients import endpoint_for
    from acmeali.config import AliyunSettings

    assert endpoint_for("mqtt", AliyunSettings(), "cn-shanghai") == (
        "onsmqtt.cn-shanghai.aliyuncs.com")
