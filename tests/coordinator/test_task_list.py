"""GET /api/tasks: filters, a cursor that holds while tasks are created, and refused queries.

Jobs whose tasks must stay where they are here are `manual` (never dispatched), so that the
one host of the filter test is given only the tasks it is meant to get.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from agent.protocol import Assign, Reply, Request, Started
from coordinator.api.cursor import decode_cursor, encode_cursor
from coordinator.api.instants import first_stamp_shown_from, shown
from tests.coordinator.test_host_session import now

if TYPE_CHECKING:
    import httpx

    from tests.coordinator.conftest import Farm

INITIAL = 200
ADDED = 500
BATCH = 10
EXAMPLES = settings(
    max_examples=500, deadline=None, database=None, derandomize=True, phases=[Phase.generate]
)


@EXAMPLES
@given(st.floats(min_value=0, max_value=2**33))
def test_a_time_bound_holds_exactly_the_stored_times_shown_at_or_after_it(stamp: float) -> None:
    bound = first_stamp_shown_from(shown(stamp))
    assert bound <= stamp
    assert shown(math.nextafter(bound, -math.inf)) < shown(stamp) <= shown(bound)


@EXAMPLES
@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_a_cursor_gives_back_its_seq(seq: int) -> None:
    assert decode_cursor(encode_cursor(seq)) == seq


async def listed(client: httpx.AsyncClient, **params: Any) -> list[str]:
    """The ids of every task the filters give, page after page."""
    ids: list[str] = []
    while True:
        response = await client.get("/api/tasks", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [task["id"] for task in page["items"]]
        if page["next_cursor"] is None:
            return ids
        params["cursor"] = page["next_cursor"]


async def test_cursor_pages_list_every_task_once_while_500_are_created(farm: Farm) -> None:
    """A writer adds 500 tasks in batches of 10 while a reader pages through the job 10 at a time.
    They go in step, without timing: batch k waits for page k, and page k + 1 for batch k - 1, so
    the two overlap and every batch is made while the listing runs, on any machine."""
    batches = ADDED // BATCH
    async with farm.client() as client:
        job = await farm.make_job(client, type="manual")
        made = await farm.make_tasks(
            client, job["id"], *({"input": {"n": n}} for n in range(INITIAL))
        )
        order = {task["id"]: n for n, task in enumerate(made)}
        progress = {"pages": 0, "batches": 0}
        changed = asyncio.Condition()

        async def reach(what: str, count: int) -> None:
            async with changed:
                await changed.wait_for(lambda: progress[what] >= count)

        async def advance(what: str) -> None:
            async with changed:
                progress[what] += 1
                changed.notify_all()

        async def write() -> None:
            for k in range(batches):
                await reach("pages", k + 1)
                batch = [{"input": {"n": INITIAL + k * BATCH + i}} for i in range(BATCH)]
                for task in await farm.make_tasks(client, job["id"], *batch):
                    order[task["id"]] = task["input"]["n"]
                await advance("batches")

        async def read() -> list[str]:
            seen: list[str] = []
            params: dict[str, Any] = {"job_id": job["id"], "limit": BATCH}
            while True:
                await reach("batches", min(progress["pages"] - 1, batches))
                page = (await client.get("/api/tasks", params=params)).json()
                assert page["total"] is None
                seen += [task["id"] for task in page["items"]]
                await advance("pages")
                if page["next_cursor"] is None:
                    return seen
                params["cursor"] = page["next_cursor"]

        seen, _ = await asyncio.gather(read(), write())

    assert len(seen) == len(set(seen)), "a task was listed twice"
    assert {task["id"] for task in made} <= set(seen), "a task made before the listing is missing"
    # Each batch was made before the reader got to where it goes in the list, so all are there.
    assert [order[task_id] for task_id in seen] == list(range(INITIAL + ADDED))


async def test_tasks_leaving_the_filter_behind_the_cursor_make_none_skipped(farm: Farm) -> None:
    """Listing pending tasks while cancelling each page's: an offset would skip a page's worth
    each time; the cursor lists every one still pending."""
    async with farm.client() as client:
        job = await farm.make_job(client, type="manual")
        made = await farm.make_tasks(client, job["id"], *({} for _ in range(20)))
        seen: list[str] = []
        params: dict[str, Any] = {"job_id": job["id"], "state": "pending", "limit": 5}
        while True:
            page = (await client.get("/api/tasks", params=params)).json()
            for task in page["items"]:
                seen.append(task["id"])
                await client.post(f"/api/tasks/{task['id']}/cancel")
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        assert seen == [task["id"] for task in made]


async def test_each_filter_and_several_states(farm: Farm) -> None:
    host_id, dev_a, dev_b = farm.unique("host"), farm.unique("dev"), farm.unique("dev")
    async with (
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(dev_a), farm.device(dev_b)]) as host,
    ):
        job = await farm.make_job(client)
        subs = await farm.make_job(client, type="manual", allow_sub_tasks=True)
        pinned, unpinned, waiting = await farm.make_tasks(
            client,
            job["id"],
            {"remote_device_id": dev_a},
            {"input": {}},
            {"remote_device_id": dev_a},
        )
        await host.credits(dev_a, dev_b)
        assigned = {(await host.next(Assign)).task.task_id for _ in range(2)}
        assert assigned == {pinned["id"], unpinned["id"]}
        await host.send(Started(task_id=pinned["id"], started_at=now()))
        await host.send(
            Request(
                id="subs",
                task_id=pinned["id"],
                method="add_sub_tasks",
                params={"job_variables": [{"s": 1}, {"s": 2}], "job_id": subs["id"]},
            )
        )
        reply = await host.next(Reply)
        assert reply.ok, reply.error
        children = await listed(client, job_id=subs["id"])
        assert len(children) == 2

        in_job = {"job_id": job["id"]}
        assert await listed(client, device=dev_a) == [pinned["id"], waiting["id"]]
        assert await listed(client, device=dev_b) == [unpinned["id"]]  # ran there, not pinned
        assert await listed(client, host=host_id) == [pinned["id"], unpinned["id"]]
        assert await listed(client, parent=pinned["id"]) == children
        assert await listed(client, **in_job, state="running") == [pinned["id"]]
        assert await listed(client, **in_job, state=["running", "assigned"]) == [
            pinned["id"],
            unpinned["id"],
        ]
        assert await listed(client, **in_job, state=["pending"], device=dev_a) == [waiting["id"]]
        assert await listed(client, **in_job, state="success") == []
        counted = (
            await client.get("/api/tasks", params={**in_job, "limit": 1, "with_total": True})
        ).json()
        assert (len(counted["items"]), counted["total"]) == (1, 3)
        for task in (pinned, unpinned, waiting):
            await client.post(f"/api/tasks/{task['id']}/cancel")


def unix_seconds(shown: str) -> str:
    return f"{datetime.fromisoformat(shown).timestamp():.6f}"


async def test_time_filters_are_half_open_at_the_times_shown(farm: Farm) -> None:
    """`after` takes a task whose time is the bound, `before` leaves it out; a bound copied from
    a response (microseconds, while stored times are finer) holds exactly that."""
    async with farm.client() as client:
        job = await farm.make_job(client, type="manual")
        early = await farm.make_tasks(client, job["id"], {}, {})
        late = await farm.make_tasks(client, job["id"], {}, {})
        early_ids, late_ids = [t["id"] for t in early], [t["id"] for t in late]
        split = late[0]["created_at"]
        assert early[0]["created_at"] < split
        in_job = {"job_id": job["id"]}
        assert await listed(client, **in_job, created_after=split) == late_ids
        assert await listed(client, **in_job, created_before=split) == early_ids
        assert await listed(client, **in_job, created_after=unix_seconds(split)) == late_ids
        assert (
            await listed(
                client, **in_job, created_after=early[0]["created_at"], created_before=split
            )
            == early_ids
        )

        first = (await client.post(f"/api/tasks/{early[0]['id']}/cancel")).json()
        second = (await client.post(f"/api/tasks/{late[0]['id']}/cancel")).json()
        ended = second["finished_at"]
        assert first["finished_at"] < ended
        assert await listed(client, **in_job, finished_after=ended) == [second["id"]]
        assert await listed(client, **in_job, finished_before=ended) == [first["id"]]
        # Tasks not finished have no finished_at: no finished_* bound takes them.
        assert await listed(client, **in_job, finished_after="1970-01-01T00:00:00Z") == [
            first["id"],
            second["id"],
        ]


async def test_bad_values_are_422_naming_the_field(farm: Farm) -> None:
    async with farm.client() as client:
        job = await farm.make_job(client, type="manual")
        await farm.make_tasks(client, job["id"], {}, {})
        first = (await client.get("/api/tasks", params={"job_id": job["id"], "limit": 1})).json()
        cursor = first["next_cursor"]
        assert isinstance(cursor, str)
        for params, field in (
            ({"cursor": "nonsense!"}, ["cursor"]),
            ({"cursor": cursor[:-2]}, ["cursor"]),
            ({"cursor": "12"}, ["cursor"]),
            ({"state": ["pending", "bogus"]}, ["state", 1]),
            ({"created_after": "yesterday"}, ["created_after"]),
            ({"created_before": "2024-01-15T10:30:00"}, ["created_before"]),
            ({"finished_after": "2024-01-15 10:30:00 02:00"}, ["finished_after"]),
            ({"finished_before": "99999999999999999999"}, ["finished_before"]),
            ({"limit": 0}, ["limit"]),
            ({"with_total": "maybe"}, ["with_total"]),
        ):
            response = await client.get("/api/tasks", params={"job_id": job["id"], **params})
            assert response.status_code == 422, (params, response.text)
            locs = [e["loc"] for e in response.json()["detail"]]
            assert locs == [["query", *field]], (params, locs)
        raw_plus = await client.get(
            "/api/tasks", params={"created_after": "2024-01-15 10:30:00 02:00"}
        )
        assert "%2B" in raw_plus.text
        encoded_plus = await client.get(
            "/api/tasks", params={"job_id": job["id"], "created_after": "2024-01-15T10:30:00+02:00"}
        )
        assert encoded_plus.status_code == 200, encoded_plus.text
