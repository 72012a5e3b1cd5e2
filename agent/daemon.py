"""The daemon's lifetime: open the state file and outbox, start the devices, serve the link.

At start it first settles what a previous run left: tasks that were running are reported failed
(`agent_restarted`; a final submission already in the outbox still wins at the coordinator) and
their leftover processes are killed. `run_daemon` returns when cancelled (SIGTERM/SIGINT); on
the way out every running script is killed and reported, the browser and the state are closed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from importlib.metadata import version

from agent import protocol as p
from agent.backend import CoordinatorBackend
from agent.config import AgentConfig
from agent.link import Link
from agent.outbox import Outbox
from agent.sandbox import Isolation
from agent.scheduler import Scheduler
from agent.state import StateStore
from agent.sweep import kill_tagged
from drivers.android import attach_android
from drivers.browser import BrowserDevice, ChromiumHost

log = logging.getLogger("device_agent")


async def recover_previous_run(outbox: Outbox) -> None:
    orphans = await outbox.orphaned_tasks()
    if not orphans:
        return
    killed = kill_tagged({task_id for task_id, _ in orphans})
    for task_id, _ in orphans:
        await outbox.put(
            p.Finished(
                key=uuid.uuid4().hex,
                task_id=task_id,
                state="failed",
                reason="agent_restarted",
                error="the daemon was restarted while the task ran",
                finished_at=datetime.now(UTC),
            ),
            ends_task=True,
        )
    log.warning(
        "reported %d task(s) of the previous run as agent_restarted; "
        "killed %d leftover process(es)",
        len(orphans),
        len(killed),
    )


async def run_daemon(config: AgentConfig, token: str, isolation: Isolation) -> None:
    state = await StateStore.open(config.agent.state_file)
    outbox = await Outbox.open(config.agent.state_file, config.outbox, log)
    chromium = ChromiumHost(config.browser)
    scheduler: Scheduler | None = None
    try:
        await recover_previous_run(outbox)
        agent_version = version("device-agent")
        link = Link(
            config.coordinator,
            token,
            make_hello=lambda: sched.hello(config.agent.host_id, agent_version),
            on_frame=lambda frame: sched.on_frame(frame),
            on_session=lambda: sched.on_session(),
            on_ack=outbox.on_ack,
            log=log,
            make_heartbeat=lambda: sched.heartbeat(),
        )
        sched = scheduler = Scheduler(
            slots={},
            link=link,
            outbox=outbox,
            backend=CoordinatorBackend(link, outbox, config.outbox.ack_wait_s),
            isolation=isolation,
            log=log,
        )
        outbox.on_pressure_change = sched.pressure_changed
        for browser_slot in config.devices.browser:
            device = BrowserDevice(browser_slot, chromium, config.browser)
            await device.start()
            rid = await state.remote_device_id(device.slot, device.kind)
            await sched.add_device(rid, device)
            log.info("device %s (%s %s) ready", rid, device.kind, device.slot)
        log.info(
            "host %s starting with %d device(s); coordinator %s",
            config.agent.host_id,
            len(sched.slots),
            config.coordinator.url,
        )
        delivery = asyncio.create_task(outbox.deliver(link.send_text, link.connected))
        try:
            async with attach_android(config.android, state, scheduler, log):
                await link.run()
        finally:
            delivery.cancel()
            await asyncio.gather(delivery, return_exceptions=True)
    finally:
        if scheduler is not None:
            await scheduler.stop()
            for slot in scheduler.slots.values():
                await slot.device.stop()
        await chromium.stop()
        await outbox.close()
        await state.close()
        log.info("stopped")
