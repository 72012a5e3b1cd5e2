"""Deleting a job removes every row stored of it, on this session's backend, including the rows
no API call of this coordinator makes yet (runs, task dependencies): each has a foreign key to
the tasks, which the deletion must not trip over."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from coordinator import schema as t
from coordinator.db import Database, now
from coordinator.db_location import postgresql_location, sqlite_location
from coordinator.store_files import add_file
from coordinator.store_job_delete import JobBusy, delete_job
from coordinator.store_jobs import create_job, set_share
from coordinator.store_planned import add_planned
from coordinator.store_tasks import NewTask, create_dump_task, create_tasks
from tests.pg import fresh_database


async def test_a_job_is_deleted_with_every_row_naming_it_or_its_tasks(tmp_path: Path) -> None:
    url = fresh_database()
    db = await Database.open(sqlite_location(tmp_path) if url is None else postgresql_location(url))
    try:
        async with db.transaction() as conn:
            jobs = [
                await create_job(
                    conn,
                    name=name,
                    source="x = 1\n",
                    parameters={},
                    timeout_s=60,
                    automation_id="auto",
                    owner="o",
                )
                for name in ("doomed", "kept")
            ]
            doomed, kept = jobs
            a, b = await create_tasks(conn, doomed, [NewTask({}, None, None)] * 2)
            [k] = await create_tasks(conn, kept, [NewTask({}, None, None)])
            await add_planned(conn, doomed, a.id, [{}], None)
            await set_share(conn, doomed.id, "bob", "shared_view")
            dumped = await create_dump_task(conn, doomed, state="pending", proof={}, key_task=k.id)
            await conn.execute(
                sa.insert(t.dumps).values(
                    key="d1", task_id=k.id, job_id=doomed.id, job_task_id=dumped, created_at=now()
                )
            )
            await conn.execute(sa.insert(t.runs).values(task_id=a.id, attempt=1, state="failed"))
            await conn.execute(
                sa.insert(t.task_dependencies),
                [{"task_id": b.id, "depends_on": a.id}, {"task_id": k.id, "depends_on": b.id}],
            )
            await conn.execute(
                sa.insert(t.submissions).values(
                    key="s1",
                    task_id=a.id,
                    seq=0,
                    status="running",
                    data="{}",
                    finish=0,
                    created_at=now(),
                )
            )
            await add_file(
                conn, task_id=a.id, name="f", extension="", size=1, sha256="0" * 64, path="00/x"
            )
            await conn.execute(
                sa.update(t.tasks).where(t.tasks.c.id == b.id).values(state="running")
            )

        with pytest.raises(JobBusy) as busy:
            async with db.transaction() as conn:
                await delete_job(conn, doomed.id)
        assert busy.value.count == 1
        async with db.transaction() as conn:
            await conn.execute(
                sa.update(t.tasks).where(t.tasks.c.id == b.id).values(state="success")
            )
            deleted = await delete_job(conn, doomed.id)
            assert deleted is not None
            assert (deleted.tasks, deleted.planned, deleted.files) == (3, 1, 1)
            assert deleted.file_paths == {"00/x"}
            assert await delete_job(conn, doomed.id) is None

        async with db.transaction() as conn:
            left = {
                table.name: await conn.scalar(sa.select(sa.func.count()).select_from(table))
                for table in (
                    t.tasks,
                    t.planned_tasks,
                    t.job_shares,
                    t.job_versions,
                    t.jobs,
                    t.dumps,
                    t.runs,
                    t.task_dependencies,
                    t.submissions,
                    t.files,
                )
            }
        # What is left is the other job's: its task, its version, itself.
        assert left == {
            "tasks": 1,
            "planned_tasks": 0,
            "job_shares": 0,
            "job_versions": 1,
            "jobs": 1,
            "dumps": 0,
            "runs": 0,
            "task_dependencies": 0,
            "submissions": 0,
            "files": 0,
        }
    finally:
        await db.close()
