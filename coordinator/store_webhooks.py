"""Stored webhook deliveries (docs/webhooks.md): written in the transaction that makes a task's
event, so none is lost or made for an event that was rolled back, and claimed, attempted and
recorded by coordinator/webhooks.py.

A task's webhook is its own `webhook_url`/`webhook_events` where it has them, else its job's.
A delivery's body is fixed when it is written: retries and re-sends send the same bytes, with
the same delivery id, so a receiver can drop a repeat.

Claiming is a conditional UPDATE (`attempts` unchanged and still due): of replicas on one
PostgreSQL database that read the same due row, one moves its `due_at` past the attempt's end
and the others change nothing, so a delivery is attempted by one replica at a time. A replica
that dies mid-attempt leaves the row due again when that time passes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa

from agent.protocol import TERMINAL_STATES
from coordinator import schema as t
from coordinator.db import new_id, now
from coordinator.db_conn import Conn, Hot
from coordinator.dialect import among, id_list_value

FINAL_EVENTS = tuple(sorted(TERMINAL_STATES))
"""A task's final states: the events a webhook gets unless it names others."""
PROGRESS = "progress"
WebhookEvent = Literal[
    "success", "failed", "declined", "timeout", "cancelled", "expired", "skipped", "progress"
]
GIVE_UP_S = 24 * 3600.0
"""A delivery not answered 2xx within this long of being written (or re-sent) is given up."""

DeliveryState = Literal["pending", "delivered", "failed"]

w = t.webhook_deliveries.c
c = t.tasks.c
j = t.jobs.c


def _hooked(dialect: str) -> sa.Select[Any]:
    """The tasks among `ids` that have a webhook, with what an event of theirs needs."""
    return (
        sa.select(
            c.id,
            c.job_id,
            c.state,
            c.failure_reason,
            c.error,
            c.result,
            c.attempt,
            c.finished_at,
            sa.func.coalesce(c.webhook_url, j.webhook_url).label("url"),
            sa.func.coalesce(c.webhook_events, j.webhook_events).label("events"),
        )
        .join(t.jobs, j.id == c.job_id)
        .where(
            among(dialect, c.id, "ids"),
            sa.func.coalesce(c.webhook_url, j.webhook_url).is_not(None),
        )
    )


_HOOKED = Hot.by_dialect(_hooked)


def _wants(events_text: str | None, event: str) -> bool:
    events = FINAL_EVENTS if events_text is None else json.loads(events_text)
    return event in events


