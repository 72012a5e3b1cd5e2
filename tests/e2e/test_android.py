"""Android end to end: a real coordinator and daemon process, the daemon's own adb server, and a
simulated phone (in this process) that the daemon reaches with `adb connect`."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from drivers.sim import free_port
from scripts.devstack import (
    Coordinator,
    Daemon,
    add_tasks,
    android_config,
    create_job,
    kill_adb_server,
    wait_device,
    wait_terminal,
    wait_until,
)
from tests.sim.conftest import SimHandle

EXAMPLE = Path(__file__).resolve().parents[2] / "scripts" / "examples" / "android_login.py"
HOST = "host-1"


class Farm:
    """A daemon with only Android enabled, its adb server on its own port and HOME."""

    def __init__(self, make_daemon: Any, tmp_path: Path) -> None:
        self.adb_port = free_port()
        home = tmp_path / "home"
        home.mkdir()
        self.env = {"HOME": str(home)}
        self.phone = SimHandle()
        self.phone_port = free_port()
        self.daemon: Daemon = make_daemon(
            browsers=[],
            extra=android_config(self.adb_port, [f"127.0.0.1:{self.phone_port}"]),
            env=self.env,
        )

    def close(self) -> None:
        try:
            self.daemon.stop()
        finally:
            kill_adb_server(self.adb_port, self.env)
            self.phone.close()


@pytest.fixture
def farm(make_daemon: Any, tmp_path: Path) -> Iterator[Farm]:
    farm = Farm(make_daemon, tmp_path)
    try:
        yield farm
    finally:
        farm.close()


def wait_running(http: Any, task_id: str) -> None:
    wait_until(
        lambda: http.get(f"/api/tasks/{task_id}").json()["state"] == "running",
        f"task {task_id} to run",
    )


def test_phone_plugged_in_later_runs_the_login_example(
    coordinator: Coordinator, farm: Farm
) -> None:
    farm.daemon.start()
    with coordinator.http() as http:
        assert farm.daemon.proc is not None
        farm.daemon.proc.wait_log("starting with")
        farm.phone.start(farm.phone_port)  # plugged in while the daemon runs
        device = wait_device(http, HOST, "available")
        assert device["kind"] == "android"
        assert device["properties"]["model"] == "Sim"
        job = create_job(http, EXAMPLE.read_text(), timeout_s=60)
        (task,) = add_tasks(http, job["id"], {"input": {}})
        done = wait_terminal(http, task["id"])
        assert done["state"] == "success", (done, farm.daemon.log()[-3000:])
        assert done["result"] == {"greeting": "Welcome, demo", "width": 360}
        (file,) = done["files"]
        image = Image.open(io.BytesIO(http.get(file["url"]).content))
        assert image.format == "JPEG" and image.size == (360, 640)
    # reset after the task (the final submit_task ended it before the script returned): back
    # home, the app stopped
    wait_until(
        lambda: farm.phone.do(lambda p: p.state.screen.current.package) == "com.android.launcher3",
        "the phone reset to its home screen",
    )


WAIT_FOR_WELCOME = """
async def main(agent):
    await agent.actions.launch_app("com.example.login")
    nodes = await agent.actions.wait_for_node({"text_contains": "Welcome"}, timeout_ms=30000)
    return {"greeting": nodes[0]["text"]}
"""


def log_in_on_the_phone(phone: Any) -> None:
    app = phone.state.screen.apps["com.example.login"]
    app.fields.update(username="demo", password="secret")
    app.click("login")


def test_uiautomator_killed_mid_task_continues_and_adb_restart_finds_the_phone(
    coordinator: Coordinator, farm: Farm
) -> None:
    farm.phone.start(farm.phone_port)
    farm.daemon.start()
    with coordinator.http() as http:
        rid = wait_device(http, HOST, "available")["remote_device_id"]
        job = create_job(http, WAIT_FOR_WELCOME, timeout_s=60)
        (task,) = add_tasks(http, job["id"], {"input": {}})
        wait_running(http, task["id"])
        wait_until(
            lambda: farm.phone.do(lambda p: p.state.screen.current.package) == "com.example.login",
            "the app in front",
        )
        farm.phone.do(lambda p: p.kill_u2_server())
        farm.phone.do(log_in_on_the_phone)
        done = wait_terminal(http, task["id"])
        assert done["state"] == "success", (done, farm.daemon.log()[-3000:])
        assert done["result"] == {"greeting": "Welcome, demo"}

        kill_adb_server(farm.adb_port, farm.env)
        wait_device(http, HOST, "offline", rid)
        assert wait_device(http, HOST, "available", rid)["remote_device_id"] == rid


LOOP_TAPS = """
async def main(agent):
    while True:
        await agent.actions.tap(10, 10)
"""


def test_phone_vanishing_mid_task_fails_it_device_lost_and_comes_back(
    coordinator: Coordinator, farm: Farm
) -> None:
    farm.phone.start(farm.phone_port)
    farm.daemon.start()
    with coordinator.http() as http:
        rid = wait_device(http, HOST, "available")["remote_device_id"]
        job = create_job(http, LOOP_TAPS, timeout_s=60)
        (task,) = add_tasks(http, job["id"], {"input": {}})
        wait_running(http, task["id"])
        farm.phone.do(lambda p: p.go_offline())
        done = wait_terminal(http, task["id"], deadline_s=30)
        assert done["state"] == "failed", done
        assert done["failure_reason"] == "device_lost", done
        # Whichever notices first says so: the daemon's watch of adb, or the script's action.
        assert done["error"].startswith(
            ("the device was lost while the task ran: ", "tap: the phone ")
        ), done
        wait_device(http, HOST, "offline", rid)
        farm.phone.do(lambda p: p.come_online())
        back = wait_device(http, HOST, "available", rid)
        assert back["remote_device_id"] == rid
