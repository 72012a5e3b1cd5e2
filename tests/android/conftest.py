"""Harness for the Android driver against simulated phones through the real adb server.

`DriverHarness` runs the driver's asyncio side (an `AndroidFleet` with a real state file) on its
own event loop in a background thread, so tests are plain functions that drive it and the
simulated phone side by side. `Slots` stands in for the daemon's scheduler and records what the
fleet told it (the daemon-level tests in tests/e2e use the real one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent.state import StateStore
from drivers.android.attach import AndroidFleet
from drivers.android.config import AndroidSettings
from drivers.android.device import AndroidDevice
from drivers.base import Device, DeviceSession
from drivers.sim import SimPhoneError
from tests.sim.conftest import AdbServer, SimHandle, adb_server, poll, sim_phone

__all__ = ["adb_server", "sim_phone"]

T = TypeVar("T")
CALL_TIMEOUT = 60.0


def settings_for(adb: AdbServer, connect: list[str], **overrides: Any) -> AndroidSettings:
    """Short intervals so that detection and recovery take well under a second or two."""
    values: dict[str, Any] = {
        "enabled": True,
        "adb_path": adb.adb,
        "adb_port": adb.port,
        "connect": connect,
        "call_timeout_s": 5.0,
        "connect_timeout_s": 20.0,
        "health_interval_s": 0.5,
        "reconnect_interval_s": 0.3,
        "track_interval_s": 2.0,
        "debounce_s": 0.1,
        "quarantine_initial_s": 0.5,
        "quarantine_max_s": 1.0,
    }
    values.update(overrides)
    return AndroidSettings(**values)


@dataclass
class Slots:
    """What the fleet told the scheduler."""

    added: dict[str, Device] = field(default_factory=dict)
    changes: int = 0
    lost: list[str] = field(default_factory=list)

    async def add_device(self, remote_device_id: str, device: Device) -> None:
        self.added[remote_device_id] = device

    async def devices_changed(self) -> None:
        self.changes += 1

    def device_lost(self, remote_device_id: str) -> None:
        self.lost.append(remote_device_id)


class DriverHarness:
    def __init__(self, settings: AndroidSettings, state_file: Path) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="driver", daemon=True)
        self._thread.start()
        self.slots = Slots()
        self.state: StateStore = self.run(StateStore.open(state_file))
        self.fleet = AndroidFleet(settings, self.state, self.slots, logging.getLogger("test"))
        self.run(self.fleet.start())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def device(self, serial: str) -> AndroidDevice:
        poll(lambda: serial in self.fleet.devices, timeout=30)
        return self.fleet.devices[serial]

    def wait_state(self, serial: str, *states: str, timeout: float = 30) -> AndroidDevice:
        device = self.device(serial)
        poll(lambda: device.state() in states, timeout=timeout)
        return device

    def open(self, serial: str, task_id: str = "task-1") -> Session:
        device = self.wait_state(serial, "available")
        return Session(self, self.run(device.open_session(task_id)))

    def rid(self, serial: str) -> str:
        self.device(serial)
        return self.fleet.remote_ids[serial]

    def close(self) -> None:
        try:
            self.run(self.fleet.stop())
            for device in list(self.fleet.devices.values()):
                self.run(device.stop())
            self.run(self.state.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()


@dataclass
class Session:
    harness: DriverHarness
    session: DeviceSession

    def call(self, name: str, /, **params: Any) -> Any:
        return self.harness.run(self.session.call(name, params))

    def close(self) -> None:
        self.harness.run(self.session.close())


@contextlib.contextmanager
def driver(
    adb: AdbServer, tmp_path: Path, connect: list[str], **overrides: Any
) -> Iterator[DriverHarness]:
    harness = DriverHarness(settings_for(adb, connect, **overrides), tmp_path / "state.db")
    try:
        yield harness
    finally:
        harness.close()


def on_phone(sim: SimHandle, fn: Callable[[Any], T]) -> T:
    """fn(phone) on the simulated phone's loop."""
    result: T = sim.do(fn)
    return result


def stop_sim(adb: AdbServer, sim: SimHandle) -> None:
    with contextlib.suppress(SimPhoneError):
        adb.run("disconnect", sim.serial)
    sim.close()


@pytest.fixture
def harness(adb_server: AdbServer, sim_phone: SimHandle, tmp_path: Path) -> Iterator[DriverHarness]:
    with driver(adb_server, tmp_path, [sim_phone.serial]) as h:
        yield h
