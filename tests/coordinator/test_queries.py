"""The dispatch queries walk their queue's index in FIFO order, on this session's backend.

The store's own functions run on a connection whose statements are recorded; each recorded
statement is then EXPLAINed with its parameters, on a history of a few thousand tasks whose
statistics PostgreSQL has gathered (its plans depend on them).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from coordinator.db import Database
from coordinator.db_conn import AsyncConn, Conn, Hot, Params, Result
from coordinator.db_location import Location, postgresql_location, sqlite_location
from coordinator.store_jobs import create_job
from coordinator.store_planned import add_planned, oldest_planned_for
from coordinator.store_queue import busy_among, queue_heads
from coordinator.store_tasks import NewTask, create_tasks
from tests.pg import fresh_database


@pytest.fixture
async def target(tmp_path: Path) -> Location:
    """A database at head on this session's backend with a farm's history: thousands of tasks
    and planned tasks, all but a short queue of each done."""
    url = fresh_database()
    location = sqlite_location(tmp_path) if url is None else postgresql_location(url)
    db = await Database.open(location)
    try:
        async with db.transaction() as conn:
            job = await create_job(
                conn,
                name="queue",
                source="async def main(agent):\n    return {}\n",
                parameters={},
                timeout_s=60,
                automation_id=None,
                owner="tests",
            )
            pins = [None, "d1", "d2", "d3", "d4"] * 1000
            made = await create_tasks(conn, job, [NewTask({}, pin, None) for pin in pins])
            await add_planned(conn, job, made[0].id, [{}] * 1000, None)
            # One statement each rather than thousands of the store's own changes.
            await conn.execute(sa.text("UPDATE tasks SET state = 'success' WHERE seq <= 4950"))
            await conn.execute(
                sa.text("UPDATE planned_tasks SET job_task_id = 'done' WHERE seq <= 990")
            )
    finally:
        await db.close()
    if url is not None:
        engine = create_async_engine(location.url)
        try:
            async with engine.begin() as conn:
                await conn.exec_driver_sql("ANALYZE")
        finally:
            await engine.dispose()
    return location


class _Recorded(AsyncConn):
    """Runs Hot statements through SQLAlchemy too (not on the driver), so that its
    `before_cursor_execute` event sees every statement."""

    async def execute(
        self, statement: sa.Executable | Hot, parameters: Params | None = None
    ) -> Result:
        if isinstance(statement, Hot):
            statement = statement.statement(self.dialect)
        return await super().execute(statement, parameters)


async def _plans(location: Location, run: Any) -> list[str]:
    """The plan of every SELECT `run(conn)` makes, one text per statement."""
    engine = create_async_engine(location.url)
    statements: list[tuple[str, Any]] = []

    @sa.event.listens_for(engine.sync_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    try:
        async with engine.begin() as conn:
            await run(_Recorded(conn))
            recorded = list(statements)
            postgresql = location.sqlite_file is None
            plans = []
            for statement, parameters in recorded:
                explain = "EXPLAIN " if postgresql else "EXPLAIN QUERY PLAN "
                rows = await conn.exec_driver_sql(explain + statement, parameters)
                plans.append("\n".join(" ".join(map(str, row)) for row in rows))
            return plans
    finally:
        await engine.dispose()


def _walks(plan: str, location: Location, *indexes: str) -> bool:
    """Whether the plan reads the queue through one of `indexes`, in its order (no sort of its
    own). (SQLite keeps an index's order past `IS NULL`, so it may take the composite one.)"""
    if location.sqlite_file is not None:
        used = any(f"USING INDEX {index} " in plan for index in indexes)
        return used and "TEMP B-TREE FOR ORDER BY" not in plan
    return any(f"Index Scan using {index} " in plan for index in indexes) and "Sort" not in plan


async def test_a_dispatch_pass_reads_the_queue_heads_through_indexes(target: Location) -> None:
    async def run(conn: Conn) -> None:
        assert await busy_among(conn, ["d1", "d2", "nobody"]) == set()
        heads = await queue_heads(conn, ["d1", "d2", "nobody"])
        pins = [task.pin_device_id for task in heads]
        # The queue left is ..., None, d1, d2, d3, d4 repeated: the 3 oldest unpinned, and the
        # oldest pinned to each offered device.
        assert pins.count(None) == 3 and sorted(p for p in pins if p) == ["d1", "d2"], pins

    busy, heads = await _plans(target, run)
    assert _reads_no_history(busy, target), busy
    assert _reads_no_history(heads, target), heads
    assert "tasks_queue" in heads, heads
    if target.sqlite_file is None:
        assert "Index Scan using tasks_unpinned" in heads, heads


def _reads_no_history(plan: str, location: Location) -> bool:
    """Whether the plan reads tasks only through indexes (never every stored task)."""
    if location.sqlite_file is not None:
        return re.search(r"\bSCAN (tasks|pinned)\b", plan) is None
    return "Seq Scan on tasks" not in plan


async def test_the_oldest_planned_task_for_a_device_is_two_index_walks(target: Location) -> None:
    async def run(conn: Conn) -> None:
        assert await oldest_planned_for(conn, "d1") is not None

    unpinned, pinned = await _plans(target, run)
    assert _walks(unpinned, target, "planned_open_unpinned", "planned_open"), unpinned
    assert _walks(pinned, target, "planned_open"), pinned
