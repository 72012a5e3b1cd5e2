"""An Android device: one phone (an adb serial), its worker thread, its health and its state.

The phone's adb state comes from discovery (`set_adb_state`); a supervisor task connects
uiautomator2 when the phone is attached, probes its health every `health_interval_s` while no task
holds it, and walks the recovery ladder (drivers/android/recovery.py) when a probe or a task's
call fails. `state()`: `unauthorized` and `offline` as adb says, `offline` too while the phone is
not connected or is being recovered, `quarantined` when the ladder gave up for now, else
`available`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from agent.protocol import DeviceKind, DeviceState
from drivers.android.adb import AdbHost
from drivers.android.config import AndroidSettings
from drivers.android.phone import Phone
from drivers.android.recovery import RUNGS, Backoff, connect
from drivers.android.session import AndroidSession, describe
from drivers.android.worker import CallTimeout, DeviceWorker
from drivers.base import ActionError, Device, DeviceLost, DeviceSession, SessionSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
Notify = Callable[["AndroidDevice"], Awaitable[None]]
ATTACHED_CHECK_S = 3.0


class AndroidDevice(Device):
    kind: DeviceKind = "android"

    def __init__(
        self, serial: str, host: AdbHost, settings: AndroidSettings, notify: Notify
    ) -> None:
        self.slot = serial
        self.settings = settings
        self.phone = Phone(host, serial)
        self.adb_state = "absent"
        self.ready = False
        """uiautomator2 is connected and the last probe passed."""
        self.quarantined = False
        self.health = "connecting"
        """The recovery rung being tried, `ok`, or `quarantined`."""
        self.last_error: str | None = None
        self.session: AndroidSession | None = None
        self.lost_reported = False
        """The running task was already told the phone is gone (tell it once)."""
        self._host = host
        self._notify = notify
        self._worker = DeviceWorker(f"android-{serial}")
        self._wake = asyncio.Event()
        self._suspect = False
        self._fresh = True
        """Connect uiautomator2 anew before anything else (first attach, or back after a detach)."""
        self._backoff = Backoff(settings.quarantine_initial_s, settings.quarantine_max_s)
        self._quarantine_until = 0.0
        self._supervisor: asyncio.Task[None] | None = None
        self._steps: Counter[str] = Counter()
        """Recovery rungs tried, and quarantines, since start."""

    # ---- Device ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._supervisor = asyncio.create_task(self._supervise(), name=f"android-{self.slot}")

    def recovery_steps(self) -> Mapping[str, int]:
        return self._steps

    def state(self) -> DeviceState:
        if self.adb_state == "unauthorized":
            return "unauthorized"
        if self.adb_state != "device":
            return "offline"
        if self.quarantined:
            return "quarantined"
        return "available" if self.ready else "offline"

    def properties(self) -> dict[str, Any]:
        props = self.phone.props
        sdk = props.get("ro.build.version.sdk", "")
        return {
            "serial": self.slot,
            "brand": props.get("ro.product.brand"),
            "manufacturer": props.get("ro.product.manufacturer"),
            "model": props.get("ro.product.model"),
            "sdk_version": int(sdk) if sdk.isdigit() else None,
            "android_version": props.get("ro.build.version.release"),
            "abi": props.get("ro.product.cpu.abi"),
            "width": self.phone.width or None,
            "height": self.phone.height or None,
            "adb_state": self.adb_state,
            "health": self.health,
            "last_error": self.last_error,
        }

    async def open_session(
        self, task_id: str, settings: SessionSettings | None = None
    ) -> DeviceSession:
        if settings is not None:
            raise ActionError("open_session", "an android device cannot honour browser settings")
        state = self.state()
        if state != "available":
            raise DeviceLost("open_session", f"phone {self.slot} is {state}")
        self.session = AndroidSession(self, task_id)
        self.lost_reported = False
        log.info("task %s: android session opened on %s", task_id, self.slot)
        return self.session

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        self._worker.close()

    # ---- used by discovery and the session -----------------------------------------------------

    @property
    def lost(self) -> bool:
        """Gone for the task holding it: detached from adb, or given up on by the ladder."""
        return self.adb_state != "device" or self.quarantined

    def set_adb_state(self, adb_state: str) -> bool:
        """What adb says of the phone now; True when that changed."""
        if adb_state == self.adb_state:
            return False
        log.info("android %s: adb state %s -> %s", self.slot, self.adb_state, adb_state)
        self.adb_state = adb_state
        if adb_state != "device":
            # The worker may be mid-call on the old connection: it is replaced by the next
            # rung (in the worker), not here.
            self.ready = False
            self.health = "detached"
            self._fresh = True
        self._wake.set()
        return True

    async def run(self, fn: Callable[..., T], *args: Any, deadline_s: float) -> T:
        """fn(*args) in the phone's worker thread, under an outer deadline."""
        return await self._worker.run(fn, *args, deadline_s=deadline_s)

    async def attached(self) -> bool:
        """Ask the adb server now (discovery may not have heard yet) whether the phone is there."""
        if self.adb_state != "device":
            return False
        try:
            devices = await asyncio.wait_for(
                asyncio.to_thread(self._host.devices), ATTACHED_CHECK_S
            )
        except Exception:
            return False
        return devices.get(self.slot) == "device"

    def suspect(self, error: str) -> None:
        """A task's call failed in a way that may be the phone's: check it now."""
        self.last_error = error
        self._suspect = True
        self._wake.set()

    async def session_closed(self, session: AndroidSession) -> None:
        if self.session is session:
            self.session = None
        self._wake.set()

    # ---- supervision -------------------------------------------------------------------------

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.health_interval_s)
            self._wake.clear()
            if self.adb_state != "device":
                continue
            if self.quarantined and loop.time() < self._quarantine_until:
                continue
            try:
                if self.ready and not self._suspect:
                    if self.session is None:
                        await self._probe()
                else:
                    await self._recover()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("android %s: supervision failed", self.slot)

    async def _probe(self) -> None:
        try:
            await self.run(self.phone.refresh_display, deadline_s=self.settings.call_timeout_s)
        except Exception as exc:
            if self.adb_state != "device":
                return
            self.last_error = describe(exc)
            log.warning("android %s: health probe failed: %s", self.slot, self.last_error)
            if isinstance(exc, CallTimeout):
                # Not a glitch but a phone that does not answer (frozen, wedged): offline now,
                # not after the ladder's first rung has waited its connect_timeout_s too.
                await self._set_health("unresponsive", ready=False)
            await self._recover()

    async def _recover(self) -> None:
        """Walk the ladder; on success the phone is available, else quarantined for a while."""
        self._suspect = False
        rungs = (("connect", connect), *RUNGS[1:]) if self._fresh else RUNGS
        self._fresh = False
        for index, (rung, step) in enumerate(rungs):
            if self.adb_state != "device":
                return
            await self._set_health(rung, ready=self.ready and index == 0)
            self._steps[rung] += 1
            try:
                await self.run(
                    step, self.phone, self._host, deadline_s=self.settings.connect_timeout_s
                )
            except Exception as exc:
                self.last_error = describe(exc)
                log.warning("android %s: %s failed: %s", self.slot, rung, self.last_error)
                continue
            self.quarantined = False
            self._backoff.reset()
            self.last_error = None
            await self._set_health("ok", ready=True)
            log.info("android %s: ready (%s)", self.slot, rung)
            return
        # Every rung failed: quarantined even if the last rung's own reconnect left adb's
        # view of the phone in flux (its state still says offline while adb says so).
        pause = self._backoff.next()
        self.quarantined = True
        self._steps["quarantine"] += 1
        self._quarantine_until = asyncio.get_running_loop().time() + pause
        log.error("android %s: quarantined for %g s: %s", self.slot, pause, self.last_error)
        await self._set_health("quarantined", ready=False)
        asyncio.get_running_loop().call_later(pause, self._wake.set)

    async def _set_health(self, health: str, ready: bool) -> None:
        changed = (health, ready) != (self.health, self.ready)
        self.health, self.ready = health, ready
        if changed:
            await self._notify(self)
