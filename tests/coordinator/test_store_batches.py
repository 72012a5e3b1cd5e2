"""The store's batched steps, on this session's backend: a dispatch pass's assignments
(each task to its own host and device, a task taken meanwhile left out) and the reads a final
submit and a `finished` frame are judged on (stored keys, unknown tasks, their jobs' columns).
"""

from __future__ import annotations

from pathlib import Path

from agent.protocol import Submit
from coordinator.db import Database
from coordinator.db_location import postgresql_location, sqlite_location
from coordinator.store_jobs import JobOutcome, create_job
from coordinator.store_queue import mark_all_assigned
from coordinator.store_submissions import store, submit_view, task_and_key
from coordinator.store_tasks import NewTask, create_tasks, get_tasks
from tests.pg import fresh_database


async def test_batched_assignments_and_the_reads_of_a_run(tmp_path: Path) -> None:
    url = fresh_database()
    db = await Database.open(sqlite_location(tmp_path) if url is None else postgresql_location(url))
    try:
        async with db.transaction() as conn:
            job = await create_job(
                conn,
                name="batches",
                source="async def main(agent):\n    return {}\n",
                parameters={},
                timeout_s=60,
                automation_id=None,
                owner="tests",
            )
            one, two, three = (
                t.id for t in await create_tasks(conn, job, [NewTask({}, None, None)] * 3)
            )

            assert await mark_all_assigned(conn, []) == set()
            assert await mark_all_assigned(conn, [(one, "h1", "d1"), (two, "h2", "d2")]) == {
                one,
                two,
            }
            # `two` is taken already (as by another replica): only `three` is assigned.
            assert await mark_all_assigned(conn, [(two, "h9", "d9"), (three, "h3", "d3")]) == {
                three
            }
            tasks = await get_tasks(conn, {one, two, three})
            assert [
                (tasks[i].state, tasks[i].host_id, tasks[i].device_id) for i in (one, two, three)
            ] == [
                ("assigned", "h1", "d1"),
                ("assigned", "h2", "d2"),
                ("assigned", "h3", "d3"),
            ]

            submit = Submit(
                key="k-one", task_id=one, seq=0, status="running", data={}, finish=False
            )
            await store(conn, [submit])
            view = await submit_view(conn, ["k-one", "k-new"], {one, "no-such-task"})
            assert view.stored == {"k-one"}
            assert set(view.tasks) == {one}
            assert view.tasks[one].host_id == "h1"
            assert view.jobs == {one: JobOutcome(output_schema=None, webhook_url=None)}
            empty = await submit_view(conn, ["k-new"], {"no-such-task"})
            assert (empty.stored, empty.tasks, empty.jobs) == (set(), {}, {})

            found, stored = await task_and_key(conn, two, "k-one")
            assert found is not None and found.id == two and stored
            assert await task_and_key(conn, "no-such-task", "k-new") == (None, False)
    finally:
        await db.close()
