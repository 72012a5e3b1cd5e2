"""Stored tasks and every change of their state.

State changes are guarded in SQL (`WHERE state IN (...)`) so that a change decided from a stale
read cannot overwrite a newer one; each returns whether it happened.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from agent.protocol import TERMINAL_STATES
from coordinator import schema as t
from coordinator.db import new_id, now
from coordinator.db_conn import Conn, Hot, one_of
from coordinator.dialect import among, id_list_value, next_seqs
from coordinator.store_jobs import JobRow, browser_of, browser_text
from coordinator.store_webhooks import queue_finals
from drivers.browser.options import BrowserOptions

ACTIVE_STATES = ("assigned", "running")
OPEN_STATES = ("pending", "blocked", *ACTIVE_STATES)
"""Not final: a task in one of these may still end (cancelled, expired, skipped, ...)."""


@dataclass(frozen=True)
class TaskRow:
    id: str
    job_id: str
    script_sha256: str
    input: dict[str, Any]
    pin_device_id: str | None
    state: str
    host_id: str | None
    device_id: str | None
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    failure_reason: str | None
    error: str | None
    attempt: int
    timeout_s: float
    parent_task_id: str | None
    origin: str
    """`run` (work for a device) or `dump` (a record made by submit_task_to_another_job)."""
    depth: int
    """0 for a task made over the API (or a dump), its parent's + 1 for a sub-task."""
    automation_variables: dict[str, Any] | None
    checkpoint: dict[str, Any] | None
    created_at: float
    assigned_at: float | None
    started_at: float | None
    finished_at: float | None
    priority: int = 0
    deadline_at: float | None = None
    not_before: float | None = None
    """A retry is not given out before this moment."""
    max_attempts: int | None = None
    retry_delay_s: float | None = None
    retry_backoff: float | None = None
    retry_on: list[str] | None = None
    """The retry policy's overrides (None: the job's; coordinator/retry_policy.py)."""
    blocked_by: int = 0
    """How many of its dependencies have not succeeded yet."""
    has_dependents: bool = False
    script_version: int | None = None
    """The number of the job's script version it runs (`script_sha256`); None only for a task
    stored before versions were numbered whose script is no version of its job (migration
    0004 numbered the others)."""
    webhook_url: str | None = None
    webhook_events: list[str] | None = None
    """Overrides of the job's webhook (None: the job's)."""
    browser: BrowserOptions | None = None
    """Its browser settings, over the job's field by field (None: the job's)."""

    @property
    def is_final(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True)
class NewTask:
    input: dict[str, Any]
    pin_device_id: str | None
    timeout_s: float | None
    parent_task_id: str | None = None
    task_id: str | None = None
    """Given when the id must be known before the row exists (a planned task's job task)."""
    priority: int = 0
    deadline_at: float | None = None
    retry: dict[str, Any] = field(default_factory=dict)
    """Overrides of the job's retry policy, by column (max_attempts, retry_delay_s,
    retry_backoff, retry_on)."""
    depth: int = 0
    state: str = "pending"
    """`blocked` for a task with dependencies still to succeed, `skipped` for one whose
    dependency already failed (coordinator/store_dependencies.py)."""
    blocked_by: int = 0
    error: str | None = None
    version: tuple[int, str] | None = None
    """(number, script SHA-256) of the job's script version to run; None: its current one."""
    webhook_url: str | None = None
    webhook_events: Sequence[str] | None = None
    browser: BrowserOptions | None = None


def _json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def task_from_row(row: sa.Row[Any]) -> TaskRow:
    return TaskRow(
        id=row.id,
        job_id=row.job_id,
        script_sha256=row.script_sha256,
        input=json.loads(row.input),
        pin_device_id=row.pin_device_id,
        state=row.state,
        host_id=row.host_id,
        device_id=row.device_id,
        progress=_json_or_none(row.progress),
        result=_json_or_none(row.result),
        failure_reason=row.failure_reason,
        error=row.error,
        attempt=row.attempt,
        timeout_s=row.timeout_s,
        parent_task_id=row.parent_task_id,
        origin=row.origin,
        depth=row.depth,
        automation_variables=_json_or_none(row.automation_variables),
        checkpoint=_json_or_none(row.checkpoint),
        created_at=row.created_at,
        assigned_at=row.assigned_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        priority=-row.queue_rank,
        deadline_at=row.deadline_at,
        not_before=row.not_before,
        max_attempts=row.max_attempts,
        retry_delay_s=row.retry_delay_s,
        retry_backoff=row.retry_backoff,
        retry_on=_json_or_none(row.retry_on),
        blocked_by=row.blocked_by,
        has_dependents=bool(row.has_dependents),
        script_version=row.script_version,
        webhook_url=row.webhook_url,
        webhook_events=_json_or_none(row.webhook_events),
        browser=browser_of(row.browser),
    )


