"""A full disk under the daemon's state file, through the real stack (issue 10).

The state file lives on a small tmpfs the test mounts; the test fills it with a big file and
frees it by deleting the file. The coordinator and the daemon are real processes. Checked: a
task that ends on the full disk reaches the coordinator, nothing the script was told is stored
is lost, no seq is used by a refused submission, and once there is room again the host takes
and finishes new tasks by itself, on the same session (no reconnect).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.cli.outbox import read_outbox
from scripts.devstack import (
    Coordinator,
    Daemon,
    add_tasks,
    create_job,
    devices_of,
    wait_devices,
    wait_terminal,
    wait_until,
)
from tests.e2e.test_faults import stored
from tests.smalldisk import fill, small_disk

RESERVE = 1024 * 1024
QUICK = """
async def main(agent):
    await agent.utils.job.submit_task("running", {"step": 0}, False)
    await agent.utils.job.submit_task("success", {"done": True}, True)
"""
UNTIL_REFUSED = """
async def main(agent):
    # Progress until the host refuses one (its disk is full), then a few more, then return.
    told, refused = [], 0
    while refused < 3:
        result = await agent.utils.job.submit_task("running", {"n": len(told)}, False)
        if result.success:
            told.append(len(told))
        else:
            refused += 1
            assert "disk" in (result.error or ""), result
        await agent.utils.sleep_random(10, 20)
    return {"told": len(told)}
"""


def daemon_env(disk: Path) -> dict[str, str]:
    return {
        "DEVICE_AGENT__AGENT__STATE_FILE": str(disk / "state.db"),
        "DEVICE_AGENT__OUTBOX__DISK_RESERVE_BYTES": str(RESERVE),
        "DEVICE_AGENT__OUTBOX__DISK_CHECK_S": "0.5",
        "DEVICE_AGENT__OUTBOX__ACK_WAIT_S": "1",
    }


@pytest.fixture
def disk(tmp_path: Path) -> Any:
    with small_disk(tmp_path / "disk", 16) as mounted:
        yield mounted


def free_devices(http: httpx.Client, host_id: str) -> int:
    return sum(1 for d in devices_of(http, host_id) if d["connected"] and d["free"])


def sessions(daemon: Daemon) -> int:
    return daemon.log().count("connected to the coordinator (session")


def run_quick_tasks(http: httpx.Client, count: int) -> None:
    job = create_job(http, QUICK, timeout_s=120)
    for task in add_tasks(http, job["id"], *[{"input": {}}] * count):
        assert wait_terminal(http, task["id"], 120)["state"] == "success", task


@pytest.mark.timeout(300)
def test_filled_while_idle_then_freed(
    coordinator: Coordinator, make_daemon: Any, disk: Path
) -> None:
    daemon: Daemon = make_daemon(
        browsers=[{"name": "browser-1"}, {"name": "browser-2"}], env=daemon_env(disk)
    )
    daemon.start()
    with coordinator.http() as http:
        wait_devices(http, "host-1", 2)
        wait_until(lambda: free_devices(http, "host-1") == 2, "both devices free")
        filler = fill(disk)
        # The host says so by itself (its disk check), and the coordinator stops offering them.
        wait_until(lambda: free_devices(http, "host-1") == 0, "no device free on a full disk")
        assert daemon.proc is not None
        daemon.proc.wait_log("disk is short of space")
        job = create_job(http, QUICK, timeout_s=120)
        created = add_tasks(http, job["id"], *[{"input": {}}] * 4)
        filler.unlink()
        wait_until(lambda: free_devices(http, "host-1") >= 1, "devices offered again")
        for task in created:
            assert wait_terminal(http, task["id"], 120)["state"] == "success", task
    wait_until(
        lambda: all(stored(coordinator).get(t["id"]) == [0, 1, -1] for t in created),
        "each task's items and its end stored once, in order",
    )
    assert sessions(daemon) == 1, "the host must take work again without a reconnect"


@pytest.mark.timeout(300)
def test_filled_while_a_task_runs_its_end_arrives_then_freed(
    coordinator: Coordinator, make_daemon: Any, disk: Path
) -> None:
    daemon: Daemon = make_daemon(env=daemon_env(disk))
    daemon.start()
    with coordinator.http() as http:
        wait_devices(http, "host-1", 1)
        job = create_job(http, UNTIL_REFUSED, timeout_s=240)
        [task] = add_tasks(http, job["id"], {"input": {}})
        wait_until(lambda: len(stored(coordinator).get(task["id"], [])) >= 3, "some progress")
        filler = fill(disk)
        # The task ends while the disk is still full: its end is stored in the reserve's space
        # and reaches the coordinator, which then has every item the script was told about.
        ended = wait_terminal(http, task["id"], 120)
        assert ended["state"] == "success", ended
        told = ended["result"]["told"]
        wait_until(
            lambda: stored(coordinator)[task["id"]] == [*range(told), -1],
            "every submission the script was told about, with no gap in seq, then its end",
        )
        assert daemon.proc is not None
        daemon.proc.wait_log("disk is full")
        wait_until(lambda: free_devices(http, "host-1") == 0, "no device free on a full disk")
        # Acknowledged items are deleted even on the full disk: the outbox empties.
        wait_until(lambda: read_outbox(disk / "state.db")["items"] == 0, "an empty outbox")
        filler.unlink()
        wait_until(lambda: free_devices(http, "host-1") == 1, "the device offered again")
        run_quick_tasks(http, 3)
    assert sessions(daemon) == 1, "the host must take work again without a reconnect"
