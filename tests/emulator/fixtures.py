"""pytest fixtures for the Alibaba Cloud emulator (loaded from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import AliyunEmulator


@pytest.fixture
def aliyun(request: pytest.FixtureRequest) -> Iterator[AliyunEmulator]:
    """A fresh emulator per test, forwarding Alidns TXT records to the session Pebble's
    challtestsrv so that Pebble validates DNS-01 through the Alidns path."""
    pebble = request.getfixturevalue("pebble")
    with AliyunEmulator(challtestsrv=pebble.challtestsrv) as emu:
        yield emu


@pytest.fixture
def emu(aliyun: AliyunEmulator, monkeypatch: pytest.MonkeyPatch) -> AliyunEmulator:
    """The emulator with its credentials in this process's environment and the SDK client
    cache emptied, for tests that call acmeali's Alibaba layer in-process."""
    from acmeali.aliyun import clear_clients
    from acmeali.solvers.alidns import forget_zones

    for k, v in aliyun.env().items():
        monkeypatch.setenv(k, v)
    clear_clients()
    forget_zones()  # the zone listing is cached per process, keyed by endpoint
    return aliyun
