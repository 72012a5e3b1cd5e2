"""SIGHUP: read the configuration file again and apply its browser devices, keeping every task.

Only `[[devices.browser]]` is applied: a slot new in the file is started and offered to the
coordinator, a slot gone from the file is removed (at once when idle; a busy one finishes its
task first, then goes). A slot whose settings changed, `[android]` and every other key apply at
the next start. A file that does not load, or does not validate, leaves the daemon on the
devices it has, and one log line says why.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from agent.config import ConfigError, load_config
from agent.scheduler import Scheduler
from agent.state import StateStore
from agent.stopping import StopRequest
from drivers.browser.config import BrowserSettings, BrowserSlot
from drivers.browser.device import BrowserDevice
from drivers.browser.host import ChromiumHost


class BrowserReloader:
    """The daemon's browser slots by name, brought in line with the file on each `reload`."""

    def __init__(
        self,
        scheduler: Scheduler,
        state: StateStore,
        chromium: ChromiumHost,
        settings: BrowserSettings,
        log: logging.Logger,
    ) -> None:
        self._scheduler = scheduler
        self._state = state
        self._chromium = chromium
        self._settings = settings
        self._log = log
        self._slots: dict[str, str] = {}
        """Slot name -> remote_device_id of the browser devices the daemon has."""

    async def add(self, slot: BrowserSlot) -> None:
        device = BrowserDevice(slot, self._chromium, self._settings)
        await device.start()
        rid = await self._state.remote_device_id(device.slot, device.kind)
        self._slots[slot.name] = rid
        await self._scheduler.add_device(rid, device)
        self._log.info("device %s (%s %s) ready", rid, device.kind, device.slot)

    async def reload(self, path: Path) -> None:
        try:
            # Environment overrides were read once and scrubbed; the arrays are file-only.
            config = await asyncio.to_thread(load_config, path, {})
        except ConfigError as exc:
            problem = str(exc).replace("\n", "; ")
            self._log.error("SIGHUP: keeping the current devices: %s", problem)
            return
        wanted = {slot.name: slot for slot in config.devices.browser}
        added = [name for name in wanted if name not in self._slots]
        removed = [name for name in self._slots if name not in wanted]
        for name in removed:
            await self._scheduler.remove_device(self._slots.pop(name))
        for name in added:
            await self.add(wanted[name])
        self._log.info(
            "SIGHUP: reloaded %s: browser devices added: %s; removed: %s "
            "(other changes apply at the next start)",
            path,
            ", ".join(added) or "none",
            ", ".join(removed) or "none",
        )


async def serve_reloads(
    path: Path, hangup: asyncio.Event, reloader: BrowserReloader, stop: StopRequest
) -> None:
    """Reload on each SIGHUP (`hangup` set), one at a time, until the daemon stops; a SIGHUP
    during a reload is served after it."""
    while True:
        await hangup.wait()
        hangup.clear()
        if stop.requested.is_set():
            return
        try:
            await reloader.reload(path)
        except Exception:
            # A reload that fails half way keeps what it did; a SIGHUP never stops the daemon.
            logging.getLogger("device_agent").exception("SIGHUP: the reload failed")
