"""Fault injection: no submission or screenshot is lost or counted twice, whatever breaks.

Every test counts at the coordinator, in its SQLite file, by idempotency key: each expected
item stored exactly once, each task's items in the order its script made them, every task in
a final state, and no script process left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from typing import Any

import httpx
import pytest

from agent.protocol import TERMINAL_STATES
from agent.sweep import tagged_processes
from scripts.devstack import Coordinator, Daemon, add_tasks, create_job, wait_devices, wait_until
from tests.coordinator_rows import commit_order, rows
from tests.tcpproxy import TcpProxy

STEPS = 3
WORKER = f"""
async def main(agent):
    for step in range({STEPS}):
        await agent.utils.job.submit_task("running", {{"step": step}}, False)
    shot = await agent.actions.screenshot(64, 64, 50)
    file = {{"name": "shot", "extension": "jpg", "base64Data": shot.screenshot}}
    await agent.utils.job.submit_task("success", {{"steps": {STEPS}}}, True, [file])
"""
FOUR_BROWSERS = [{"name": f"browser-{i}"} for i in range(1, 5)]
FAST_LINK = {
    "DEVICE_AGENT__COORDINATOR__CONNECT_TIMEOUT_S": "2",
    "DEVICE_AGENT__OUTBOX__ACK_WAIT_S": "1",
}


def stored(coordinator: Coordinator) -> dict[str, list[int]]:
    """Per task, the seq of every stored item in the order the coordinator committed them."""
    order = commit_order(coordinator.database)
    query = f"SELECT task_id, seq FROM submissions ORDER BY {order}"
    items: dict[str, list[int]] = {}
    for task_id, seq in rows(coordinator.data_dir, coordinator.database, query):
        items.setdefault(task_id, []).append(seq)
    return items


def files_per_task(coordinator: Coordinator) -> Counter[str]:
    query = "SELECT task_id FROM files"
    return Counter(r[0] for r in rows(coordinator.data_dir, coordinator.database, query))


def states(http: httpx.Client, job_id: str) -> dict[str, dict[str, Any]]:
    tasks: dict[str, dict[str, Any]] = {}
    params = {"job_id": job_id, "limit": 500}
    while True:
        page = http.get("/api/tasks", params=params).json()
        tasks.update({t["id"]: t for t in page["items"]})
        if page["next_cursor"] is None:
            return tasks
        params["cursor"] = page["next_cursor"]


def wait_all_final(
    coordinator: Coordinator, job_id: str, deadline_s: float = 240
) -> dict[str, Any]:
    """Every task final at the coordinator, and each one's `finished` item stored too."""

    def check() -> dict[str, Any] | None:
        try:
            with coordinator.http() as http:
                tasks = states(http, job_id)
        except httpx.HTTPError:
            return None
        if not all(t["state"] in TERMINAL_STATES for t in tasks.values()):
            return None
        items = stored(coordinator)
        return tasks if all(items.get(t, [0])[-1] == -1 for t in tasks) else None

    return wait_until(check, "every task to be final and its end stored", deadline_s, every_s=0.5)


def assert_complete(coordinator: Coordinator, tasks: dict[str, Any]) -> None:
    """Every task succeeded with every item stored once, in order, and one screenshot."""
    items = stored(coordinator)
    files = files_per_task(coordinator)
    expected = [*range(STEPS), STEPS, -1]  # progress, final submission, finished
    for task_id, task in tasks.items():
        assert task["state"] == "success", task
        assert items[task_id] == expected, (task_id, items[task_id])
        assert files[task_id] == 1, (task_id, files[task_id])
    print(
        f"counted {sum(len(v) for v in items.values())} items and {sum(files.values())} "
        f"screenshots for {len(tasks)} tasks: all exactly once, in order"
    )


def assert_no_script_left(task_ids: set[str]) -> None:
    wait_until(lambda: not tagged_processes(task_ids), "no script process left", 30)


KILLED_RUN_TASKS = 28
KILLS_AFTER = (5, 10, 15)
"""The coordinator is killed three times, each after that many tasks finished: each kill lands
with tasks finished before it, tasks running on all four devices, and tasks still queued behind
them (three rounds of four after the last kill)."""


