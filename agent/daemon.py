"""The daemon's lifetime: open the state file and outbox, start the devices, serve the link.

At start it first settles what a previous run left: tasks that were running are reported failed
(`agent_restarted`; a final submission already in the outbox still wins at the coordinator) and
their leftover processes are killed. `run_daemon` returns once a stop is requested and its one
ordered sequence has run: take no task and let running tasks finish, within
`agent.drain_timeout_s` (agent/drain.py); end every script still running and commit its end
(`agent_stopped`); deliver what is queued while the link allows, within `agent.stop_delivery_s`;
close the link, the devices, the browser, the outbox and the state.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from agent import protocol as p
from agent.backend import CoordinatorBackend
from agent.config import AgentConfig
from agent.drain import drain
from agent.link import Link
from agent.metrics import DaemonMetrics, serve_metrics
from agent.outbox import Outbox
from agent.reload import BrowserReloader, serve_reloads
from agent.sandbox import Isolation
from agent.scheduler import Scheduler
from agent.sdnotify import Notifier
from agent.service import notifying, stopping
from agent.state import StateStore
from agent.stopping import StopRequest
from agent.sweep import kill_tagged
from agent.timeline import TimelineEntry
from drivers.android.attach import attach_android
from drivers.browser.host import ChromiumHost

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


async def run_daemon(
    config: AgentConfig,
    token: str,
    isolation: Isolation,
    stop: StopRequest,
    notifier: Notifier | None = None,
    watchdog_s: float | None = None,
    reload_from: tuple[Path, asyncio.Event] | None = None,
    on_timeline: Callable[[str, TimelineEntry], None] | None = None,
) -> None:
    """Serve until `stop`; `notifier` (systemd's, agent/sdnotify.py) hears READY=1 once the
    devices are attached, the status while serving and, with `watchdog_s`, watchdog pings.
    With `reload_from` (the config file, and an event SIGHUP sets) the browser devices are
    reloaded from that file (agent/reload.py). With `[metrics] enabled`, a port that cannot be
    listened on raises MetricsPortError before anything else is opened. `on_timeline` is told
    each timeline entry of each run, with its task's id (agent/timeline.py)."""
    metrics = DaemonMetrics()
    async with serve_metrics(config.metrics, metrics.registry, log):
        await _run(
            config, token, isolation, stop, notifier, watchdog_s, reload_from, metrics, on_timeline
        )


async def _run(
    config: AgentConfig,
    token: str,
    isolation: Isolation,
    stop: StopRequest,
    notifier: Notifier | None,
    watchdog_s: float | None,
    reload_from: tuple[Path, asyncio.Event] | None,
    metrics: DaemonMetrics,
    on_timeline: Callable[[str, TimelineEntry], None] | None,
) -> None:
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
            metrics=metrics,
            on_timeline=on_timeline,
        )
        _watch(metrics, outbox, link, sched)
        outbox.on_pressure_change = sched.pressure_changed
        browsers = BrowserReloader(sched, state, chromium, config.browser, log)
        for browser_slot in config.devices.browser:
            await browsers.add(browser_slot)
        log.info(
            "host %s starting with %d device(s); coordinator %s",
            config.agent.host_id,
            len(sched.slots),
            ", ".join(config.coordinator.urls),
        )
        delivery = asyncio.create_task(outbox.deliver(link.send_text, link.connected))
        serving = asyncio.create_task(link.run())
        reloads = []
        if reload_from is not None:
            reloads.append(asyncio.create_task(serve_reloads(*reload_from, browsers, stop)))
        try:
            notify = notifier or Notifier(None, log)
            # The watchdog is pinged through the stop too: a drain is long, not wedged.
            async with (
                attach_android(config.android, state, scheduler, log),
                notifying(notify, watchdog_s, link, sched, log),
            ):
                await _until_stopped(serving, stop)
                stopping(notify)
                await drain(sched, stop, config.agent.drain_timeout_s, log)
                await sched.stop()
                await _deliver_queued(outbox, link, stop, config.agent.stop_delivery_s)
        finally:
            # The link goes last: the coordinator heard every end it could before it closes.
            for task in (serving, delivery, *reloads):
                task.cancel()
            await asyncio.gather(serving, delivery, *reloads, return_exceptions=True)
    finally:
        if scheduler is not None:
            await scheduler.stop()
            for slot in scheduler.slots.values():
                await slot.device.stop()
        await chromium.stop()
        await outbox.close()
        await state.close()
        log.info("stopped")


def _watch(metrics: DaemonMetrics, outbox: Outbox, link: Link, scheduler: Scheduler) -> None:
    """What the metrics read at scrape time."""
    metrics.live.outbox = lambda: (outbox.items, outbox.bytes, outbox.oldest_age_s())
    metrics.live.link = lambda: (link.connected.is_set(), link.sessions)
    metrics.live.devices = lambda: [(s.device.kind, s.state()) for s in scheduler.slots.values()]

    def recovery() -> Counter[str]:
        steps: Counter[str] = Counter()
        for slot in scheduler.slots.values():
            steps.update(slot.device.recovery_steps())
        return steps

    metrics.live.recovery = recovery


async def _until_stopped(serving: asyncio.Task[None], stop: StopRequest) -> None:
    """Serve the link until a stop is requested; the link never ends unless it failed."""
    requested = asyncio.create_task(stop.requested.wait())
    try:
        await asyncio.wait({serving, requested}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        requested.cancel()
    if serving.done():
        serving.result()


async def _deliver_queued(outbox: Outbox, link: Link, stop: StopRequest, bound: float) -> None:
    """Wait, at most `bound` seconds, until the coordinator has acknowledged everything queued
    (the stopped tasks' ends last). A hurried stop (a later signal) waits only while the link
    is up: a coordinator that is there answers within milliseconds, one that is away is not
    waited for. What is left goes out at the next start."""
    if outbox.items:
        log.info("stopping: delivering %d queued item(s) (at most %g s)", outbox.items, bound)
    empty = asyncio.create_task(outbox.wait_empty())
    hurried = asyncio.create_task(stop.hurried.wait())
    try:
        async with asyncio.timeout(bound):
            await asyncio.wait({empty, hurried}, return_when=asyncio.FIRST_COMPLETED)
            if not empty.done() and link.connected.is_set():
                await empty
    except TimeoutError:
        pass
    finally:
        for task in (empty, hurried):
            task.cancel()
    if outbox.items:
        log.warning(
            "stopping with %d item(s) the coordinator has not acknowledged; "
            "the next start sends them",
            outbox.items,
        )
