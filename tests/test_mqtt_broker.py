"""Certificates from the local CA against a real mosquitto broker that requires client
certificates: our devices get in and messages flow, a stranger's device does not, and a
client that checks the host name refuses a server certificate made for another name."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from acmeali.localca import LocalCA, write_outputs
from tests.peers.mosquitto import ClientCreds, Mosquitto, round_trip
from tests.peers.pebble import wait_until


@dataclass
class Pki:
    ca: Path
    other_ca: Path
    server: Path
    devices: Path


def _ca(path: Path, key_type: str, subject: str) -> LocalCA:
    _, files = LocalCA.create(path, key_type=key_type, subject=subject)
    write_outputs(path, files, force=False)
    return LocalCA.load(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca = _ca(root / "ca", "ec256", "O=acmeali tests,CN=device CA")
    other = _ca(root / "other", "ec256", "O=someone else,CN=device CA")  # same CN on purpose
    srv = root / "server"
    write_outputs(srv, ca.server_cert(["localhost", "127.0.0.1"], key_type="rsa2048").files,
                  force=False)
    write_outputs(srv / "wrongname",
                  ca.server_cert(["*.mqtt.example.com"], key_type="ec256").files, force=False)
    dev = root / "devices"
    write_outputs(dev, ca.device_cert("sensor-1", key_type="ec256").files, force=False)
    write_outputs(dev, ca.device_cert("sensor-2", key_type="rsa2048").files, force=False)
    write_outputs(dev, other.device_cert("intruder", key_type="ec256").files, force=False)
    return Pki(root / "ca", root / "other", srv, dev)


@pytest.fixture(scope="module")
def broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    # The chain file as certfile: what a broker (or CAS) is given in practice.
    with Mosquitto(tmp_path_factory.mktemp("mosquitto"), cafile=pki.ca / "CA.crt",
                   certfile=pki.server / "server_chain.crt",
                   keyfile=pki.server / "server.key") as b:
        yield b


def _device(pki: Pki, name: str) -> ClientCreds:
    return ClientCreds(cafile=pki.ca / "CA.crt", certfile=pki.devices / f"{name}_chain.crt",
                       keyfile=pki.devices / f"{name}.key")


def test_devices_from_our_ca_connect_and_messages_round_trip(broker: Mosquitto, pki: Pki) -> None:
    got = round_trip(broker, _device(pki, "sensor-1"), _device(pki, "sensor-2"),
                     "devices/sensor-1/telemetry", "temp=21.5")
    assert got == "temp=21.5"
    log = broker.log_text()
    # use_identity_as_username: the broker knows each device by its certificate's CN
    assert "u'sensor-1'" in log and "u'sensor-2'" in log
    # also over the IP address SAN
    got = round_trip(broker, _device(pki, "sensor-1"), _device(pki, "sensor-1"), "ip/check",
                     "by-ip", host="127.0.0.1")
    assert got == "by-ip"


def test_device_from_another_ca_is_refused(broker: Mosquitto, pki: Pki) -> None:
    intruder = _device(pki, "intruder")
    r = broker.publish(intruder, "devices/intruder", "hello")
    assert r.returncode != 0, r.stdout
    # the broker, not the client, said no (its log is written asynchronously)
    wait_until(lambda: "certificate verify failed" in broker.log_text(), "broker log", timeout=5)
    assert "u'intruder'" not in broker.log_text()
    # and the refusal is the certificate, not the network: our device still gets in
    assert broker.publish(_device(pki, "sensor-1"), "devices/ok", "hello").returncode == 0


def test_client_checking_host_name_rejects_wrong_name(pki: Pki,
                                                      tmp_path: Path) -> None:
    wrong = pki.server / "wrongname"
    with Mosquitto(tmp_path, cafile=pki.ca / "CA.crt", certfile=wrong / "server_chain.crt",
                   keyfile=wrong / "server_pkcs8.key") as b:
        dev = _device(pki, "sensor-1")
        r = b.publish(dev, "t", "m", host="localhost")  # verifies the name: no --insecure
        assert r.returncode != 0
        assert "TLS error" in r.stderr, r.stderr
        assert "u'sensor-1'" not in b.log_text()
        # Same broker, same chain, name check off: connects. So the name was the reason.
        r = b.publish(dev, "t", "m", host="localhost", extra=("--insecure",))
        assert r.returncode == 0, r.stderr
