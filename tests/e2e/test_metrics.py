"""Metrics through a real coordinator and daemon, and the coordinator's stop (close 1012).

After a known sequence (two tasks `success`, one `failed` with `script_error`, each with one
action), the daemon's endpoint and the coordinator's `/metrics` are scraped over HTTP and read
with Prometheus' own text parser. The coordinator is then stopped with SIGTERM: the daemon sees
1012, and reconnects to it once it is back (its reconnect counter says so). A metrics port
already in use stops a daemon at start: exit 2, one line naming the key.
"""

from __future__ import annotations

import socket
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

SCRIPT = """
async def main(agent):
    await agent.actions.evaluate("1 + 1")
    if agent.arguments.job_variables.get("fail"):
        raise RuntimeError("asked to fail")
    await agent.utils.job.submit_task("success", {"ok": True}, True)
"""


def scrape(
    url: str, headers: dict[str, str] | None = None
) -> dict[tuple[str, frozenset[Any]], float]:
    """Every sample of the page: (name, its labels) -> value."""
    response = httpx.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def metrics_section(port: int) -> str:
    return f'[metrics]\nenabled = true\nlisten = "127.0.0.1:{port}"'


@pytest.mark.timeout(300)
def test_metrics_after_known_tasks_and_a_coordinator_restart(
    coordinator: Coordinator, make_daemon: Any
) -> None:
    # A port already taken: a clear error at start, exit 2.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]
        refused: Daemon = make_daemon(host_id="host-2", extra=metrics_section(busy_port))
        refused.start()
        assert refused.proc is not None and refused.proc.popen is not None
        assert refused.proc.popen.wait(60) == 2, refused.log()
    assert f"key `metrics.listen`: cannot listen on 127.0.0.1:{busy_port}" in refused.log()

    port = free_port()
    daemon: Daemon = make_daemon(extra=metrics_section(port))
    daemon.start()
    daemon_url = f"http://127.0.0.1:{port}/metrics"
    auth = {"Authorization": f"Bearer {coordinator.api_key}"}
    with coordinator.http() as http:
        wait_devices(http, "host-1", 1)
        job = create_job(http, SCRIPT, timeout_s=120)
        tasks = add_tasks(http, job["id"], {"input": {}}, {"input": {}}, {"input": {"fail": True}})
        ends = [wait_terminal(http, task["id"]) for task in tasks]
    assert [(e["state"], e["failure_reason"]) for e in ends] == [
        ("success", None),
        ("success", None),
        ("failed", "script_error"),
    ]

    # The daemon's: an end is counted once the task's slot is free; the outbox empties once
    # the coordinator has acknowledged the ends.
    agent = wait_until(
        lambda: (
            (s := scrape(daemon_url))
            and value(s, "device_agent_outbox_items") == 0
            and value(s, "device_agent_devices", kind="browser", state="available") == 1
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
    assert value(agent, "device_agent_sandbox_limit_hits_total", limit="memory") == 0

    # The coordinator's: API key asked for by default.
    assert httpx.get(f"{coordinator.base_url}/metrics", timeout=10).status_code == 401
    coord = scrape(f"{coordinator.base_url}/metrics", auth)
    assert value(coord, "device_coordinator_tasks", state="success", reason="") == 2
    assert value(coord, "device_coordinator_tasks", state="failed", reason="script_error") == 1
    assert value(coord, "device_coordinator_dispatch_latency_seconds_count") == 3
    assert value(coord, "device_coordinator_hosts_connected") == 1

    # The coordinator stops: its hosts are closed with 1012 and come back once it is back.
    assert coordinator.proc is not None
    assert coordinator.proc.stop() == 0, coordinator.proc.log()[-4000:]
    assert "closing 1 host session(s) with 1012" in coordinator.proc.log()
    assert daemon.proc is not None
    daemon.proc.wait_log("the coordinator is restarting (1012")
    coordinator.start()
    with coordinator.http() as http:
        wait_devices(http, "host-1", 1)
    agent = scrape(daemon_url)
    assert value(agent, "device_agent_link_reconnects_total") == 1
    assert value(agent, "device_agent_link_up") == 1
