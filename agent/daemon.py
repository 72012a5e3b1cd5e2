"""The daemon's lifetime: open the state file, start the devices, serve the coordinator link.

`run_daemon` returns when cancelled (SIGTERM/SIGINT); on the way out every running script is
killed and reported, the browser is closed and the state file is closed.
"""

from __future__ import annotations

import logging
from importlib.metadata import version

from agent.backend import CoordinatorBackend
from agent.config import AgentConfig
from agent.link import Link
from agent.scheduler import Scheduler, Slot
from agent.state import StateStore
from drivers.browser import BrowserDevice, ChromiumHost

log = logging.getLogger("device_agent")


async def run_daemon(config: AgentConfig, token: str) -> None:
    state = await StateStore.open(config.agent.state_file)
    chromium = ChromiumHost(config.browser)
    slots: dict[str, Slot] = {}
    try:
        for browser_slot in config.devices.browser:
            device = BrowserDevice(browser_slot, chromium, config.browser)
            await device.start()
            rid = await state.remote_device_id(device.slot, device.kind)
            slots[rid] = Slot(remote_device_id=rid, device=device)
            log.info("device %s (%s %s) ready", rid, device.kind, device.slot)
        agent_version = version("device-agent")
        scheduler: Scheduler
        link = Link(
            config.coordinator,
            token,
            make_hello=lambda: scheduler.hello(config.agent.host_id, agent_version),
            on_frame=lambda frame: scheduler.on_frame(frame),
            on_session=lambda: scheduler.on_session(),
            log=log,
        )
        scheduler = Scheduler(
            slots=slots,
            link=link,
            backend=CoordinatorBackend(link),
            scripts=config.scripts,
            log=log,
        )
        log.info(
            "host %s starting with %d device(s); coordinator %s",
            config.agent.host_id,
            len(slots),
            config.coordinator.url,
        )
        try:
            await link.run()
        finally:
            await scheduler.stop()
    finally:
        for slot in slots.values():
            await slot.device.stop()
        await chromium.stop()
        await state.close()
        log.info("stopped")