c = t.tasks.c


async def _fetch(conn: Conn, query: sa.Select[Any]) -> list[TaskRow]:
    return [task_from_row(r) for r in await conn.execute(query)]


async def create_tasks(conn: Conn, job: JobRow, specs: list[NewTask]) -> list[TaskRow]:
    """Create pending tasks that will run the job's current script version (or the one a spec
    names), FIFO in the order of `specs`."""
    if not specs:
        return []
    stamp = now()
    ids = [spec.task_id or new_id() for spec in specs]
    seqs = await next_seqs(conn, t.tasks, len(specs))
    await conn.execute(
        sa.insert(t.tasks),
        [
            {
                "id": task_id,
                "job_id": job.id,
                "script_sha256": job.script_sha256 if spec.version is None else spec.version[1],
                "script_version": job.version if spec.version is None else spec.version[0],
                "webhook_url": spec.webhook_url,
                "webhook_events": _json_text(
                    None if spec.webhook_events is None else list(spec.webhook_events)
                ),
                "browser": browser_text(spec.browser),
                "input": json.dumps(spec.input),
                "pin_device_id": spec.pin_device_id,
                "state": spec.state,
                "timeout_s": spec.timeout_s if spec.timeout_s is not None else job.timeout_s,
                "parent_task_id": spec.parent_task_id,
                "depth": spec.depth,
                "created_at": stamp,
                "seq": seq,
                "queue_rank": -spec.priority,
                "deadline_at": spec.deadline_at,
                "max_attempts": spec.retry.get("max_attempts"),
                "retry_delay_s": spec.retry.get("retry_delay_s"),
                "retry_backoff": spec.retry.get("retry_backoff"),
                "retry_on": _json_text(spec.retry.get("retry_on")),
                "blocked_by": spec.blocked_by,
                "error": spec.error,
                "failure_reason": "dependency_failed" if spec.state == "skipped" else None,
                "finished_at": stamp if spec.state == "skipped" else None,
            }
            for task_id, spec, seq in zip(ids, specs, seqs, strict=True)
        ],
    )
    # Created skipped (a dependency already failed): final at once, as if it had just ended.
    skipped = [i for i, spec in zip(ids, specs, strict=True) if spec.state == "skipped"]
    await queue_finals(conn, skipped)
    found = await get_tasks(conn, set(ids))
    return [found[task_id] for task_id in ids]


_TASK = Hot(sa.select(t.tasks).where(c.id == sa.bindparam("b_id")))


def _tasks_among(dialect: str) -> sa.Select[Any]:
    return sa.select(t.tasks).where(among(dialect, c.id, "ids"))


_TASKS_AMONG = Hot.by_dialect(_tasks_among)


async def get_task(conn: Conn, task_id: str) -> TaskRow | None:
    row = (await conn.execute(_TASK, {"b_id": task_id})).first()
    return None if row is None else task_from_row(row)


async def get_tasks(conn: Conn, task_ids: set[str]) -> dict[str, TaskRow]:
    """The tasks that exist among `task_ids`, by id, in one query."""
    if not task_ids:
        return {}
    ids = id_list_value(conn.dialect.name, sorted(task_ids))
    rows = await conn.execute(_TASKS_AMONG, {"ids": ids})
    return {row.id: task_from_row(row) for row in rows}


async def child_task_ids(conn: Conn, parent_task_id: str) -> list[str]:
    """The tasks made by the parent's script (sub-tasks, data dumps), oldest first."""
    found = await conn.scalars(
        sa.select(c.id).where(c.parent_task_id == parent_task_id).order_by(c.seq)
    )
    return [str(task_id) for task_id in found]


async def active_on_host(conn: Conn, host_id: str) -> list[TaskRow]:
    """Tasks the coordinator believes are assigned to or running on the host."""
    return await _fetch(
        conn, sa.select(t.tasks).where(c.host_id == host_id, c.state.in_(ACTIVE_STATES))
    )


async def _changed(conn: Conn, statement: sa.Update) -> bool:
    result = await conn.execute(statement)
    return result.rowcount > 0


async def back_to_pending(conn: Conn, task_id: str) -> bool:
    """An assigned task its host will not run goes back to the queue."""
    return await _changed(
        conn,
        sa.update(t.tasks)
        .where(c.id == task_id, c.state == "assigned")
        .values(state="pending", host_id=None, device_id=None, assigned_at=None),
    )


