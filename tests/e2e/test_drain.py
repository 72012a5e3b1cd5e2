"""Graceful drain and SIGHUP, through a real coordinator and daemon.

SIGHUP adds a browser device while a task runs (the task is untouched), and a broken file leaves
the devices as they are. SIGTERM then drains: three tasks run, two are released by the test
once the drain has begun and end `success`, the third sleeps on; the drain would let it run for
ten minutes, and a second SIGTERM ends it at once: `agent_stopped`, exit 0, nothing left in the
outbox. (A drain that times out: tests/e2e/test_stop.py.)
"""

from __future__ import annotations

import signal
import sqlite3
from typing import Any

import pytest

from scripts.devstack import (
    Coordinator,
    Daemon,
    add_tasks,
    create_job,
    wait_devices,
    wait_terminal,
)
from scripts.localsite import serve_pages
from tests.e2e.test_stop import assert_reported_stopped, daemon_errors, exit_status, wait_running

GATED_SCRIPT = """
import asyncio

async def main(agent):
    gate = agent.arguments.job_variables.get("gate")
    await agent.utils.job.submit_task("running", {"started": True}, False)
    if gate is None:
        await asyncio.sleep(600)
    while True:
        await agent.actions.browse(gate)
        if await agent.actions.evaluate("document.body.textContent.trim()") == "go":
            break
        await asyncio.sleep(0.2)
    await agent.utils.job.submit_task("success", {"released": True}, True)
"""
"""A task with a `gate` URL ends once that page says "go"; one without sleeps for ten minutes."""
DRAIN_S = 600
"""Far past the test's exit deadline: only the second SIGTERM can end the drain in time."""


def signal_daemon(daemon: Daemon, sig: signal.Signals) -> None:
    assert daemon.proc is not None and daemon.proc.popen is not None
    daemon.proc.popen.send_signal(sig)


def outbox_items(daemon: Daemon) -> int:
    """Items left in the stopped daemon's outbox (its state file, read only)."""
    db = sqlite3.connect(f"file:{daemon.dir / 'state.db'}?mode=ro", uri=True, timeout=10)
    try:
        (items,) = db.execute("SELECT count(*) FROM outbox").fetchone()
    finally:
        db.close()
    assert isinstance(items, int)
    return items


def wait_log(daemon: Daemon, text: str) -> None:
    assert daemon.proc is not None
    daemon.proc.wait_log(text)


@pytest.mark.timeout(300)
def test_sighup_then_a_drain_a_second_sigterm_ends(
    coordinator: Coordinator, make_daemon: Any
) -> None:
    gate = {"/gate": "wait"}
    daemon: Daemon = make_daemon(
        browsers=[{"name": "browser-1"}, {"name": "browser-2"}],
        env={"DEVICE_AGENT__AGENT__DRAIN_TIMEOUT_S": str(DRAIN_S)},
    )
    daemon.start()
    with serve_pages(gate) as site, coordinator.http() as http:
        wait_devices(http, "host-1", 2)
        job = create_job(http, GATED_SCRIPT, timeout_s=900)
        gated = {"input": {"gate": f"{site}gate"}}
        [first] = add_tasks(http, job["id"], gated)
        wait_running(http, [first["id"]], scripts_started=True)

        # SIGHUP with a third browser: offered, and the running task goes on.
        daemon.browsers.append({"name": "browser-3"})
        daemon.write_config()
        signal_daemon(daemon, signal.SIGHUP)
        wait_devices(http, "host-1", 3)
        wait_log(daemon, "browser devices added: browser-3; removed: none")
        # SIGHUP with a file that does not validate: the devices stay, one line says why.
        with daemon.config_path.open("a") as config:
            config.write('[[devices.browser]]\nname = "not a name!"\n')
        signal_daemon(daemon, signal.SIGHUP)
        wait_log(daemon, "SIGHUP: keeping the current devices: ")
        assert "key `devices.browser.3.name`" in daemon.log()
        wait_devices(http, "host-1", 3)
        assert http.get(f"/api/tasks/{first['id']}").json()["state"] == "running"

        # Three tasks on three devices; SIGTERM drains.
        second, long = add_tasks(http, job["id"], gated, {"input": {}})
        task_ids = [first["id"], second["id"], long["id"]]
        wait_running(http, task_ids, scripts_started=True)
        signal_daemon(daemon, signal.SIGTERM)
        wait_log(daemon, f"draining: 3 running task(s) may finish within {DRAIN_S} s")
        gate["/gate"] = "go"
        for task_id in task_ids[:2]:
            task = wait_terminal(http, task_id)
            assert task["state"] == "success", task
        signal_daemon(daemon, signal.SIGTERM)
        assert exit_status(daemon) == 0, daemon.log()[-4000:]
        assert_reported_stopped(http, [long["id"]])
    assert outbox_items(daemon) == 0
    log = daemon.log()
    assert "stop requested again (SIGTERM): ending running tasks now" in log
    assert not daemon_errors(log), log
