"""What the daemon tells systemd: ready, what it is doing, and that its loops are alive.

`notifying` wraps the daemon's serving phase: READY=1 when entered (config read, state open,
devices attached), a STATUS= line kept current ("connected, 3/4 devices busy", "reconnecting in
8 s"), WATCHDOG=1 pings while the link's loop keeps its promises (agent/link.py
`alive_until`), also through the stop (a drain is long, not wedged); `stopping` says STOPPING=1
when a stop begins. Nothing is sent without `$NOTIFY_SOCKET`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from agent.link import Link
from agent.scheduler import Scheduler
from agent.sdnotify import Notifier, keep_alive


def describe(link: Link, scheduler: Scheduler) -> str:
    """The daemon's one-line status."""
    busy = sum(slot.task is not None for slot in scheduler.slots.values())
    devices = f"{busy}/{len(scheduler.slots)} devices busy"
    paused = scheduler.pause_reason
    if paused is not None:
        devices += f", paused: {paused}"
    if link.connected.is_set():
        return f"connected, {devices}"
    if link.retry_at is not None:
        wait = max(0.0, link.retry_at - time.monotonic())
        return f"reconnecting in {wait:.0f} s, {devices}"
    return f"connecting to the coordinator, {devices}"


def link_problem(link: Link) -> str | None:
    """Why the link's loop looks wedged (past the time it promised a next step), or None."""
    late = time.monotonic() - link.alive_until
    return f"the link's loop is {late:.0f} s past its promised next step" if late > 0 else None


@contextlib.asynccontextmanager
async def notifying(
    notifier: Notifier,
    watchdog_s: float | None,
    link: Link,
    scheduler: Scheduler,
    log: logging.Logger,
) -> AsyncIterator[None]:
    if not notifier.enabled:
        yield
        return
    notifier.send("READY=1", f"STATUS={describe(link, scheduler)}")
    pinger = asyncio.create_task(
        keep_alive(
            notifier, watchdog_s, lambda: link_problem(link), lambda: describe(link, scheduler), log
        )
    )
    try:
        yield
    finally:
        pinger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pinger


def stopping(notifier: Notifier) -> None:
    """A stop begins; the status line then says `paused: draining` until the daemon exits."""
    notifier.send("STOPPING=1", "STATUS=stopping: letting running tasks finish")
