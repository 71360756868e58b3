"""A loopback Alibaba Cloud emulator for tests (see server.py); acmeali never imports it."""

from .server import AliyunEmulator, Faults
from .state import EmulatorState

__all__ = ["AliyunEmulator", "EmulatorState", "Faults"]
