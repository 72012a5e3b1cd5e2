"""Two coordinator replicas on one PostgreSQL database (always PostgreSQL: SQLite has no
replicas), with the farm bench's fake hosts (bench/fakehost.py) split between them.

Tasks are created through replica A only. Those pinned to devices of hosts on replica B can
reach them only if A's commit wakes B's dispatcher (NOTIFY): B's devices are idle and nothing
else happens on B. The unpinned ones are raced for by both replicas' dispatchers: each must
still reach a host exactly once.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from bench.fakehost import Farm, FarmStats, device_ids
from bench.farmstack import api_client, create_credentials, create_job, host_ids, ws_url
from scripts.devstack import poll_until
from tests.coordinator.conftest import running_coordinator
from tests.pg import postgresql_database

DEVICES = 3
PINNED_PER_DEVICE = 2
UNPINNED = 60
DEADLINE_S = 60.0


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

                await poll_until(all_finished, "every task finished at a host", DEADLINE_S)
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
