"""How a task's run ends: retried under its policy, or final, and what a final end does to the
tasks that depend on it.

Every path that ends a run goes through `end_run`: a host's `finished` frame, a final
submission, a timeout, a host that came back without its task, a cancel, a deadline, a task
too large to send. A `success` whose data does not match the job's output schema is a failure
(`output_invalid`). Only a failure whose reason the task's policy retries (coordinator/
retry_policy.py), with attempts left, goes back to the queue; everything else is final.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from coordinator import schema as t
from coordinator.db_conn import Conn, Hot
from coordinator.output_schema import OUTPUT_INVALID, mismatch
from coordinator.retry_policy import RetryPolicy, job_policy, with_overrides
from coordinator.store_dependencies import dependency_ended
from coordinator.store_jobs import JobOutcome
from coordinator.store_tasks import TaskRow, finish, retry
from coordinator.store_webhooks import queue_finals


@dataclass(frozen=True)
class Ended:
    state: str | None
    """The task's state now: `pending` when retried, else the final state; None when the run
    had already ended (nothing changed)."""
    unblocked: list[str] = field(default_factory=list)
    """Tasks that waited for this one and are pending now."""


async def job_retry_policy(conn: Conn, job_id: str) -> RetryPolicy:
    j = t.jobs.c
    row = (
        await conn.execute(
            sa.select(j.max_attempts, j.retry_delay_s, j.retry_backoff, j.retry_on).where(
                j.id == job_id
            )
        )
    ).first()
    return job_policy(row)


_OUTCOME = Hot(
    sa.select(t.jobs.c.output_schema, t.jobs.c.webhook_url).where(
        t.jobs.c.id == sa.bindparam("b_job")
    )
)
"""The task's job's JobOutcome (most jobs have neither: one lookup by key, then nothing)."""


async def end_run(
    conn: Conn,
    task: TaskRow,
    announce: Callable[[], None],
    *,
    state: str,
    finished_at: float,
    reason: str | None = None,
    error: str | None = None,
    result: dict[str, Any] | None = None,
    job: JobOutcome | None = None,
) -> Ended:
    """End `task`'s current run as `state`: retried if its policy says so, else final.
    `announce` (the dispatcher's) is called after commit when tasks became pending at once:
    dependents it unblocked, or a retry with no delay (a later retry is woken when its delay
    ends, coordinator/timeouts.py). `job`: the task's job's outcome columns, when the caller
    read them with the task (else they are read here)."""
    if job is None:
        row = (await conn.execute(_OUTCOME, {"b_job": task.job_id})).first()
        job = JobOutcome(row.output_schema, row.webhook_url)
    if state == "success" and job.output_schema is not None:
        # The data the task is left with: a `finished` without data keeps the stored result.
        problem = mismatch(job.output_schema, result if result is not None else task.result)
        if problem is not None:
            state, reason, error = "failed", OUTPUT_INVALID, problem
    if state in ("failed", "timeout") and reason is not None:
        policy = with_overrides(await job_retry_policy(conn, task.job_id), task)
        if policy.retries(task.attempt, state, reason):
            not_before = finished_at + policy.delay_s(task.attempt)
            if task.deadline_at is None or not_before < task.deadline_at:
                retried = await retry(
                    conn,
                    task,
                    state=state,
                    reason=reason,
                    error=error,
                    finished_at=finished_at,
                    not_before=not_before,
                )
                if retried and not_before <= finished_at:
                    conn.after_commit(announce)
                return Ended("pending" if retried else None)
    ended = await finish(
        conn,
        task.id,
        state=state,
        reason=reason,
        error=error,
        result=result,
        finished_at=finished_at,
    )
    if ended is None:
        return Ended(None)
    if job.webhook_url is not None or task.webhook_url is not None:
        await queue_finals(conn, [task.id])
    unblocked = await dependency_ended(conn, task.id, state) if ended.has_dependents else []
    if unblocked:
        conn.after_commit(announce)
    return Ended(state, unblocked)
