"""The task lifecycle through the real daemon: a retried task's second attempt knows its number
and finds the first one's checkpoint; a task cancelled at once frees its device."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from scripts.devstack import (
    Coordinator,
    add_tasks,
    create_job,
    wait_devices,
    wait_terminal,
    wait_until,
)

RETRIED = """
import asyncio

async def main(agent):
    task = await agent.utils.job.get_current_task()
    if task.attempt == 1:
        await agent.utils.save_checkpoint({"page": 3})
        await asyncio.sleep(120)  # past its timeout: the run ends `timeout`, which is retried
    checkpoint = (await agent.utils.get_latest_checkpoint()).checkpoint
    return {"attempt": task.attempt, "checkpoint": checkpoint}
"""


def test_a_timed_out_run_is_retried_with_its_attempt_number_and_checkpoint(
    coordinator: Coordinator, make_daemon: Any
) -> None:
    make_daemon().start()
    with coordinator.http() as http:
        wait_devices(http, "host-1", 1)
        job = create_job(http, RETRIED, timeout_s=3, max_attempts=2, retry_delay_s=0)
        (task,) = add_tasks(http, job["id"], {"input": {}})
        done = wait_terminal(http, task["id"])
        assert done["state"] == "success", done
        assert done["result"] == {"attempt": 2, "checkpoint": {"page": 3}}
        runs = http.get(f"/api/tasks/{task['id']}/runs").json()["runs"]
        assert [(r["attempt"], r["state"], r["failure_reason"]) for r in runs] == [
            (1, "timeout", "timeout"),
            (2, "success", None),
        ]


def _outbox_rows(state_file: Path) -> int:
    with sqlite3.connect(state_file, timeout=30) as db:
        held = db.execute("SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM running)")
        count: int = held.fetchone()[0]
    return count


def test_a_pinned_task_cancelled_at_once_frees_its_device(
    coordinator: Coordinator, make_daemon: Any
) -> None:
    daemon = make_daemon()
    daemon.start()
    with coordinator.http() as http:
        (device,) = wait_devices(http, "host-1", 1)
        pin = device["remote_device_id"]
        job = create_job(http, "async def main(agent):\n    return {'ran': True}\n")
        for _ in range(3):
            (task,) = add_tasks(http, job["id"], {"input": {}, "remote_device_id": pin})
            cancelled = http.post(f"/api/tasks/{task['id']}/cancel").json()
            assert cancelled["state"] in ("cancelled", "running"), cancelled
            assert wait_terminal(http, task["id"])["state"] == "cancelled"

        def free() -> bool:
            (found,) = [d for d in http.get("/api/devices").json() if d["remote_device_id"] == pin]
            return bool(found["free"])

        wait_until(free, "the pinned device to be free again")
        (after,) = add_tasks(http, job["id"], {"input": {}, "remote_device_id": pin})
        assert wait_terminal(http, after["id"])["result"] == {"ran": True}
    wait_until(lambda: _outbox_rows(daemon.dir / "state.db") == 0, "the outbox to be empty")
