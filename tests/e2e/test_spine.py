"""The spine, end to end: HTTP API → coordinator → daemon → script on headless Chromium → result."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from scripts.devstack import (
    Coordinator,
    add_tasks,
    create_job,
    devices_of,
    wait_devices,
    wait_terminal,
    wait_until,
)
from scripts.localsite import BUTTON_CENTER
from tests.taskprocs import task_processes

EXAMPLE = Path(__file__).resolve().parents[2] / "scripts" / "examples" / "browser_click.py"


def test_example_script_clicks_screenshots_and_submits(
    coordinator: Coordinator, make_daemon: Any, site: str
) -> None:
    daemon = make_daemon()
    daemon.start()
    with coordinator.http() as http:
        wait_devices(http, "host-1", 1)
        job = create_job(http, EXAMPLE.read_text(), timeout_s=60)
        x, y = BUTTON_CENTER
        (task,) = add_tasks(http, job["id"], {"input": {"url": site, "x": x, "y": y}})
        done = wait_terminal(http, task["id"])

        assert done["state"] == "success", done
        assert done["result"] == {"before": "waiting", "after": "clicked", "width": 400}
        assert done["script_sha256"] == job["script_sha256"]
        assert done["started_at"] and done["finished_at"] and done["duration_s"] >= 0
        (file,) = done["files"]
        assert file["name"] == "page"
        image_bytes = httpx.get(
            file["url"], headers={"Authorization": f"Bearer {coordinator.api_key}"}, timeout=30
        ).content
    image = Image.open(io.BytesIO(image_bytes))
    assert image.format == "JPEG"
    assert image.width <= 400 and image.height <= 300
    assert (image.width, image.height) == (400, 225)  # 1280x720 scaled down, aspect kept


DEVICE_ID_SCRIPT = "def main(agent):\n    return {'id': agent.info.get_device_info()['id']}\n"


def test_pinned_task_runs_only_on_its_device(coordinator: Coordinator, make_daemon: Any) -> None:
    daemon = make_daemon(browsers=[{"name": "browser-1"}, {"name": "browser-2"}])
    daemon.start()
    with coordinator.http() as http:
        devices = wait_devices(http, "host-1", 2)
        pinned = devices[1]["remote_device_id"]
        job = create_job(
            http, "def main(agent):\n    return {'id': agent.info.get_device_info()['id']}\n"
        )
        tasks = add_tasks(http, job["id"], *[{"input": {}, "remote_device_id": pinned}] * 4)
        for task in tasks:
            done = wait_terminal(http, task["id"])
            assert done["state"] == "success", done
            assert done["device_id"] == pinned
            assert done["result"] == {"id": pinned}


SLEEPER = "import asyncio\n\nasync def main(agent):\n    await asyncio.sleep(60)\n"


def test_tasks_starting_and_ending_store_no_device_list_and_busy_is_the_coordinators(
    coordinator: Coordinator, make_daemon: Any
) -> None:
    daemon = make_daemon(browsers=[{"name": "browser-1"}, {"name": "browser-2"}])
    daemon.start()
    with coordinator.http() as http:
        first, second = (d["remote_device_id"] for d in wait_devices(http, "host-1", 2))
        quick = create_job(http, DEVICE_ID_SCRIPT)
        for task in add_tasks(
            http, quick["id"], {"remote_device_id": first}, {"remote_device_id": second}
        ):
            assert wait_terminal(http, task["id"])["state"] == "success"

        def stored() -> dict[str, tuple[str, str]]:
            return {
                d["remote_device_id"]: (d["state"], d["updated_at"])
                for d in devices_of(http, "host-1")
            }

        before = stored()
        (sleeper,) = add_tasks(http, create_job(http, SLEEPER)["id"], {"remote_device_id": first})
        wait_until(
            lambda: http.get(f"/api/tasks/{sleeper['id']}").json()["state"] == "running",
            "the sleeper running",
        )
        (other,) = add_tasks(http, quick["id"], {"remote_device_id": second})
        assert wait_terminal(http, other["id"])["state"] == "success"
        during = stored()
        assert http.post(f"/api/tasks/{sleeper['id']}/cancel").status_code == 200
        assert wait_terminal(http, sleeper["id"])["state"] == "cancelled"
        after = stored()
    # The host reports each device's own state, which no task changed: no `devices` frame was
    # sent for a task's start or end (before, the device list changed whenever one slot was
    # busy as another's task ended, and the coordinator stored it again: a write per task).
    # `busy` is the coordinator's, from the tasks it has assigned.
    assert during[first] == ("busy", before[first][1]), (before, during)
    assert during[second] == before[second] == ("available", before[second][1])
    assert after == before, (before, after)


def test_script_that_raises_ends_failed_with_its_message(
    coordinator: Coordinator, make_daemon: Any
) -> None:
    make_daemon().start()
    script = (
        "def helper():\n    raise ValueError('no such order 42')\n\n"
        "def main(agent):\n    helper()\n"
    )
    with coordinator.http() as http:
        wait_devices(http, "host-1", 1)
        job = create_job(http, script)
        (task,) = add_tasks(http, job["id"], {"input": {}})
        done = wait_terminal(http, task["id"])
    assert done["state"] == "failed"
    assert done["failure_reason"] == "script_error"
    assert "ValueError: no such order 42" in done["error"]
    assert "helper" in done["error"]


SLEEPER = """
import os, subprocess, time

