"""A real daemon with the URLs of two coordinator replicas on one PostgreSQL database: when the
replica it is connected to is killed (SIGKILL) mid-task, it moves to the other, the task that
was running ends `success` there (its end delivered from the outbox), and the tasks after it
run, each once."""

from __future__ import annotations

from pathlib import Path

from scripts.devstack import (
    Coordinator,
    Daemon,
    add_tasks,
    create_job,
    free_port,
    wait_devices,
    wait_terminal,
    wait_until,
)
from tests.pg import postgresql_database

SCRIPT = """
import asyncio

async def main(agent):
    await asyncio.sleep(2)  # keeps the task running: the replica is killed under it
    return {"n": (await agent.utils.job.get_current_task()).job_proof["n"]}
"""
TASKS = 3


def test_the_daemon_moves_to_the_other_replica_and_every_task_runs_once(tmp_path: Path) -> None:
    database = postgresql_database()
    for name in ("a", "b", "daemon"):
        (tmp_path / name).mkdir()
    a = Coordinator(data_dir=tmp_path / "a", port=free_port(), database=database)
    a.start()
    b = Coordinator(data_dir=tmp_path / "b", port=free_port(), database=database, api_key=a.api_key)
    b.start()
    daemon = Daemon(dir=tmp_path / "daemon", coordinator=a, urls=[a.ws_url, b.ws_url])
    try:
        daemon.start()
        # A replica's /api/devices knows the sessions it holds: the daemon starts on A.
        with a.http() as http_a:
            wait_devices(http_a, "host-1", 1)
        with b.http() as http:
            job = create_job(http, SCRIPT)
            tasks = add_tasks(http, job["id"], *[{"input": {"n": n}} for n in range(TASKS)])
            wait_until(
                lambda: http.get(f"/api/tasks/{tasks[0]['id']}").json()["state"] == "running",
                "the first task running",
            )
            assert a.proc is not None and a.proc.popen is not None
            a.proc.popen.kill()
            ended = [wait_terminal(http, task["id"]) for task in tasks]
        assert [t["state"] for t in ended] == ["success"] * TASKS
        assert [t["result"] for t in ended] == [{"n": n} for n in range(TASKS)]
        assert [t["attempt"] for t in ended] == [1] * TASKS
        log = daemon.log()
        assert f"lost the coordinator at {a.ws_url}" in log
        assert b.proc is not None and "host-1" in b.proc.log()
    finally:
        daemon.stop()
        a.stop()
        b.stop()