_RUNNING = Hot(
    sa.update(t.tasks)
    .where(
        c.id == sa.bindparam("b_id"),
        one_of(c.state, ACTIVE_STATES),
        c.host_id == sa.func.coalesce(sa.bindparam("b_host", type_=sa.Text), c.host_id),
    )
    .values(state="running", started_at=sa.func.coalesce(c.started_at, sa.bindparam("b_at")))
)


async def mark_running(
    conn: Conn, task_id: str, started_at: float, host_id: str | None = None
) -> bool:
    """Make an active task running; with `host_id`, only if it is that host's."""
    result = await conn.execute(_RUNNING, {"b_id": task_id, "b_at": started_at, "b_host": host_id})
    return result.rowcount > 0


@dataclass(frozen=True)
class MadeFinal:
    has_dependents: bool
    """Read by the same statement that made the task final, so a dependent added meanwhile
    (by another replica) is not missed."""


async def finish(
    conn: Conn,
    task_id: str,
    *,
    state: str,
    reason: str | None = None,
    error: str | None = None,
    result: dict[str, Any] | None = None,
    finished_at: float | None = None,
) -> MadeFinal | None:
    """Make an open task final (coordinator/task_end.py decides when); None if it already was.

    `reason` and `error` are a host's free text: a NUL in them, which PostgreSQL's text cannot
    hold, is stored as U+FFFD (on both backends, so that both store the same)."""
    changed = await conn.execute(
        _FINISH,
        {
            "b_id": task_id,
            "b_state": state,
            "b_reason": _storable(reason),
            "b_error": _storable(error),
            "b_result": None if result is None else json.dumps(result),
            "b_at": finished_at,
        },
    )
    row = changed.first()
    return None if row is None else MadeFinal(bool(row.has_dependents))


_FINISH = Hot(
    sa.update(t.tasks)
    .where(c.id == sa.bindparam("b_id"), one_of(c.state, OPEN_STATES))
    .values(
        state=sa.bindparam("b_state"),
        failure_reason=sa.bindparam("b_reason"),
        error=sa.bindparam("b_error"),
        # None keeps what is stored.
        result=sa.func.coalesce(sa.bindparam("b_result", type_=sa.Text), c.result),
        finished_at=sa.func.coalesce(sa.bindparam("b_at", type_=sa.Double), c.finished_at),
    )
    .returning(c.has_dependents)
)


def _storable(text: str | None) -> str | None:
    return None if text is None else text.replace("\x00", "\ufffd")


_FINISHED_AT = Hot(
    sa.update(t.tasks)
    .where(c.id == sa.bindparam("b_id"), c.finished_at.is_(None))
    .values(finished_at=sa.bindparam("b_at"))
)


async def record_finished_at(
    conn: Conn, task_id: str, finished_at: float, error: str | None = None
) -> None:
    """When the run of a task already final (by its final submission) ended, and the error
    its script raised after that submission, if any (the task keeps its state)."""
    await conn.execute(_FINISHED_AT, {"b_id": task_id, "b_at": finished_at})
    if error is not None:
        await conn.execute(
            sa.update(t.tasks)
            .where(c.id == task_id, c.error.is_(None))
            .values(error=_storable(error))
        )


async def set_progress(conn: Conn, updates: list[tuple[str, int, Any]]) -> None:
    """(task_id, seq, data): keep the data of each task's latest (highest seq) update."""
    if not updates:
        return
    await conn.execute(
        sa.update(t.tasks)
        .where(
            c.id == sa.bindparam("u_task"),
            sa.or_(c.progress_seq.is_(None), c.progress_seq <= sa.bindparam("u_seq")),
        )
        .values(progress=sa.bindparam("u_data"), progress_seq=sa.bindparam("u_seq")),
        [
            {"u_task": task_id, "u_seq": seq, "u_data": json.dumps(data)}
            for task_id, seq, data in updates
        ],
    )


async def overdue(conn: Conn, grace_s: float) -> list[TaskRow]:
    """Active tasks past their timeout plus grace, counted from start (or from assignment)."""
    stamp = now()
    return await _fetch(
        conn,
        sa.select(t.tasks).where(
            sa.or_(
                sa.and_(
                    c.state == "running",
                    sa.func.coalesce(c.started_at, c.assigned_at) + c.timeout_s + grace_s < stamp,
                ),
                sa.and_(c.state == "assigned", c.assigned_at + c.timeout_s + grace_s < stamp),
            )
        ),
    )


async def past_deadline(conn: Conn, moment: float) -> list[TaskRow]:
    """Tasks not started whose deadline is at or before `moment`."""
    return await _fetch(
        conn, sa.select(t.tasks).where(sa.text(t.DATED), c.deadline_at <= moment).order_by(c.seq)
    )


