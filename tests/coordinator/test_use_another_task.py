"""use_another_task under contention: fake hosts on real websockets against a real coordinator.

20 tasks on two hosts ask at once for one of 10 waiting tasks: 10 get distinct tasks, 10 get
none. (The guarantee is the single conditional UPDATE in store_tasks.take_waiting_task.)
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.protocol import Assign, Reply, Request, Started

if TYPE_CHECKING:
    from tests.coordinator.conftest import FakeHost, Farm


async def _start_all(host: FakeHost, count: int) -> list[str]:
    """Take `count` assignments and report each started; their task ids."""
    ids = []
    for _ in range(count):
        assign = await host.next(Assign)
        await host.send(Started(task_id=assign.task.task_id, started_at=datetime.now(UTC)))
        ids.append(assign.task.task_id)
    return ids


async def _ask(
    host: FakeHost, task_ids: list[str], method: str, params: dict[str, Any]
) -> list[Reply]:
    requests = [
        Request(id=uuid.uuid4().hex, task_id=t, method=method, params=params) for t in task_ids
    ]
    for request in requests:
        await host.send(request)
    replies: dict[str, Reply] = {}
    while len(replies) < len(requests):
        reply = await host.next(Reply)
        replies[reply.id] = reply
    return [replies[r.id] for r in requests]


async def test_twenty_askers_ten_waiting_tasks(farm: Farm) -> None:
    hosts = {farm.unique("host"): [farm.unique("dev") for _ in range(n)] for n in (10, 10, 10)}
    tokens = {h: farm.token(h) for h in hosts}
    async with contextlib.AsyncExitStack() as stack:
        connected = {
            h: await stack.enter_async_context(
                farm.host(tokens[h], h, [farm.device(d) for d in devices])
            )
            for h, devices in hosts.items()
        }
        async with farm.client() as client:
            job = await farm.make_job(client)
            await farm.make_tasks(
                client,
                job["id"],
                *[{"remote_device_id": d} for devices in hosts.values() for d in devices],
            )
        started = {}
        for h, host in connected.items():
            await host.credits(*hosts[h])
            started[h] = await _start_all(host, len(hosts[h]))
        waiter_host, *asker_hosts = hosts
        waiting = await _ask(
            connected[waiter_host],
            started[waiter_host],
            "set_automation_variables",
            {"variables": {"waiting": True}},
        )
        assert all(r.ok for r in waiting)
        answers = await asyncio.gather(
            *(_ask(connected[h], started[h], "use_another_task", {}) for h in asker_hosts)
        )
    results = [r for replies in answers for r in replies]
    assert len(results) == 20 and all(r.ok and r.result is not None for r in results)
    got = [r.result["job_task_id"] for r in results if r.result and r.result["job_task_id"]]
    assert len(got) == 10 and len(set(got)) == 10
    assert set(got) == set(started[waiter_host])
    assert sum(1 for r in results if r.result and r.result["job_task_id"] is None) == 10
