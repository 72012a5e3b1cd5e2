"""Operating a host, through a real coordinator and daemon that share one setup (CI time):
metrics, the coordinator's stop, SIGHUP and the drain.

1. Metrics: a metrics port already in use stops a daemon at start (exit 2, one line naming the
   key). After a known sequence (two tasks `success`, one `failed` with `script_error`, each
   with one action), the daemon's endpoint and the coordinator's `/metrics` are scraped over
   HTTP and read with Prometheus' own text parser.
2. The coordinator is stopped with SIGTERM: the daemon sees close 1012 and reconnects to it once
   it is back (its reconnect counter says so).
3. SIGHUP adds a browser device while a task runs (the task is untouched), and a broken file
   leaves the devices as they are.
4. SIGTERM drains: three tasks run, two are released by the test once the drain has begun and
   end `success`, the third sleeps on; the drain would let it run for ten minutes, and a second
   SIGTERM ends it at once: `agent_stopped`, exit 0, nothing left in the outbox. (A drain that
   times out: tests/e2e/test_stop.py.)
"""

from __future__ import annotations

import signal
import socket
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

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
from scripts.localsite import serve_pages
from tests.e2e.test_stop import assert_reported_stopped, daemon_errors, exit_status, wait_running

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

KNOWN_SCRIPT = """
async def main(agent):
    await agent.actions.evaluate("1 + 1")
    if agent.arguments.job_variables.get("fail"):
        raise RuntimeError("asked to fail")
    await agent.utils.job.submit_task("success", {"ok": True}, True)
"""
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


@pytest.fixture
def web() -> Iterator[httpx.Client]:
    """One client for every scrape of a test: a new one per poll would load the CA bundle each
    time (tens of ms of CPU)."""
    with httpx.Client(timeout=10) as client:
        yield client


def scrape(web: httpx.Client, url: str, headers: dict[str, str] | None = None) -> Samples:
    """Every sample of the page: (name, its labels) -> value."""
    response = web.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def metrics_section(port: int) -> str:
    return f'[metrics]\nenabled = true\nlisten = "127.0.0.1:{port}"'


def signal_daemon(daemon: Daemon, sig: signal.Signals) -> None:
    assert daemon.proc is not None and daemon.proc.popen is not None
    daemon.proc.popen.send_signal(sig)


def wait_log(daemon: Daemon, text: str) -> None:
    assert daemon.proc is not None
    daemon.proc.wait_log(text)


def outbox_items(daemon: Daemon) -> int:
    """Items left in the stopped daemon's outbox (its state file, read only)."""
    db = sqlite3.connect(f"file:{daemon.dir / 'state.db'}?mode=ro", uri=True, timeout=10)
    try:
        (items,) = db.execute("SELECT count(*) FROM outbox").fetchone()
    finally:
        db.close()
    assert isinstance(items, int)
    return items


@pytest.mark.timeout(400)
def test_metrics_coordinator_restart_sighup_and_drain(
    coordinator: Coordinator, make_daemon: Any, web: httpx.Client
) -> None:
    port = free_port()
    daemon: Daemon = make_daemon(
        browsers=[{"name": "browser-1"}, {"name": "browser-2"}],
        extra=metrics_section(port),
        env={"DEVICE_AGENT__AGENT__DRAIN_TIMEOUT_S": str(DRAIN_S)},
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]
        refused: Daemon = make_daemon(host_id="host-2", extra=metrics_section(busy_port))
        refused.start()
        daemon.start()  # meanwhile: both start at once
        assert refused.proc is not None and refused.proc.popen is not None
        assert refused.proc.popen.wait(60) == 2, refused.log()
    assert f"key `metrics.listen`: cannot listen on 127.0.0.1:{busy_port}" in refused.log()

    # 1. Metrics after a known sequence.
    daemon_url = f"http://127.0.0.1:{port}/metrics"
    with coordinator.http() as http:
        wait_devices(http, "host-1", 2)
        job = create_job(http, KNOWN_SCRIPT, timeout_s=120)
        tasks = add_tasks(http, job["id"], {"input": {}}, {"input": {}}, {"input": {"fail": True}})
        ends = [wait_terminal(http, task["id"]) for task in tasks]
    assert sorted((e["state"], e["failure_reason"] or "") for e in ends) == [
        ("failed", "script_error"),
        ("success", ""),
        ("success", ""),
    ]
    # An end is counted once the task's slot is free; the outbox empties once the coordinator
    # has acknowledged the ends.
    agent = wait_until(
        lambda: (
            (s := scrape(web, daemon_url))
            and value(s, "device_agent_outbox_items") == 0
            and value(s, "device_agent_devices", kind="browser", state="available") == 2
            and s
        ),
        "the daemon idle with an empty outbox",
    )
    assert value(agent, "device_agent_tasks_total", state="success", reason="") == 2
    assert value(agent, "device_agent_tasks_total", state="failed", reason="script_error") == 1
    assert value(agent, "device_agent_task_duration_seconds_count", state="success") == 2
    assert value(agent, "device_agent_task_duration_seconds_count", state="failed") == 1
    assert value(agent, "device_agent_action_duration_seconds_count", action="evaluate") == 3
    assert value(agent, "device_agent_outbox_bytes") == 0
    assert value(agent, "device_agent_outbox_oldest_age_seconds") == 0
    assert value(agent, "device_agent_link_up") == 1
    assert value(agent, "device_agent_link_reconnects_total") == 0
    assert ("device_agent_sandbox_limit_hits_total", frozenset()) not in agent
    assert httpx.get(f"{coordinator.base_url}/metrics", timeout=10).status_code == 401
    auth = {"Authorization": f"Bearer {coordinator.api_key}"}
    coord = scrape(web, f"{coordinator.base_url}/metrics", auth)
    assert value(coord, "device_coordinator_tasks", state="success", reason="") == 2
    assert value(coord, "device_coordinator_tasks", state="failed", reason="script_error") == 1
    # One observation per assignment: a task the daemon rejected (its device still resetting
    # from the last task, on a loaded machine) is assigned again.
    rejected = daemon.log().count("rejected task ")
    assert value(coord, "device_coordinator_dispatch_latency_seconds_count") == 3 + rejected
    assert value(coord, "device_coordinator_hosts_connected") == 1

    # 2. The coordinator stops: its hosts are closed with 1012 and come back once it is back.
    assert coordinator.proc is not None
    assert coordinator.proc.stop() == 0, coordinator.proc.log()[-4000:]
    assert "closing 1 host session(s) with 1012" in coordinator.proc.log()
    wait_log(daemon, "the coordinator is restarting (1012")
    coordinator.start()
    gate = {"/gate": "wait"}
    with serve_pages(gate) as site, coordinator.http() as http:
        wait_devices(http, "host-1", 2)
        agent = scrape(web, daemon_url)
        assert value(agent, "device_agent_link_reconnects_total") == 1
        assert value(agent, "device_agent_link_up") == 1

        # 3. SIGHUP with a third browser: offered, and the running task goes on.
        job = create_job(http, GATED_SCRIPT, timeout_s=900)
        gated = {"input": {"gate": f"{site}gate"}}
        [first] = add_tasks(http, job["id"], gated)
        wait_running(http, [first["id"]], scripts_started=True)
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

        # 4. Three tasks on three devices; SIGTERM drains, a second SIGTERM ends the drain.
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