async def retries_due(conn: Conn, after: float, until: float) -> bool:
    """Whether a retry's delay ended in (`after`, `until`]: it may be given out now."""
    found = await conn.scalar(
        sa.select(c.id)
        .where(sa.text(t.DELAYED), c.not_before > after, c.not_before <= until)
        .limit(1)
    )
    return found is not None


async def create_dump_task(
    conn: Conn, job: JobRow, *, state: str, proof: dict[str, Any], key_task: str
) -> str:
    """A data-dump record on `job`: never dispatched; `state` is the status the script gave.

    `key_task` is the running task that wrote it (kept as its parent, for tracing).
    """
    task_id = new_id()
    stamp = now()
    [seq] = await next_seqs(conn, t.tasks, 1)
    await conn.execute(
        sa.insert(t.tasks).values(
            id=task_id,
            job_id=job.id,
            script_sha256=job.script_sha256,
            script_version=job.version,
            input="{}",
            state=state,
            result=json.dumps(proof),
            timeout_s=job.timeout_s,
            parent_task_id=key_task,
            origin="dump",
            created_at=stamp,
            finished_at=None if state == "pending" else stamp,
            seq=seq,
        )
    )
    return task_id


async def set_automation_variables(conn: Conn, task_id: str, variables: dict[str, Any]) -> None:
    """Replace the task's variables; `waiting: true` (exactly) makes it discoverable."""
    waiting = variables.get("waiting") is True
    await conn.execute(
        sa.update(t.tasks)
        .where(c.id == task_id)
        .values(
            automation_variables=json.dumps(variables),
            waiting=int(waiting),
            waiting_since=sa.func.coalesce(c.waiting_since, now()) if waiting else None,
        )
    )


async def take_waiting_task(conn: Conn, job_id: str, asking_task_id: str) -> TaskRow | None:
    """Hand one waiting task of the job to the asker, or None.

    Chosen: the task that has been waiting longest; only tasks still assigned or running count.
    It is taken by a conditional UPDATE that clears `waiting` (and sets its variables' `waiting`
    to false) only if the row still has the very variables it was read with: of two askers
    (even in two coordinators), one gets the task and the other tries the next one.
    """
    while True:
        candidate = (
            await conn.execute(
                sa.select(c.id, c.automation_variables)
                .where(
                    c.job_id == job_id,
                    c.id != asking_task_id,
                    c.waiting == 1,
                    c.state.in_(ACTIVE_STATES),
                )
                .order_by(c.waiting_since, c.seq)
                .limit(1)
            )
        ).first()
        if candidate is None:
            return None
        variables = json.loads(candidate.automation_variables)
        variables["waiting"] = False
        if await _changed(
            conn,
            sa.update(t.tasks)
            .where(
                c.id == candidate.id,
                c.waiting == 1,
                c.automation_variables == candidate.automation_variables,
            )
            .values(waiting=0, waiting_since=None, automation_variables=json.dumps(variables)),
        ):
            return await get_task(conn, candidate.id)


async def set_checkpoint(conn: Conn, task_id: str, checkpoint: dict[str, Any]) -> None:
    await conn.execute(
        sa.update(t.tasks).where(c.id == task_id).values(checkpoint=json.dumps(checkpoint))
    )


async def set_result(conn: Conn, task_id: str, result: dict[str, Any]) -> None:
    await conn.execute(sa.update(t.tasks).where(c.id == task_id).values(result=json.dumps(result)))


async def retry(
    conn: Conn,
    task: TaskRow,
    *,
    state: str,
    reason: str | None,
    error: str | None,
    finished_at: float,
    not_before: float,
) -> bool:
    """End the task's current run (attempt `task.attempt`, still active) as `state` and queue
    its next attempt, not to be given out before `not_before`; False if the run had already
    ended. The ended run is kept in `runs`; the task keeps its checkpoint, its pin and its
    place in the queue, and starts its next attempt with no progress, result or variables."""
    changed = await _changed(
        conn,
        sa.update(t.tasks)
        .where(c.id == task.id, c.attempt == task.attempt, c.state.in_(ACTIVE_STATES))
        .values(
            state="pending",
            attempt=c.attempt + 1,
            not_before=not_before,
            host_id=None,
            device_id=None,
            assigned_at=None,
            started_at=None,
            finished_at=None,
            progress=None,
            progress_seq=None,
            result=None,
            failure_reason=None,
            error=None,
            automation_variables=None,
            waiting=0,
            waiting_since=None,
        ),
    )
    if changed:
        await conn.execute(
            sa.insert(t.runs).values(
                task_id=task.id,
                attempt=task.attempt,
                state=state,
                failure_reason=reason,
                error=_storable(error),
                host_id=task.host_id,
                device_id=task.device_id,
                assigned_at=task.assigned_at,
                started_at=task.started_at,
                finished_at=finished_at,
            )
        )
    return changed