@pytest.mark.timeout(600)
def test_coordinator_killed_and_restarted_while_28_tasks_run(
    coordinator: Coordinator, make_daemon: Any
) -> None:
    daemon: Daemon = make_daemon(browsers=FOUR_BROWSERS, env=FAST_LINK)
    daemon.start()
    with coordinator.http() as http:
        wait_devices(http, "host-1", 4)
        job = create_job(http, WORKER, timeout_s=300)
        created = add_tasks(http, job["id"], *[{"input": {}}] * KILLED_RUN_TASKS)
    for done_before_kill in KILLS_AFTER:
        wait_until(
            lambda n=done_before_kill: (
                sum(1 for s in stored(coordinator).values() if s and s[-1] == -1) >= n
            ),
            f"{done_before_kill} finished tasks",
            180,
        )
        assert coordinator.proc is not None
        coordinator.proc.kill()
        coordinator.start()
    tasks = wait_all_final(coordinator, job["id"])
    assert set(tasks) == {t["id"] for t in created}
    assert_complete(coordinator, tasks)
    assert_no_script_left(set(tasks))
    assert daemon.log().count("connected to the coordinator (session") >= 4


def slow_worker(steps: int) -> str:
    """A script that leaves a child process and sends `steps` progress updates, slowly."""
    return f"""
import subprocess

async def main(agent):
    subprocess.Popen(["sleep", "1000"])
    for step in range({steps}):
        await agent.utils.job.submit_task("running", {{"step": step}}, False)
        await agent.utils.sleep_random(50, 100)
    await agent.utils.job.submit_task("success", {{"steps": {steps}}}, True)
"""


@pytest.mark.timeout(300)
def test_daemon_killed_mid_run_and_restarted(coordinator: Coordinator, make_daemon: Any) -> None:
    daemon: Daemon = make_daemon(browsers=FOUR_BROWSERS, env=FAST_LINK)
    daemon.start()
    with coordinator.http() as http:
        wait_devices(http, "host-1", 4)
        job = create_job(http, slow_worker(20), timeout_s=300)
        created = add_tasks(http, job["id"], *[{"input": {}}] * 12)
        wait_until(
            lambda: (
                sum(1 for s in states(http, job["id"]).values() if s["state"] == "running") >= 4
            ),
            "four running tasks",
        )
        wait_until(lambda: sum(len(v) for v in stored(coordinator).values()) >= 20, "progress")
    assert daemon.proc is not None and daemon.proc.popen is not None
    os.kill(daemon.proc.popen.pid, signal.SIGKILL)
    daemon.proc.popen.wait(30)
    daemon.start()
    daemon.proc.wait_log("as agent_restarted; killed")
    tasks = wait_all_final(coordinator, job["id"])
    assert set(tasks) == {t["id"] for t in created}
    items = stored(coordinator)
    restarted = [t for t in tasks.values() if t["failure_reason"] == "agent_restarted"]
    assert restarted, "the kill should have caught tasks mid-run"
    for task in tasks.values():
        seqs = items[task["id"]]
        assert seqs[-1] == -1 and seqs.count(-1) == 1, seqs  # one end, and it comes last
        progress = [s for s in seqs if s != -1]
        assert progress == list(range(len(progress))), seqs  # nothing lost, nothing twice
        if task["state"] == "success":
            assert progress == list(range(21))
        else:
            assert task["failure_reason"] == "agent_restarted", task
            assert len(progress) < 21
    print(f"{len(restarted)} task(s) reported agent_restarted, {len(tasks) - len(restarted)} ok")
    assert_no_script_left(set(tasks))


def outbox_items(daemon: Daemon) -> int:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli.main",
            "outbox",
            "--json",
            "--config",
            str(daemon.config_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    items: int = json.loads(out.stdout)["items"]
    return items


@pytest.mark.timeout(300)
def test_partition_blackholed_then_reset(coordinator: Coordinator, make_daemon: Any) -> None:
    with TcpProxy(coordinator.port).running() as proxy:
        env = {
            **FAST_LINK,
            "DEVICE_AGENT__COORDINATOR__URL": f"ws://127.0.0.1:{proxy.port}/ws/host",
        }
        daemon: Daemon = make_daemon(browsers=FOUR_BROWSERS, env=env)
        daemon.start()
        with coordinator.http() as http:
            wait_devices(http, "host-1", 4)
            job = create_job(http, slow_worker(10), timeout_s=300)
            created = add_tasks(http, job["id"], *[{"input": {}}] * 12)
            wait_until(lambda: sum(len(v) for v in stored(coordinator).values()) >= 8, "progress")
            proxy.mode = "blackhole"
            assert daemon.proc is not None
            daemon.proc.wait_log("no frame from the coordinator for")
            wait_until(lambda: outbox_items(daemon) >= 4, "items queued while partitioned")
            proxy.reset()
            proxy.mode = "pass"
            tasks = wait_all_final(coordinator, job["id"])
    assert set(tasks) == {t["id"] for t in created}
    items = stored(coordinator)
    for task in tasks.values():
        assert task["state"] == "success", task
        assert items[task["id"]] == [*range(11), -1], items[task["id"]]
    print(
        f"counted {sum(len(v) for v in items.values())} items for {len(tasks)} tasks "
        "after a partition"
    )
    assert_no_script_left(set(tasks))
