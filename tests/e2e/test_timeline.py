"""A run's timeline and artifacts through the real stack: coordinator process, daemon, sandboxed
script, headless Chromium; the coordinator killed (-9) and restarted while the script runs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from scripts.devstack import Coordinator, Daemon, add_tasks, create_job, wait_devices, wait_until

FAST_LINK = {
    "DEVICE_AGENT__COORDINATOR__CONNECT_TIMEOUT_S": "2",
    "DEVICE_AGENT__OUTBOX__ACK_WAIT_S": "1",
}
# Progress until one submission is queued (the coordinator is down) and a later one is not (it is
# back): the run spans the kill whatever the machine's speed. The loop is bounded all the same.
SCRIPT = """
from agent.sdk import ActionFailed

async def main(agent):
    agent.log.info("phase one", step=1)
    await agent.actions.evaluate("1 + 1")
    print("a printed line")
    try:
        await agent.actions.write_text("hunter2-secret")  # nothing has focus: it fails
    except ActionFailed:
        pass
    await agent.utils.job.submit_task("running", {"step": 1}, False)
    down = False
    for i in range(3000):
        result = await agent.utils.job.submit_task("running", {"i": i}, False)
        if result.queued:
            down = True
        elif down:
            break
        await agent.utils.sleep_random(50, 100)
    agent.log.warning("phase two", down=down)
    await agent.actions.screenshot(64, 64, 50, keep=True)
    raise RuntimeError("the script gives up")
"""


def timeline(http: httpx.Client, task_id: str, **params: Any) -> list[dict[str, Any]]:
    response = http.get(f"/api/tasks/{task_id}/timeline", params=params)
    response.raise_for_status()
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def _timeline_or_none(coordinator: Coordinator, task_id: str) -> list[dict[str, Any]] | None:
    try:
        with coordinator.http() as http:
            return timeline(http, task_id)
    except httpx.HTTPError:
        return None


@pytest.mark.timeout(300)
def test_a_runs_timeline_and_artifacts_survive_a_coordinator_kill(
    coordinator: Coordinator, make_daemon: Any
) -> None:
    daemon: Daemon = make_daemon(env=FAST_LINK)
    daemon.start()
    with coordinator.http() as http:
        wait_devices(http, "host-1", 1)
        for field, value in (("keep_screenshots", "yes"), ("screenshot_on_failure", 1)):
            refused = http.post("/api/jobs", json={"name": "j", "script": SCRIPT, field: value})
            assert refused.status_code == 422, refused.text
            assert field in refused.text, refused.text
        job = create_job(http, SCRIPT, timeout_s=200)
        assert job["screenshot_on_failure"] is True and job["keep_screenshots"] is False
        [task] = add_tasks(http, job["id"], {"input": {}})
        wait_until(
            lambda: any(e["kind"] == "submit" for e in timeline(http, task["id"])),
            "the first batch of the timeline at the coordinator",
            120,
        )
    assert coordinator.proc is not None
    coordinator.proc.kill()
    coordinator.start()

    def ended() -> list[dict[str, Any]] | None:
        entries = _timeline_or_none(coordinator, task["id"])
        return entries if entries and entries[-1]["name"] == "outcome" else None

    entries = wait_until(ended, "the run's last timeline entry", 180)
    with coordinator.http() as http:
        final = http.get(f"/api/tasks/{task['id']}").json()
        assert final["state"] == "failed" and final["failure_reason"] == "script_error", final
        assert timeline(http, task["id"], run=1) == entries
        assert timeline(http, task["id"], run=2) == []
        assert http.get(f"/api/tasks/{task['id']}/timeline", params={"run": 0}).status_code == 422
        listed = http.get(f"/api/tasks/{task['id']}/artifacts").json()["artifacts"]
        images = [http.get(a["url"]) for a in listed]

    # Every entry once, in the run's order, nothing lost across the kill.
    assert [e["seq"] for e in entries] == list(range(len(entries)))
    assert {e["run"] for e in entries} == {1}

    def index(kind: str, name: str, detail: str = "") -> int:
        for i, e in enumerate(entries):
            if e["kind"] == kind and e["name"] == name and e["detail"].startswith(detail):
                return i
        raise AssertionError(f"no {kind} {name} {detail!r} in {entries}")

    first_log = index("log", "log.info", "phase one step=1")
    evaluate = index("action", "evaluate", "js='1 + 1'")
    typed = index("action", "write_text", "text=<14 chars>")
    first_submit = index("submit", "submit_task", "automation_status='running'")
    second_log = index("log", "log.warning", "phase two down=True")
    shot = index("action", "screenshot", "max_width=64")
    kept = index("artifact", "screenshot")
    failure = index("artifact", "failure")
    outcome = index("note", "outcome", "failed (script_error)")
    assert first_log < evaluate < typed < first_submit < second_log < kept < shot < failure
    assert failure < outcome == len(entries) - 1
    index("log", "print", "a printed line")
    assert "hunter2" not in str(entries)
    assert entries[evaluate]["ok"] is True and entries[evaluate]["duration_s"] >= 0
    assert entries[typed]["ok"] is False and entries[typed]["error"]
    submits = [e for e in entries if e["kind"] == "submit"]
    assert len(submits) >= 3 and all(e["ok"] for e in submits)
    assert "RuntimeError: the script gives up" in entries[outcome]["detail"]

    # Both screenshots kept: the one the script asked for, and the one of the failure.
    assert [a["name"] for a in listed] == ["screenshot", "failure"]
    assert [a["seq"] for a in listed] == [entries[kept]["seq"], entries[failure]["seq"]]
    for artifact, image in zip(listed, images, strict=True):
        assert image.status_code == 200
        assert image.content[:2] == b"\xff\xd8" and len(image.content) == artifact["size"]
