"""Timeout enforcement: active tasks past timeout_s + grace become `timeout`, host or no host.

This is the only way, besides a reconnecting host's reconciliation, that a task a host may still
be running stops being that host's. With replicas on PostgreSQL, one at a time runs the check
(the duty lock of coordinator/herald.py); the host is told through whichever replica holds its
session (coordinator/replicas.py).
"""

from __future__ import annotations

import asyncio
import logging

from coordinator.context import Context
from coordinator.db import now
from coordinator.replicas import stop_on_host
from coordinator.store_tasks import finish, overdue

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0


async def expire_overdue(ctx: Context) -> int:
    """End every overdue task now; tells a connected host to stop it. Returns how many."""
    async with ctx.db.transaction() as conn:
        expired = []
        for task in await overdue(conn, ctx.settings.grace_s):
            if await finish(conn, task.id, state="timeout", reason="timeout", finished_at=now()):
                expired.append(task)
    for task in expired:
        log.info("task %s timed out (%s on host %s)", task.id, task.state, task.host_id)
        if task.host_id is not None:
            stop_on_host(ctx, task.host_id, task.id, "timeout")
    if expired:
        ctx.dispatcher.wake()
    return len(expired)


async def run_timeout_loop(ctx: Context) -> None:
    """Check once a second until cancelled; a failed check is logged and retried."""
    while True:
        await asyncio.sleep(CHECK_INTERVAL_S)
        herald = ctx.dispatcher.herald
        try:
            if herald is None or await herald.has_duty():
                await expire_overdue(ctx)
        except Exception:
            log.exception("timeout check failed")
