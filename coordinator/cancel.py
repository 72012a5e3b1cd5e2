"""Cancelling a task on request of an API user."""

from __future__ import annotations

import logging

from coordinator.context import Context
from coordinator.db import now
from coordinator.replicas import stop_on_host
from coordinator.store_tasks import TaskRow, get_task
from coordinator.task_end import end_run

log = logging.getLogger(__name__)


class CancelRefused(Exception):
    """The task is already final."""


async def cancel_task(ctx: Context, task_id: str) -> TaskRow | None:
    """Cancel a task; None if there is no such task.

    - pending or assigned: cancelled at once (an assigned task's host, if connected, is also
      sent `cancel` in case it already took it);
    - running on a host connected to this coordinator: the host is sent `cancel`; the task stays
      `running` until the host reports `finished` (normally with state `cancelled`);
    - running on a host that is not connected here: cancelled at once; the replica holding the
      host's session, if any (coordinator/replicas.py), sends it `cancel`. If the host comes back
      still holding it, reconciliation sends it `cancel` then.
    - already final: raises CancelRefused.
    """
    async with ctx.db.transaction() as conn:
        task = await get_task(conn, task_id)
        if task is None:
            return None
        if task.is_final:
            raise CancelRefused(f"task {task_id} is already {task.state}")
        session = ctx.sessions.get(task.host_id) if task.host_id else None
        if task.state != "running" or session is None:
            await end_run(
                conn,
                task,
                ctx.dispatcher.announce,
                state="cancelled",
                reason="cancelled",
                finished_at=now(),
            )
    if task.host_id is not None:
        stop_on_host(ctx, task.host_id, task_id, "cancelled by the API")
    log.info("task %s: cancel requested (was %s)", task_id, task.state)
    ctx.dispatcher.wake()
    async with ctx.db.transaction() as conn:
        return await get_task(conn, task_id)
