"""The farm bench's fake hosts (bench/fakehost.py) against a real coordinator subprocess.

A small farm runs the bench's own phases: connect, a coordinator restart under the connected
hosts, then a load of tasks. The figures are not checked (2 cores, shared); what must hold is
that every host is welcomed (again after the restart) and every task ends `success`, assigned
exactly once, with no session dropped and nothing refused; on PostgreSQL the server's CPU is
counted too.
"""

from __future__ import annotations

from pathlib import Path

from bench import farmrun
from bench.fakehost import Farm
from bench.farmstack import OwnCoordinator, api_client, create_credentials, host_ids
from scripts.devstack import free_port
from tests.pg import fresh_database, session_postmaster_pid

HOSTS = 4
DEVICES = 3
TASKS = 120
DEADLINE_S = 60.0


async def test_every_task_succeeds_once_and_every_host_survives_a_restart(
    tmp_path: Path,
) -> None:
    database = fresh_database()
    tokens, api_key = await create_credentials(tmp_path, host_ids(HOSTS), database)
    coordinator = OwnCoordinator(
        tmp_path, free_port(), api_key, heartbeat_s=1.0, grace_s=2.0, database=database
    )
    await coordinator.start()
    farm = Farm.build(tokens, DEVICES, [coordinator.ws_url])
    try:
        async with api_client(coordinator.base_url, api_key) as http:
            await farmrun.connect(farm, [http], DEADLINE_S)
            assert [h.sessions for h in farm.hosts] == [1] * HOSTS

            await farmrun.restart_coordinator(coordinator, farm, http, DEADLINE_S)
            assert [h.sessions for h in farm.hosts] == [2] * HOSTS
            assert farm.stats.expected_closes == HOSTS

            assert coordinator.pid is not None
            record = farmrun.Load(TASKS, [coordinator.pid], session_postmaster_pid())
            await farmrun.load(farm, http, record, DEADLINE_S)
    finally:
        await farm.stop()
        await coordinator.stop()

    assert record.complete
    assert record.counts == {"success": TASKS}
    figures = farmrun.figures(record, farm)
    assert (figures.created, figures.assigned, figures.finished) == (TASKS, TASKS, TASKS)
    assert figures.assigned_again == 0
    database_cpu = figures.database_cpu_per_task_s
    assert (database_cpu is not None and database_cpu > 0) == (database is not None)
    assert set(farm.stats.assigns) == set(record.created)
    assert farm.stats.welcomes == 2 * HOSTS
    assert not farm.stats.drops
    assert not farm.stats.refused