async def main(agent):
    child = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    await agent.utils.job.submit_task("running", {"pids": [os.getpid(), child.pid]}, False)
    time.sleep(1000)  # outlives its timeout: the kill is under test
"""


def test_script_past_its_timeout_ends_timeout_and_leaves_no_process(
    coordinator: Coordinator, make_daemon: Any
) -> None:
    make_daemon().start()
    with coordinator.http() as http:
        wait_devices(http, "host-1", 1)
        job = create_job(http, SLEEPER, timeout_s=3)
        (task,) = add_tasks(http, job["id"], {"input": {}})
        wait_until(lambda: http.get(f"/api/tasks/{task['id']}").json()["progress"], "progress")
        assert len(task_processes(task["id"])) >= 2  # the script host and its sleeper
        done = wait_terminal(http, task["id"])
    assert done["state"] == "timeout"
    assert done["failure_reason"] == "timeout"
    wait_until(lambda: task_processes(task["id"]) == [], "the task's processes to be gone", 15)


def test_second_final_submission_gets_a_clear_error(
    coordinator: Coordinator, make_daemon: Any
) -> None:
    daemon = make_daemon()
    daemon.start()
    script = (
        "async def main(agent):\n"
        "    first = await agent.utils.job.submit_task('success', {'n': 1}, True)\n"
        "    second = await agent.utils.job.submit_task('failed', {'n': 2}, True)\n"
        "    print('first', first.success, 'second', second.success, second.error)\n"
    )
    with coordinator.http() as http:
        wait_devices(http, "host-1", 1)
        job = create_job(http, script)
        (task,) = add_tasks(http, job["id"], {"input": {}})
        done = wait_terminal(http, task["id"])
    assert done["state"] == "success" and done["result"] == {"n": 1}
    daemon.proc.wait_log("first True second False")
    assert re.search(r"second False .*already", daemon.log())


def test_daemon_restart_keeps_remote_device_ids(coordinator: Coordinator, make_daemon: Any) -> None:
    daemon = make_daemon(browsers=[{"name": "browser-1"}, {"name": "browser-2"}])
    daemon.start()
    with coordinator.http() as http:
        before = sorted(d["remote_device_id"] for d in wait_devices(http, "host-1", 2))
        assert daemon.stop() == 0
        wait_until(
            lambda: not any(d["connected"] for d in http.get("/api/devices").json()), "disconnect"
        )
        daemon.start()
        after = sorted(d["remote_device_id"] for d in wait_devices(http, "host-1", 2))
    assert before == after


def test_daemon_reconnects_after_coordinator_restart_and_takes_next_task(
    coordinator: Coordinator, make_daemon: Any
) -> None:
    daemon = make_daemon()
    daemon.start()
    with coordinator.http() as http:
        wait_devices(http, "host-1", 1)
    coordinator.stop()
    daemon.proc.wait_log("lost the coordinator")
    coordinator.start()
    with coordinator.http() as http:
        job = create_job(http, "def main(agent):\n    return {'ok': True}\n")
        (task,) = add_tasks(http, job["id"], {"input": {}})
        done = wait_terminal(http, task["id"])
    assert done["state"] == "success" and done["result"] == {"ok": True}


def test_wrong_token_is_refused_with_a_clear_log_line_and_backoff(
    coordinator: Coordinator, make_daemon: Any
) -> None:
    daemon = make_daemon(token="not-the-token")
    daemon.start()
    pattern = r"coordinator refused the host token \(HTTP 401\); retrying in ([0-9.]+) s"
    delays = wait_until(
        lambda: (
            [float(x) for x in re.findall(pattern, daemon.log())][:4]
            if len(re.findall(pattern, daemon.log())) >= 4
            else None
        ),
        "four refused attempts",
    )
    assert delays == sorted(delays) and delays[-1] > delays[0], delays
    assert "not-the-token" not in daemon.log()
    assert daemon.proc.popen.poll() is None
    assert "not-the-token" not in coordinator.proc.log()


def test_wrong_websocket_path_is_not_reported_as_a_refused_token(
    coordinator: Coordinator, make_daemon: Any
) -> None:
    url = coordinator.ws_url.replace("/ws/host", "/ws/nowhere")
    daemon = make_daemon(env={"DEVICE_AGENT__COORDINATOR__URL": url})
    daemon.start()
    daemon.proc.wait_log("no host websocket at /ws/nowhere")
    assert "refused the host token" not in daemon.log()
