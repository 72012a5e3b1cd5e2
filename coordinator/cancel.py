"""Cancelling on request of an API user: one task (with the sub-tasks it added, unless asked not
to) or every task of a job.

A cancelled task is final at once, in whatever state it was (coordinator/store_cancel.py): from
then on its script's requests are refused, so a cancelled task cannot add more sub-tasks, and
nothing of it is dispatched again. A host that was given one is sent `cancel`, through whichever
replica holds its session (coordinator/replicas.py); its `finished`, when it comes, only records
when the script ended. If the host is away, reconciliation sends `cancel` when it comes back
still holding the task.

Failure reasons (docs/states.md): `cancelled` for the task asked for, `parent_cancelled` for its
sub-tasks, `job_cancelled` for the tasks of a cancelled job.
"""

from __future__ import annotations

import logging

from coordinator import schema as t
from coordinator.context import Context
from coordinator.replicas import stop_on_host
from coordinator.store_cancel import (
    Cancelled,
    Held,
    cancel_job_tasks,
    cancel_sub_tasks,
    cancel_tasks,
)
from coordinator.store_jobs import job_ids_for, lock_job
from coordinator.store_tasks import TaskRow, get_task

log = logging.getLogger(__name__)

STOP_REASON = "cancelled by the API"
"""The `reason` of the `cancel` frames sent for an API cancel."""


class CancelRefused(Exception):
    """The task is already final."""


async def cancel_task(
    ctx: Context, task_id: str, caller: str, *, sub_tasks: bool
) -> tuple[TaskRow, int] | None:
    """Cancel a task and, with `sub_tasks`, its sub-tasks and theirs (planned ones included) in
    the jobs `caller` may edit. Returns the task as it is now and how many sub-tasks were
    cancelled; None if there is no such task; CancelRefused if it is already final."""
    async with ctx.db.transaction() as conn:
        task = await get_task(conn, task_id)
        if task is None:
            return None
        # Adding sub-tasks to this job waits for the lock, then finds its parent cancelled.
        await lock_job(conn, task.job_id)
        task = await get_task(conn, task_id)
        if task is None:
            return None  # deleted with its job meanwhile
        if task.is_final:
            raise CancelRefused(f"task {task_id} is already {task.state}")
        spread = Cancelled(0, [], 0)
        if sub_tasks:
            spread = await cancel_sub_tasks(
                conn,
                task_id,
                job_ids_for(caller, ("shared_edit",)),
                reason="parent_cancelled",
                error=f"cancelled with task {task_id}",
            )
        _, held = await cancel_tasks(conn, t.tasks.c.id == task_id, reason="cancelled", error=None)
        task = await get_task(conn, task_id)
        assert task is not None
    _stop(ctx, [*held, *spread.held])
    log.info(
        "task %s cancelled, with %d sub-task(s) and %d planned one(s)",
        task_id,
        spread.tasks,
        spread.planned,
    )
    return task, spread.tasks + spread.planned


async def cancel_job(ctx: Context, job_id: str, reason: str | None) -> Cancelled | None:
    """Cancel every task of the job not final yet and its open planned tasks; `reason` becomes
    their `error`. None if there is no such job."""
    async with ctx.db.transaction() as conn:
        if not await lock_job(conn, job_id):
            return None
        cancelled = await cancel_job_tasks(conn, job_id, reason="job_cancelled", error=reason)
    _stop(ctx, cancelled.held)
    log.info(
        "job %s cancelled: %d task(s), %d of them held by hosts, and %d planned one(s)",
        job_id,
        cancelled.tasks,
        len(cancelled.held),
        cancelled.planned,
    )
    return cancelled


def _stop(ctx: Context, held: list[Held]) -> None:
    for task in held:
        stop_on_host(ctx, task.host_id, task.task_id, STOP_REASON)
    if held:
        # Their devices may be offered again once their hosts have stopped them.
        ctx.dispatcher.wake()
