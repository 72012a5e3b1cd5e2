"""Two coordinator replicas on one PostgreSQL database (always PostgreSQL: SQLite has no
replicas), with the farm bench's fake hosts (bench/fakehost.py) split between them.

- Tasks are created through replica A only. Those pinned to devices of hosts on replica B can
  reach them only if A's commit wakes B's dispatcher (NOTIFY): B's devices are idle and nothing
  else happens on B. The unpinned ones are raced for by both replicas' dispatchers: each must
  still reach a host exactly once.
- Replica A is killed (SIGKILL) mid-run: its hosts move to B (each host has both URLs), and
  every task still ends `success`, having reached a host exactly once.
- A host's newer session on one replica closes its older one on the other (4001), and a task
  cancelled through one replica is stopped on its host connected to the other.
- Timeouts are checked by one replica at a time; when it is killed, the other takes the duty and
  a task past its timeout on a host connected to it still ends `timeout`, the host told.
- The farm bench's own replicas (`bench.farm --replicas 2`) on a small farm: the load spread
  over both, every task `success` once, both replicas' CPU counted, and the restart of one
  replica moving its hosts, and only those, to the other.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from agent.protocol import Accept, Assign, Cancel, Heartbeat, Started
from bench import farm as farm_bench
from bench import farmrun
from bench.fakehost import Farm, FarmStats, device_ids
from bench.farmstack import (
    api_client,
    create_credentials,
    create_job,
    host_ids,
    state_counts,
    ws_url,
)
from scripts.devstack import poll_until
from tests.coordinator.conftest import device, running_coordinator, utcnow, welcomed_host
from tests.pg import postgresql_database, session_postmaster_pid

DEVICES = 3
PINNED_PER_DEVICE = 2
UNPINNED = 60
KILL_RUN_TASKS = 1000
KILL_AFTER = 100
DEADLINE_S = 60.0
RUN_DEADLINE_S = 300.0
"""For a run of 1,000 tasks: on a loaded 2-core machine, 60 s was once not enough."""


async def _create(
    http: httpx.AsyncClient, job_id: str, tasks: list[dict[str, object]]
) -> list[str]:
    response = await http.post(f"/api/jobs/{job_id}/tasks", json={"tasks": tasks})
    response.raise_for_status()
    return [task["id"] for task in response.json()["tasks"]]


async def test_tasks_created_on_one_replica_run_on_the_others_hosts_once(tmp_path: Path) -> None:
    database = postgresql_database()
    hosts = host_ids(4)
    tokens, api_key = await create_credentials(tmp_path, hosts, database)
    with (
        running_coordinator(tmp_path / "a", database=database) as a,
        running_coordinator(tmp_path / "b", database=database) as b,
    ):
        farm_a = Farm.build({h: tokens[h] for h in hosts[:2]}, DEVICES, [ws_url(a.base_url)])
        farm_b = Farm.build({h: tokens[h] for h in hosts[2:]}, DEVICES, [ws_url(b.base_url)])
        for farm in (farm_a, farm_b):
            farm.start()
        try:
            async with api_client(a.base_url, api_key) as http:
                await poll_until(
                    lambda: farm_a.connected() + farm_b.connected() == len(hosts),
                    "every host welcomed",
                    DEADLINE_S,
                )
                job_id = await create_job(http)
                on_b = [d for h in hosts[2:] for d in device_ids(h, DEVICES)]
                pinned = await _create(
                    http,
                    job_id,
                    [{"input": {}, "remote_device_id": d} for d in on_b] * PINNED_PER_DEVICE,
                )
                unpinned = await _create(
                    http, job_id, [{"input": {"n": n}} for n in range(UNPINNED)]
                )

                def all_finished() -> bool:
                    for farm in (farm_a, farm_b):
                        farm.check()
                    done = farm_a.stats.finished | farm_b.stats.finished
                    return all(t in done for t in pinned + unpinned)

                try:
                    await poll_until(all_finished, "every task finished", RUN_DEADLINE_S)
                except AssertionError as exc:
                    done = len(farm.stats.finished)
                    raise AssertionError(f"{exc}: {done} of {KILL_RUN_TASKS} did") from None
        finally:
            for farm in (farm_a, farm_b):
                await farm.stop()

    assert set(pinned) <= set(farm_b.stats.assigns), "a pinned task never reached replica B"
    assert not set(pinned) & set(farm_a.stats.assigns)
    seen = _assign_counts(farm_a.stats, farm_b.stats)
    assert {t: n for t, n in seen.items() if n != 1} == {}, "a task reached a host twice"
    assert set(seen) == set(pinned) | set(unpinned)
    for stats in (farm_a.stats, farm_b.stats):
        assert not stats.drops and not stats.refused


def _assign_counts(*farms: FarmStats) -> dict[str, int]:
    counts: dict[str, int] = {}
    for stats in farms:
        for task_id, times in stats.assigns.items():
            counts[task_id] = counts.get(task_id, 0) + len(times)
    return counts


async def test_a_replica_killed_mid_run_its_hosts_move_on_and_every_task_runs_once(
    tmp_path: Path,
) -> None:
    database = postgresql_database()
    hosts = host_ids(4)
    tokens, api_key = await create_credentials(tmp_path, hosts, database)
    with (
        running_coordinator(tmp_path / "a", database=database) as a,
        running_coordinator(tmp_path / "b", database=database) as b,
    ):
        # Round-robin: hosts 0 and 2 start on A, 1 and 3 on B; each moves to the other URL.
        farm = Farm.build(tokens, DEVICES, [ws_url(a.base_url), ws_url(b.base_url)])
        farm.start()
        try:
            async with api_client(b.base_url, api_key) as http:
                await poll_until(
                    lambda: farm.connected() == len(hosts), "every host welcomed", DEADLINE_S
                )
                job_id = await create_job(http)
                tasks = await _create(
                    http, job_id, [{"input": {"n": n}} for n in range(KILL_RUN_TASKS)]
                )
                await poll_until(
                    lambda: len(farm.stats.finished) >= KILL_AFTER,
                    f"{KILL_AFTER} tasks finished",
                    DEADLINE_S,
                    every_s=0.01,
                )
                a.process.kill()
                a.process.wait(timeout=30)
                finished_at_kill = len(farm.stats.finished)
                assert finished_at_kill < KILL_RUN_TASKS, "the run ended before the kill"

                def all_finished() -> bool:
                    farm.check()
                    return all(t in farm.stats.finished for t in tasks)

                try:
                    await poll_until(all_finished, "every task finished", RUN_DEADLINE_S)
                except AssertionError as exc:
                    done = len(farm.stats.finished)
                    raise AssertionError(f"{exc}: {done} of {KILL_RUN_TASKS} did") from None
                counts = await state_counts(http, job_id)
        finally:
            await farm.stop()

    assert counts == {"success": KILL_RUN_TASKS}
    seen = _assign_counts(farm.stats)
    assert {t: n for t, n in seen.items() if n != 1} == {}, "a task reached a host twice"
    assert set(seen) == set(tasks)
    assert [h.sessions for h in farm.hosts] == [2, 1, 2, 1], "A's hosts moved to B, once"
    assert not farm.stats.refused


async def test_sessions_and_cancels_reach_across_replicas(tmp_path: Path) -> None:
    database = postgresql_database()
    tokens, api_key = await create_credentials(tmp_path, ["host-x"], database)
    token, devices = tokens["host-x"], [device("x-1")]
    with (
        running_coordinator(tmp_path / "a", database=database) as a,
        running_coordinator(tmp_path / "b", database=database) as b,
    ):
        async with (
            welcomed_host(a, token, "host-x", devices) as old,
            welcomed_host(b, token, "host-x", devices) as new,
        ):
            with pytest.raises(ConnectionClosed) as closed:
                await old.next(Heartbeat)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001

            await new.credits("x-1")
            async with api_client(a.base_url, api_key) as http:
                job_id = await create_job(http)
                (task_id,) = await _create(http, job_id, [{"input": {}, "remote_device_id": "x-1"}])
                assert (await new.next(Assign)).task.task_id == task_id
                await new.send(Accept(task_id=task_id))
                await new.send(Started(task_id=task_id, started_at=utcnow()))
                await poll_until(
                    lambda: _state(http, task_id, "running"), "the task running", DEADLINE_S
                )
                response = await http.post(f"/api/tasks/{task_id}/cancel")
                response.raise_for_status()
                cancel = await new.next(Cancel)
                assert cancel.task_id == task_id


async def _state(http: httpx.AsyncClient, task_id: str, state: str) -> bool:
    response = await http.get(f"/api/tasks/{task_id}")
    response.raise_for_status()
    return bool(response.json()["state"] == state)


async def test_the_timeout_duty_moves_to_the_survivor_of_a_kill(tmp_path: Path) -> None:
    database = postgresql_database()
    tokens, api_key = await create_credentials(tmp_path, ["host-y"], database)
    token, devices = tokens["host-y"], [device("y-1")]
    grace = ("--grace-s", "1")
    with running_coordinator(tmp_path / "a", *grace, database=database) as a:
        await poll_until(
            lambda: "checks task timeouts now" in a.log_text(), "A takes the duty", DEADLINE_S
        )
        with running_coordinator(tmp_path / "b", *grace, database=database) as b:
            a.process.kill()
            a.process.wait(timeout=30)
            await poll_until(
                lambda: "checks task timeouts now" in b.log_text(), "B takes the duty", DEADLINE_S
            )
            async with welcomed_host(b, token, "host-y", devices) as host:
                await host.credits("y-1")
                async with api_client(b.base_url, api_key) as http:
                    job_id = await create_job(http)
                    body = [{"input": {}, "remote_device_id": "y-1", "timeout_s": 1}]
                    (task_id,) = await _create(http, job_id, body)
                    assert (await host.next(Assign)).task.task_id == task_id
                    await host.send(Accept(task_id=task_id))
                    await host.send(Started(task_id=task_id, started_at=utcnow()))
                    cancel = await host.next(Cancel)
                    assert (cancel.task_id, cancel.reason) == (task_id, "timeout")
                    assert await _state(http, task_id, "timeout")


async def test_the_farm_bench_runs_and_restarts_its_own_replicas(tmp_path: Path) -> None:
    database = postgresql_database()
    size = ["--hosts", "4", "--devices", "3", "--tasks", "120", "--deadline-s", str(DEADLINE_S)]
    args = farm_bench.parse_args(["--replicas", "2", "--database", database, *size])
    args.database_pid = session_postmaster_pid()
    run = farm_bench.Run(args)
    try:
        await farm_bench.phases(run, tmp_path)
    finally:
        await run.close()

    assert run.phase == "done"
    assert farm_bench.report(run)
    assert run.farm is not None and run.load is not None and run.restart is not None
    # Round-robin: hosts 0 and 2 start on the first replica, the one restarted, and move.
    assert [h.sessions for h in run.farm.hosts] == [2, 1, 2, 1]
    assert run.restart.hosts == 2
    assert run.farm.stats.expected_closes == 2
    assert len(run.load.coordinator_pids) == 2
    figures = farmrun.figures(run.load, run.farm)
    assert (figures.created, figures.assigned, figures.assigned_again) == (120, 120, 0)
    assert figures.coordinator_cpu_per_task_s and figures.database_cpu_per_task_s
    assert not run.farm.stats.drops
