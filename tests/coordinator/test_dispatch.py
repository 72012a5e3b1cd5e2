"""Dispatch of unpinned work, heartbeats and shutdown, each on a coordinator of its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
from websockets.exceptions import ConnectionClosed

from agent.protocol import Assign, Finished, Heartbeat, Reply, Request, SubmitAck

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.coordinator.conftest import Farm


async def test_unpinned_tasks_go_oldest_first_one_per_free_device(
    start_farm: Callable[..., Farm],
) -> None:
    farm = start_farm()
    host_id, dev1, dev2 = "h1", "d1", "d2"
    token = farm.token(host_id)
    async with (
        farm.client() as client,
        farm.host(token, host_id, [farm.device(dev1), farm.device(dev2)]) as host,
    ):
        job = await farm.make_job(client)
        first, second, third = await farm.make_tasks(
            client, job["id"], {"input": {"i": 0}}, {"input": {"i": 1}}, {"input": {"i": 2}}
        )
        await host.credits(dev1, dev2)
        got = [(await host.next(Assign)).task for _ in range(2)]
        assert [(a.task_id, a.remote_device_id) for a in got] == [
            (first["id"], dev1),
            (second["id"], dev2),
        ]
        # A stale credits frame must not double-book devices that have a task.
        await host.credits(dev1, dev2)
        await host.send(Request(id="probe", task_id="none", method="ping"))
        assert (await host.next(Reply)).id == "probe"
        assert (await farm.task(client, third["id"]))["state"] == "pending"

        finished_at = datetime.now(UTC)
        await host.send(
            Finished(
                key="f-" + first["id"],
                task_id=first["id"],
                state="success",
                finished_at=finished_at,
            )
        )
        assert (await host.next(SubmitAck)).ok
        await farm.wait_state(client, first["id"], "success")
        await host.credits(dev1)
        assert (await host.next(Assign)).task.task_id == third["id"]
    assert farm.coordinator.process.poll() is None


async def test_silent_host_is_closed_4003_after_two_heartbeat_intervals(
    start_farm: Callable[..., Farm],
) -> None:
    farm = start_farm("--heartbeat-s", "0.5")
    async with farm.host(farm.token("quiet"), "quiet", [farm.device("q1")]) as host:
        assert host.welcome is not None
        assert host.welcome.heartbeat_interval_s == 0.5
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await host.next(Heartbeat)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4003
    await farm.poll_log("host quiet: heartbeat timeout")


async def test_sigterm_stops_the_coordinator_cleanly(start_farm: Callable[..., Farm]) -> None:
    farm = start_farm()
    async with farm.host(farm.token("h"), "h", [farm.device(uuid.uuid4().hex)]):
        farm.coordinator.process.terminate()
        assert farm.coordinator.process.wait(timeout=60) == 0
    assert "coordinator stopped" in farm.coordinator.log_text()