def _time(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat()


def _row(task: Any, event: str, data: Any, stamp: float, extra: dict[str, Any]) -> dict[str, Any]:
    delivery_id = new_id()
    body = {
        "event": f"task.{event}",
        "delivery_id": delivery_id,
        "task_id": task.id,
        "job_id": task.job_id,
        "state": task.state,
        "reason": task.failure_reason,
        "error": task.error,
        "attempt": task.attempt,
        "data": data,
        "time": _time(stamp),
        **extra,
    }
    return {
        "id": delivery_id,
        "job_id": task.job_id,
        "task_id": task.id,
        "event": event,
        "url": task.url,
        "body": json.dumps(body, separators=(",", ":")),
        "state": "pending",
        "attempts": 0,
        "due_at": stamp,
        "give_up_at": stamp + GIVE_UP_S,
        "created_at": stamp,
    }


async def _hooked_tasks(conn: Conn, task_ids: list[str]) -> list[Any]:
    if not task_ids:
        return []
    ids = id_list_value(conn.dialect.name, sorted(set(task_ids)))
    return list(await conn.execute(_HOOKED, {"ids": ids}))


async def queue_finals(conn: Conn, task_ids: list[str]) -> int:
    """Write a delivery of the final state of each of `task_ids` (just made final in this
    transaction) whose webhook wants it. Returns how many."""
    stamp = now()
    rows = [
        _row(task, task.state, _json(task.result), task.finished_at or stamp, {})
        for task in await _hooked_tasks(conn, task_ids)
        if task.state in TERMINAL_STATES and _wants(task.events, task.state)
    ]
    if rows:
        await conn.execute(sa.insert(t.webhook_deliveries), rows)
    return len(rows)


async def queue_progress(conn: Conn, updates: list[tuple[str, int, Any]]) -> int:
    """Write a delivery of each progress update (task_id, seq, data) whose task's webhook
    wants `progress`. Returns how many."""
    if not updates:
        return 0
    stamp = now()
    tasks = {
        task.id: task
        for task in await _hooked_tasks(conn, [task_id for task_id, _, _ in updates])
        if _wants(task.events, PROGRESS)
    }
    rows = [
        _row(tasks[task_id], PROGRESS, data, stamp, {"seq": seq})
        for task_id, seq, data in updates
        if task_id in tasks
    ]
    if rows:
        await conn.execute(sa.insert(t.webhook_deliveries), rows)
    return len(rows)


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class Due:
    """A claimed delivery: to attempt now (attempt number `attempts`)."""

    id: str
    url: str
    body: str
    secret: str
    attempts: int


async def claim_due(conn: Conn, moment: float, lease_s: float, limit: int) -> list[Due]:
    """Claim up to `limit` deliveries due at `moment`, oldest due first: each is this
    replica's for `lease_s` (its attempt must end by then)."""
    candidates = await conn.execute(
        sa.select(w.id, w.url, w.body, w.attempts, j.webhook_secret)
        .join(t.jobs, j.id == w.job_id)
        .where(sa.text(t.DELIVERY_DUE), w.due_at <= moment)
        .order_by(w.due_at)
        .limit(limit)
    )
    claimed = []
    for row in list(candidates):
        taken = await conn.execute(
            sa.update(t.webhook_deliveries)
            .where(
                w.id == row.id,
                w.state == "pending",
                w.attempts == row.attempts,
                w.due_at <= moment,
            )
            .values(attempts=row.attempts + 1, due_at=moment + lease_s)
        )
        if taken.rowcount:
            claimed.append(Due(row.id, row.url, row.body, row.webhook_secret, row.attempts + 1))
    return claimed


async def record_attempt(
    conn: Conn,
    due: Due,
    *,
    moment: float,
    status: int | None,
    error: str | None,
    retry_at: float,
) -> DeliveryState | None:
    """Record the attempt's outcome: delivered (no error), or pending again at `retry_at`, or
    failed if that is past its give-up time. None if the row changed meanwhile (re-sent or
    its job deleted): this attempt's outcome is stale then."""
    values: dict[str, Any]
    if error is None:
        values = {"state": "delivered", "due_at": None, "delivered_at": moment}
    else:
        give_up = w.give_up_at <= retry_at
        values = {
            "state": sa.case((give_up, "failed"), else_="pending"),
            "due_at": sa.case((give_up, sa.null()), else_=retry_at),
        }
    row = (
        await conn.execute(
            sa.update(t.webhook_deliveries)
            .where(w.id == due.id, w.state == "pending", w.attempts == due.attempts)
            .values(**values, last_status=status, last_error=error, last_attempt_at=moment)
            .returning(w.state)
        )
    ).first()
    return None if row is None else row.state


@dataclass(frozen=True)
class DeliveryRow:
    id: str
    job_id: str
    task_id: str
    event: str
    url: str
    state: DeliveryState
    attempts: int
    due_at: float | None
    last_status: int | None
    last_error: str | None
    last_attempt_at: float | None
    delivered_at: float | None
    created_at: float
    body: dict[str, Any]


def _delivery(row: Any) -> DeliveryRow:
    return DeliveryRow(
        id=row.id,
        job_id=row.job_id,
        task_id=row.task_id,
        event=row.event,
        url=row.url,
        state=row.state,
        attempts=row.attempts,
        due_at=row.due_at,
        last_status=row.last_status,
        last_error=row.last_error,
        last_attempt_at=row.last_attempt_at,
        delivered_at=row.delivered_at,
        created_at=row.created_at,
        body=json.loads(row.body),
    )


async def deliveries_of_job(
    conn: Conn, job_id: str, *, task_id: str | None, limit: int
) -> list[DeliveryRow]:
    """The job's deliveries (of one task, if given), newest first."""
    query = sa.select(t.webhook_deliveries).where(w.job_id == job_id)
    if task_id is not None:
        query = query.where(w.task_id == task_id)
    rows = await conn.execute(query.order_by(w.created_at.desc(), w.id).limit(limit))
    return [_delivery(row) for row in rows]


async def get_delivery(conn: Conn, delivery_id: str) -> DeliveryRow | None:
    row = (await conn.execute(sa.select(t.webhook_deliveries).where(w.id == delivery_id))).first()
    return None if row is None else _delivery(row)


async def resend(conn: Conn, delivery_id: str) -> DeliveryRow | None:
    """Make the delivery pending and due now, with its attempts counted afresh and a new
    give-up time (an attempt in flight then records nothing); None if there is none."""
    stamp = now()
    await conn.execute(
        sa.update(t.webhook_deliveries)
        .where(w.id == delivery_id)
        .values(
            state="pending",
            attempts=0,
            due_at=stamp,
            give_up_at=stamp + GIVE_UP_S,
            delivered_at=None,
        )
    )
    return await get_delivery(conn, delivery_id)


async def delete_of_job(conn: Conn, job_id: str) -> None:
    """Delete the job's deliveries, sent or not (the job is being deleted)."""
    await conn.execute(sa.delete(t.webhook_deliveries).where(w.job_id == job_id))
