"""The first phase of a stop: take no new task, tell the coordinator, let running tasks finish.

buildkite's model: a stop first stops the host taking work (empty credits, and at once a
heartbeat saying `accepting: false`, `pause_reason: "draining"`), then gives the tasks that run
up to `agent.drain_timeout_s` to end by themselves. A later signal (`StopRequest.hurried`) ends
the wait at once. Whatever still runs afterwards is ended by `Scheduler.stop` (agent_stopped).
"""

from __future__ import annotations

import asyncio
import logging

from agent.scheduler import Scheduler
from agent.stopping import StopRequest


async def drain(
    scheduler: Scheduler, stop: StopRequest, timeout_s: float, log: logging.Logger
) -> None:
    """Return once no task runs, `timeout_s` has passed, or the stop was hurried."""
    await scheduler.begin_drain()
    busy = scheduler.busy_count()
    if busy == 0 or stop.hurried.is_set():
        return
    log.info("draining: %d running task(s) may finish within %g s", busy, timeout_s)
    idle = asyncio.create_task(scheduler.wait_idle())
    hurried = asyncio.create_task(stop.hurried.wait())
    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.wait({idle, hurried}, return_when=asyncio.FIRST_COMPLETED)
    except TimeoutError:
        log.warning(
            "draining: %d task(s) still running after %g s (agent.drain_timeout_s)",
            scheduler.busy_count(),
            timeout_s,
        )
    finally:
        for task in (idle, hurried):
            task.cancel()
    if idle.done() and not idle.cancelled():
        log.info("draining: every task finished")
