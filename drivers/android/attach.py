"""`attach_android`: the daemon's Android side, from discovery to the scheduler's slots.

It starts the daemon's adb server, follows its device list (drivers/android/discovery.py),
`adb connect`s the configured network addresses whenever they are not attached, and keeps one
`AndroidDevice` per serial: a serial seen for the first time gets its stable remote_device_id and
a slot (`add_device`); any change of state is reported (`devices_changed`); a phone that leaves
(or is quarantined) while a task holds it ends that task (`device_lost`). Device-list changes are
coalesced for `debounce_s` so that a burst (a hub re-enumerating) is acted on once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from drivers.android.adb import SERVER_START_TIMEOUT_S, AdbHost
from drivers.android.config import AndroidSettings
from drivers.android.device import AndroidDevice
from drivers.android.discovery import Tracker
from drivers.base import Device

KIND = "android"


class DeviceIds(Protocol):
    async def remote_device_id(self, slot: str, kind: str) -> str: ...


class Slots(Protocol):
    async def add_device(self, remote_device_id: str, device: Device) -> None: ...

    async def devices_changed(self) -> None: ...

    def device_lost(self, remote_device_id: str) -> None: ...


class AndroidFleet:
    def __init__(
        self, settings: AndroidSettings, ids: DeviceIds, slots: Slots, log: logging.Logger
    ) -> None:
        self.settings = settings
        self.host = AdbHost(settings)
        self.devices: dict[str, AndroidDevice] = {}
        self.remote_ids: dict[str, str] = {}
        self._ids = ids
        self._slots = slots
        self._log = log
        self._latest: dict[str, str] = {}
        self._changed = asyncio.Event()
        self._tracker: Tracker | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        try:
            await asyncio.wait_for(asyncio.to_thread(self.host.start), SERVER_START_TIMEOUT_S + 5)
        except Exception as exc:
            # Not fatal: the tracker keeps trying, and the browsers still work meanwhile.
            self._log.error("cannot start the adb server: %s", exc)
        loop = asyncio.get_running_loop()

        def report(devices: dict[str, str]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed under the thread
                loop.call_soon_threadsafe(self._on_list, devices)

        self._tracker = Tracker(self.host, report)
        self._tracker.start()
        self._tasks = [
            asyncio.create_task(self._apply_changes(), name="android-discovery"),
            asyncio.create_task(self._keep_connected(), name="android-connect"),
        ]

    async def stop(self) -> None:
        """Stop discovery. The devices are the scheduler's slots: the daemon stops them after
        its running tasks (whose sessions they hold) are ended."""
        if self._tracker is not None:
            self._tracker.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_list(self, devices: dict[str, str]) -> None:
        only = self.settings.serials
        self._latest = devices if only is None else {s: devices[s] for s in only if s in devices}
        self._changed.set()

    async def _apply_changes(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(self.settings.debounce_s)
            self._changed.clear()
            try:
                await self._apply(dict(self._latest))
            except Exception:
                self._log.exception("applying the adb device list failed")

    async def _apply(self, listed: dict[str, str]) -> None:
        changed = False
        for serial, adb_state in listed.items():
            device = self.devices.get(serial)
            if device is None:
                await self._add(serial, adb_state)
            else:
                changed = device.set_adb_state(adb_state) or changed
        for serial, device in self.devices.items():
            if serial not in listed:
                changed = device.set_adb_state("absent") or changed
        self._report_lost()
        if changed:
            await self._slots.devices_changed()

    async def _add(self, serial: str, adb_state: str) -> None:
        rid = await self._ids.remote_device_id(slot=serial, kind=KIND)
        device = AndroidDevice(serial, self.host, self.settings, self._device_changed)
        device.set_adb_state(adb_state)
        self.devices[serial] = device
        self.remote_ids[serial] = rid
        await device.start()
        await self._slots.add_device(rid, device)
        self._log.info("android device %s (%s) found: %s", rid, serial, adb_state)

    async def _device_changed(self, device: AndroidDevice) -> None:
        self._report_lost()
        await self._slots.devices_changed()

    def _report_lost(self) -> None:
        for serial, device in self.devices.items():
            if device.session is not None and device.lost and not device.lost_reported:
                device.lost_reported = True
                self._slots.device_lost(self.remote_ids[serial])

    async def _keep_connected(self) -> None:
        """`adb connect` each configured address that is not attached (a phone over TCP that
        restarted, the adb server that restarted and forgot it)."""
        while True:
            for address in self.settings.connect:
                if self._latest.get(address) in ("device", "unauthorized"):
                    continue
                try:
                    await asyncio.wait_for(
                        asyncio.to_thread(self.host.connect, address),
                        self.settings.call_timeout_s * 2,
                    )
                except Exception as exc:
                    self._log.debug("adb connect %s: %s", address, exc)
            await asyncio.sleep(self.settings.reconnect_interval_s)


@contextlib.asynccontextmanager
async def attach_android(
    settings: AndroidSettings, ids: DeviceIds, slots: Slots, log: logging.Logger
) -> AsyncIterator[AndroidFleet | None]:
    """Run the Android side for the duration of the block (nothing when it is disabled)."""
    if not settings.enabled:
        yield None
        return
    fleet = AndroidFleet(settings, ids, slots, log)
    await fleet.start()
    try:
        yield fleet
    finally:
        await fleet.stop()
