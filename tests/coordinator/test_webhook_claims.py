"""Webhook deliveries claimed by replicas (coordinator/store_webhooks.py): two Database objects
on one database stand for two coordinators. Of two claims at once one wins; a claim lapses when
its time passes (a replica that died); an attempt whose claim was taken over records nothing.
On PostgreSQL (scripts/pgtest.sh) the two claim in concurrent transactions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from coordinator import schema as t
from coordinator.db import Database, now
from coordinator.db_location import postgresql_location, sqlite_location
from coordinator.store_cancel import cancel_tasks
from coordinator.store_jobs import create_job
from coordinator.store_tasks import NewTask, create_tasks
from coordinator.store_webhooks import Due, claim_due, record_attempt
from tests.pg import fresh_database

LEASE_S = 40.0


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    url = fresh_database()
    location = sqlite_location(tmp_path) if url is None else postgresql_location(url)
    one = await Database.open(location)
    two = await Database.open(location)
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


async def test_one_replica_at_a_time_attempts_a_delivery(
    replicas: tuple[Database, Database],
) -> None:
    one, two = replicas
    async with one.transaction() as conn:
        job = await create_job(
            conn,
            name="hooked",
            source="async def main(agent):\n    return {}\n",
            parameters={},
            timeout_s=60,
            automation_id=None,
            owner="tests",
            webhook_url="http://127.0.0.1:9/hook",
        )
        new = NewTask(input={}, pin_device_id=None, timeout_s=None)
        [task] = await create_tasks(conn, job, [new])
        await cancel_tasks(conn, t.tasks.c.id == task.id, reason="cancelled", error=None)

    async def claim(db: Database, moment: float) -> list[Due]:
        async with db.transaction() as conn:
            return await claim_due(conn, moment, LEASE_S, 10)

    start = now()
    first, second = await asyncio.gather(claim(one, start), claim(two, start))
    assert sorted([len(first), len(second)]) == [0, 1]
    [stale] = first or second
    assert json.loads(stale.body)["task_id"] == task.id and stale.attempts == 1
    assert await claim(one, start + LEASE_S / 2) == []  # still claimed

    # Its claimer died mid-attempt: once the claim's time has passed, another replica takes it.
    later = start + LEASE_S + 1
    [taken] = await claim(two, later)
    assert (taken.id, taken.attempts) == (stale.id, 2)

    async def record(due: Due) -> str | None:
        async with one.transaction() as conn:
            return await record_attempt(
                conn, due, moment=later, status=200, error=None, retry_at=later + 5
            )

    assert await record(stale) is None  # a claim taken over records nothing
    assert await record(taken) == "delivered"
    assert await claim(one, later + 2 * LEASE_S) == []
