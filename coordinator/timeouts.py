"""The clock's duties: active tasks past timeout_s + grace time out, host or no host; tasks
not started by their deadline expire; retries whose delay has ended are announced to dispatch.

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
from coordinator.store_tasks import overdue, past_deadline, retries_due
from coordinator.task_end import end_run

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0


async def expire_overdue(ctx: Context) -> int:
    """End every overdue task's run now (retried if its policy says so); tells a connected host
    to stop it. Returns how many."""
    async with ctx.db.transaction() as conn:
        expired = []
        for task in await overdue(conn, ctx.settings.grace_s):
            ended = await end_run(
                conn,
                task,
                ctx.dispatcher.announce,
                state="timeout",
                reason="timeout",
                error=f"no end reported within timeout_s ({task.timeout_s:g} s) + grace",
                finished_at=now(),
            )
            if ended.state is not None:
                expired.append(task)
    for task in expired:
        log.info("task %s timed out (%s on host %s)", task.id, task.state, task.host_id)
        if task.host_id is not None:
            stop_on_host(ctx, task.host_id, task.id, "timeout")
    if expired:
        ctx.dispatcher.wake()
    return len(expired)


async def end_past_deadlines(ctx: Context, moment: float) -> int:
    """Tasks not started by their deadline end `expired`. Returns how many."""
    async with ctx.db.transaction() as conn:
        ended = 0
        for task in await past_deadline(conn, moment):
            done = await end_run(
                conn,
                task,
                ctx.dispatcher.announce,
                state="expired",
                reason="deadline",
                error="not started by its deadline",
                finished_at=moment,
            )
            if done.state is not None:
                ended += 1
                log.info("task %s expired: not started by its deadline", task.id)
    return ended


async def wake_due_retries(ctx: Context, after: float, until: float) -> None:
    """Announce the retries whose delay ended in (`after`, `until`]."""
    async with ctx.db.transaction() as conn:
        due = await retries_due(conn, after, until)
    if due:
        ctx.dispatcher.announce()


async def run_timeout_loop(ctx: Context) -> None:
    """Check once a second until cancelled; a failed check is logged and retried."""
    checked_until = now()
    while True:
        await asyncio.sleep(CHECK_INTERVAL_S)
        herald = ctx.dispatcher.herald
        try:
            if herald is None or await herald.has_duty():
                moment = now()
                await expire_overdue(ctx)
                await end_past_deadlines(ctx, moment)
                await wake_due_retries(ctx, checked_until, moment)
                checked_until = moment
        except Exception:
            log.exception("timeout check failed")
