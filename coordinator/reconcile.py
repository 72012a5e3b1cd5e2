"""Reconciliation: when a host connects, align its tasks with what its `hello` says it runs.

docs/protocol.md, step 3: a task the host holds stays (running); one assigned to it that it
does not hold goes back to pending; one it was running and no longer holds failed
(`agent_lost`). A task it holds that is not its own, or that ended here (cancelled, timeout)
while it was away, is cancelled on the host.
"""

from __future__ import annotations

import logging

from agent.protocol import Cancel, Hello
from coordinator.context import Context
from coordinator.db import now
from coordinator.sessions import HostSession
from coordinator.store_devices import replace_host_devices
from coordinator.store_hosts import touch_host
from coordinator.store_tasks import active_on_host, back_to_pending, get_tasks, mark_running
from coordinator.task_end import end_run

log = logging.getLogger(__name__)


async def reconcile(ctx: Context, session: HostSession, hello: Hello) -> None:
    held = set(hello.running_tasks)
    to_cancel: list[tuple[str, str]] = []
    async with ctx.db.transaction() as conn:
        await replace_host_devices(conn, session.host_id, hello.devices)
        await touch_host(conn, session.host_id)
        for task in await active_on_host(conn, session.host_id):
            if task.id in held:
                await mark_running(conn, task.id, now())
            elif task.state == "assigned":
                await back_to_pending(conn, task.id)
                log.info("task %s back to pending: host %s does not hold it", task.id, task.host_id)
            else:
                ended = await end_run(
                    conn,
                    task,
                    ctx.dispatcher.announce,
                    state="failed",
                    reason="agent_lost",
                    error="its host came back without it",
                    finished_at=now(),
                )
                log.info(
                    "task %s %s (agent_lost): host %s lost it",
                    task.id,
                    "retried" if ended.state == "pending" else "failed",
                    task.host_id,
                )
        known = await get_tasks(conn, held)
    for task_id in held:
        mine = known.get(task_id)
        if mine is None or mine.host_id != session.host_id:
            to_cancel.append((task_id, "not a task of this host"))
        elif mine.state in ("cancelled", "timeout"):
            to_cancel.append((task_id, f"task is {mine.state} at the coordinator"))
    session.set_devices(hello.devices)
    for task_id, reason in to_cancel:
        session.send(Cancel(task_id=task_id, reason=reason))
    ctx.dispatcher.announce()
