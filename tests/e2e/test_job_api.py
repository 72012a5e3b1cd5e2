"""Every rule of job-api.md through the real stack: coordinator process, daemon process, scripts.

One coordinator and one daemon (three browser devices) serve the whole module; each test is one
job whose script exercises many rules and returns what it saw. Owners: the API key `tests` owns
the running jobs; the key `other` owns the targets it shares (or not) with `tests`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

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
from tests.pg import fresh_database

EXAMPLES = Path(__file__).resolve().parents[2] / "scripts" / "examples"


@dataclass
class Stack:
    coordinator: Coordinator
    daemon: Daemon
    other_key: str
    devices: list[str]

    def http(self) -> httpx.Client:
        return self.coordinator.http()

    def other(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.coordinator.base_url,
            headers={"Authorization": f"Bearer {self.other_key}"},
            timeout=30,
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("jobapi")
    (root / "coordinator").mkdir()
    (root / "daemon").mkdir()
    coordinator = Coordinator(
        data_dir=root / "coordinator", port=free_port(), database=fresh_database()
    )
    coordinator.start()
    other_key = coordinator.cli("apikey", "create", "other")
    daemon = Daemon(
        dir=root / "daemon",
        coordinator=coordinator,
        browsers=[{"name": f"browser-{i}"} for i in (1, 2, 3)],
    )
    daemon.start()
    try:
        with coordinator.http() as http:
            devices = sorted(d["remote_device_id"] for d in wait_devices(http, "host-1", 3))
        yield Stack(coordinator, daemon, other_key, devices)
    finally:
        daemon.stop()
        coordinator.stop()


@pytest.fixture(autouse=True)
def idle_devices(stack: Stack) -> None:
    """Each test starts with every device free: the previous test's tasks are final at the
    coordinator as soon as their final submission lands, a moment before their devices are
    reset and offered again."""

    def all_free() -> bool:
        with stack.http() as http:
            devices = http.get("/api/devices").json()
        return sum(1 for d in devices if d["free"]) == len(stack.devices)

    wait_until(all_free, "every device of the stack to be free")


def job(http: httpx.Client, script: str, **fields: Any) -> str:
    return str(create_job(http, textwrap.dedent(script), timeout_s=90, **fields)["id"])


def share(stack: Stack, job_id: str, access: str) -> None:
    with stack.other() as other:
        r = other.put(f"/api/jobs/{job_id}/shares/tests", json={"access": access})
        assert r.status_code == 200, r.text


def run_one(
    http: httpx.Client, job_id: str, task_input: dict[str, Any], **pin: Any
) -> dict[str, Any]:
    (task,) = add_tasks(http, job_id, {"input": task_input, **pin})
    done = wait_terminal(http, task["id"])
    assert done["state"] == "success", done
    return done


# ---- submit_task_to_another_job, wrong arguments, and submit_task's own rules -----------------

DUMP_SCRIPT = """
import base64

def main(agent):
    job = agent.utils.job
    t = agent.arguments.job_variables["targets"]
    out = {}
    job.submit_task("running", {"step": "before"}, False,
                    [{"name": "ignored", "extension": "txt", "base64Data": "aGk="}])
    # the planned-tasks condition: give one target an open planned task (pinned to this busy device)
    me = agent.info.get_device_info()["id"]
    out["plan"] = job.add_sub_tasks([{"x": 1}], False, t["planned"], me).success
    for name, target in t.items():
        r = job.submit_task_to_another_job(target, {"lead": name})
        out[name] = [r.success, r.error, r.job_task_id, r.job_id]
    r = job.submitTaskToAnotherJob(t["own"], {"note": "pic"}, "failed",
                                   [agent.files.from_bytes("snapshot", ".bin", b"\\x00\\x01dump")])
    out["with_file"] = [r.success, r.job_task_id]
    out["declined"] = job.submit_task_to_another_job(t["own"], {}, "declined").job_task_id
    errors = []
    for call in (
        lambda: job.submit_task("done", {}, True),
        lambda: job.submit_task("running", [1], False),
        lambda: job.submit_task_to_another_job(t["own"], {"when": object()}),
        lambda: job.submit_task_to_another_job(t["own"], {}, "success"),
        lambda: job.submit_task_to_another_job(t["own"], {}, "pending",
                                               [{"name": "a", "extension": "txt"}]),
        lambda: job.add_sub_tasks("not a list"),
        lambda: job.add_sub_tasks([{"ok": 1}, 2]),
        lambda: job.get_sub_tasks([str(i) for i in range(101)]),
        lambda: job.get_sub_tasks("abc"),
        lambda: agent.utils.set_automation_variables(["waiting"]),
        lambda: agent.utils.save_checkpoint({"x": float("nan")}),
        lambda: agent.utils.sleep_random(5, 1),
    ):
        try:
            call()
            errors.append(None)
        except (TypeError, ValueError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    out["errors"] = errors
    out["after"] = job.get_current_task().success
    job.submit_task("success", out, True, [agent.files.from_bytes("final", "txt", b"final")])
    again = job.submit_task("success", {"done": 2}, True)
    print("again:", again.success, again.error)
    return {"returned": "ignored after a final submission"}
"""


def test_data_dump_rules_wrong_arguments_and_submit_rules(stack: Stack) -> None:
    with stack.http() as http, stack.other() as other:
        running = job(http, DUMP_SCRIPT, automation_id="auto-A")
        own = job(http, "def main(agent):\n    return {}\n", automation_id="auto-A")
        planned = job(http, "x = 1\n", automation_id="auto-A", allow_sub_tasks=True)
        targets = {
            "own": own,
            "planned": planned,
            "manual": job(http, "x = 1\n", automation_id="auto-A", type="manual"),
            "no_automation": job(http, "x = 1\n"),
            "other_automation": job(http, "x = 1\n", automation_id="auto-B"),
            "view": job(other, "x = 1\n", automation_id="auto-A"),
            "edit": job(other, "x = 1\n", automation_id="auto-A"),
            "unshared": job(other, "x = 1\n", automation_id="auto-A"),
            "missing": "no-such-job",
        }
        share(stack, targets["view"], "shared_view")
        share(stack, targets["edit"], "shared_edit")
        done = run_one(http, running, {"targets": targets})
        out = done["result"]

        # the running task: progress untouched by the dumps, files only from the final submission
        assert done["progress"] == {"step": "before"}
        assert [f["name"] for f in done["files"]] == ["final"]
        assert stack.daemon.proc is not None
        stack.daemon.proc.wait_log(f"again: False task {done['id']} already has a final submission")
        assert out["plan"] is True

        for name in ("own", "view", "edit"):
            ok, error, task_id, job_id = out[name]
            assert ok and error is None and job_id == targets[name], (name, out[name])
            dumped = http.get(f"/api/tasks/{task_id}").json()
            assert dumped["job_id"] == targets[name]
            assert dumped["state"] == "pending" and dumped["origin"] == "dump"
            assert dumped["result"] == {"lead": name}
        refusals = {name: out[name][1] for name in out if isinstance(out[name], list)}
        assert refusals["manual"].endswith(
            f"target job {targets['manual']} is a manual job, not devices_automation"
        )
        assert (
            f"target job {targets['no_automation']} has no automation_id"
            in refusals["no_automation"]
        )
        assert "has 1 planned task(s); a data-dump job must have none" in refusals["planned"]
        assert (
            "automation_id 'auto-B' but the running job has 'auto-A'"
            in refusals["other_automation"]
        )
        assert "owner (tests) neither owns target job" in refusals["unshared"]
        assert "target job no-such-job not found" in refusals["missing"]
        for name in ("manual", "no_automation", "planned", "other_automation", "unshared"):
            assert out[name][0] is False and out[name][2] is None
            assert refusals[name].startswith("submit_task_to_another_job: ")

        # a dump with a file: its public URL is in the proof under the file's name
        ok, file_task = out["with_file"]
        assert ok
        dumped = http.get(f"/api/tasks/{file_task}").json()
        assert dumped["state"] == "failed" and dumped["result"]["note"] == "pic"
        url = dumped["result"]["snapshot"]
        assert httpx.get(url, timeout=30).content == b"\x00\x01dump"  # no API key needed
        assert http.get(f"/api/tasks/{out['declined']}").json()["state"] == "declined"

        errors = out["errors"]
        assert errors[0].startswith("ValueError: submit_task: automation_status must be one of")
        assert errors[1] == "TypeError: submit_task: data must be a dict, not list"
        assert errors[2].startswith(
            "TypeError: submit_task_to_another_job: data is not JSON-serialisable"
        )
        assert errors[3] == (
            "ValueError: submit_task_to_another_job: status must be one of pending, failed, "
            "declined, not 'success'"
        )
        assert errors[4].startswith("ValueError: submit_task_to_another_job: files.0.base64Data")
        assert errors[5] == "TypeError: add_sub_tasks: job_variables must be a list, not str"
        assert errors[6] == "TypeError: add_sub_tasks: job_variables[1] must be a dict, not int"
        assert errors[7] == "ValueError: get_sub_tasks: at most 100 ids per call, got 101"
        assert errors[8] == "TypeError: get_sub_tasks: planned_task_ids must be a list, not str"
        assert errors[9] == (
            "TypeError: set_automation_variables: variables must be a dict, not list"
        )
        assert errors[10].startswith("ValueError: save_checkpoint: checkpoint is not JSON")
        assert errors[11].startswith("ValueError: sleep_random: need 0 <= min_ms <= max_ms")
        assert out["after"] is True
        assert stack.daemon.proc is not None and stack.daemon.proc.popen is not None
        assert stack.daemon.proc.popen.poll() is None


# ---- add_sub_tasks / get_sub_tasks ---------------------------------------------------------

SUB_TASKS_SCRIPT = """
async def main(agent):
    job = agent.utils.job
    v = agent.arguments.job_variables
    if v.get("role") == "child":
        cur = await job.get_current_task()
        return {"child": v["n"], "parent": cur.spawned_by}
    if v.get("role") == "hold":
        return {"held": True}
    me = (await agent.info.get_device_info())["id"]
    out = {"me": me, "task": (await agent.info.get_automation_info())["task_id"]}
    a = await job.add_sub_tasks([{"role": "child", "n": 1}, {"role": "child", "n": 2}])
    out["a"] = a.model_dump()
    b = await job.addSubTasks([{"k": 3}], False, v["edit_job"])
    out["b"] = b.model_dump()
    c = await job.add_sub_tasks({"job_variables": [{"role": "hold"}], "remote_device_id": me})
    out["c"] = c.model_dump()
    refused = {}
    for name, args in (
        ("view", ([{}], True, v["view_job"])),
        ("no_allow", ([{}], True, v["no_allow_job"])),
        ("missing", ([{}], True, "no-such-job")),
        ("bad_pin", ([{}], True, None, "no-such-device")),
    ):
        r = await job.add_sub_tasks(*args)
        refused[name] = [r.success, r.error]
    out["refused"] = refused
    ids = [i["planned_task_id"] for i in a.inserted_ids]
    while True:
        status = await job.getSubTasks(ids)
        if all(t["status"] in ("confirmed", "failed", "declined", "deleted")
               for t in status.tasks.values()):
            break
        await agent.utils.sleep_random(50, 100)
    out["done"] = status.model_dump()
    hold = c.inserted_ids[0]["planned_task_id"]
    out["hold_before"] = (await job.get_sub_tasks([hold])).tasks[hold]["status"]
    await job.submit_task("running", {"hold": hold}, False)
    while (await job.get_sub_tasks([hold])).tasks[hold]["status"] != "deleted":
        await agent.utils.sleepRandom(50, 100)
    mixed = await job.get_sub_tasks([hold, ids[0], "no-such-id", v["foreign"]])
    out["mixed"] = sorted(mixed.tasks)
    return out
"""


def test_sub_tasks_three_forms_pinning_statuses_and_access(stack: Stack) -> None:
    with stack.http() as http, stack.other() as other:
        parent_job = job(http, SUB_TASKS_SCRIPT)
        edit_job = job(other, "def main(agent):\n    return {'edit': True}\n", allow_sub_tasks=True)
        view_job = job(other, "x = 1\n", allow_sub_tasks=True)
        no_allow_job = job(other, "x = 1\n")
        share(stack, edit_job, "shared_edit")
        share(stack, view_job, "shared_view")
        share(stack, no_allow_job, "shared_edit")
        (parent,) = add_tasks(
            http,
            parent_job,
            {
                "input": {
                    "edit_job": edit_job,
                    "view_job": view_job,
                    "no_allow_job": no_allow_job,
                    "foreign": "someone-elses-id",
                }
            },
        )

        def hold_task() -> dict[str, Any] | None:
            progress = http.get(f"/api/tasks/{parent['id']}").json()["progress"]
            if not progress:
                return None
            tasks = http.get("/api/tasks", params={"job_id": parent_job}).json()["items"]
            held = [t for t in tasks if t["input"] == {"role": "hold"}]
            return held[0] if held else None

        held = wait_until(hold_task, "the pinned sub-task to exist")
        assert held["state"] == "pending" and held["parent_task_id"] == parent["id"]
        assert http.post(f"/api/tasks/{held['id']}/cancel").status_code == 200
        done = wait_terminal(http, parent["id"])
        assert done["state"] == "success", done
        out = done["result"]

    a, b, c = out["a"], out["b"], out["c"]
    assert a["success"] and [i["input"] for i in a["inserted_ids"]] == [
        '{"role": "child", "n": 1}',
        '{"role": "child", "n": 2}',
    ]
    ids = [i["planned_task_id"] for i in a["inserted_ids"]]
    # two free devices besides the parent's: both sub-tasks were assigned at once
    assert a["assignment_results"] == [{"planned_task_id": i, "assigned": True} for i in ids]
    assert b["success"] and b["assignment_results"] is None and len(b["inserted_ids"]) == 1
    assert c["success"] and c["assignment_results"] == [
        {"planned_task_id": c["inserted_ids"][0]["planned_task_id"], "assigned": False}
    ]
    assert held["remote_device_id"] == out["me"]
    assert out["hold_before"] == "planned"

    tasks = out["done"]["tasks"]
    assert sorted(tasks) == sorted(ids)
    for n, planned_id in enumerate(ids, start=1):
        sub = tasks[planned_id]
        assert sub["status"] == "confirmed"
        assert sub["parent_task_id"] == out["task"]
        assert sub["job_proof"] == {"child": n, "parent": out["task"]}
        assert sub["timeout"] == 90
    assert out["mixed"] == sorted([c["inserted_ids"][0]["planned_task_id"], ids[0]])

    refused = out["refused"]
    assert refused["view"][0] is False
    assert "neither owns it nor has shared_edit on it" in refused["view"][1]
    assert "does not allow sub-tasks (allow_sub_tasks is false)" in refused["no_allow"][1]
    assert "job no-such-job not found" in refused["missing"][1]
    assert "unknown remote_device_id no-such-device" in refused["bad_pin"][1]
    assert all(r[1].startswith("add_sub_tasks: ") for r in refused.values())

    with stack.http() as http:
        # the sub-task added without run_immediately on the shared job ran when a device was free
        edit_tasks = wait_until(
            lambda: [
                t
                for t in http.get("/api/tasks", params={"job_id": edit_job}).json()["items"]
                if t["state"] == "success"
            ],
            "the sub-task on the shared job to run",
        )
        assert edit_tasks[0]["parent_task_id"] == out["task"]
        assert edit_tasks[0]["input"] == {"k": 3}


# ---- automation variables, checkpoints, use_another_task, the seed's example ----------------

VARIABLES_SCRIPT = """
from agent.sdk import ActionFailed

async def main(agent):
    u = agent.utils
    out = {"empty": (await u.get_automation_variables()).automation_variables,
           "cp_none": (await u.get_latest_checkpoint()).checkpoint}
    out["set"] = (await u.setAutomationVariables({"stage": "a", "n": [1, 2]})).model_dump()
    out["get"] = (await u.getAutomationVariables()).automation_variables
    out["saved"] = (await u.saveCheckpoint({"page": 3})).success
    out["cp"] = (await u.get_latest_checkpoint()).checkpoint
    out["nobody_waiting"] = await u.job.use_another_task() is None
    out["kind"] = (await agent.info.getDeviceInfo())["kind"]
    out["automation_id"] = (await agent.info.get_automation_info())["automation_id"]
    out["arguments"] = [agent.arguments.job_variables, agent.arguments.automation_parameters]
    try:
        await agent.actions.shell("ls")
    except ActionFailed as exc:
        out["shell"] = str(exc)
    await u.job.submit_task("running", out, False)
    agent.control.stop_current_automation()
    return {"not": "reached"}
"""


def test_variables_checkpoints_info_arguments_and_stop(stack: Stack) -> None:
    with stack.http() as http:
        vars_job = job(http, VARIABLES_SCRIPT, automation_id="auto-V", parameters={"p": 1})
        done = run_one(http, vars_job, {"i": 2})
    assert done["result"] is None  # stop_current_automation: success with no data
    out = done["progress"]
    assert out.pop("shell") == "shell: action 'shell' is not available on browser devices"
    assert out == {
        "empty": {},
        "cp_none": None,
        "set": {
            "success": True,
            "error": None,
            "automation_variables": {"stage": "a", "n": [1, 2]},
        },
        "get": {"stage": "a", "n": [1, 2]},
        "saved": True,
        "cp": {"page": 3},
        "nobody_waiting": True,
        "kind": "browser",
        "automation_id": "auto-V",
        "arguments": [{"i": 2}, {"p": 1}],
    }
    assert done["automation_variables"] == {"stage": "a", "n": [1, 2]}


def test_the_seeds_waiting_pair_runs_as_translated(stack: Stack) -> None:
    script = (EXAMPLES / "waiting_pair.py").read_text()
    with stack.http() as http:
        pair_job = job(http, script)
        other_job = job(http, script)
        (a,) = add_tasks(http, pair_job, {"input": {"role": "A"}})
        wait_until(
            lambda: (http.get(f"/api/tasks/{a['id']}").json()["automation_variables"] or {}).get(
                "waiting"
            ),
            "task A to wait",
        )
        # a task of another job never gets A
        lonely = run_one(http, other_job, {"role": "B", "tries": 1})
        assert lonely["result"] == {"found": None}
        b = run_one(http, pair_job, {"role": "B"})
        done_a = wait_terminal(http, a["id"])
    assert b["result"] == {"found": a["id"], "preparedData": "value"}
    assert done_a["state"] == "success"
    assert done_a["automation_variables"] == {"waiting": False}
    assert done_a["result"] == {"handed": True}


# ---- fan-out limits -----------------------------------------------------------------------------

RUNAWAY_SCRIPT = """
def main(agent):
    r = agent.utils.job.add_sub_tasks([{"spawn": True}, {"spawn": True}], False)
    return {"success": r.success, "error": r.error}
"""


def test_a_runaway_fan_out_stops_at_its_job_limits(stack: Stack) -> None:
    """Each task adds two that do the same (the seed's fan-out, unbounded): with max_depth 2 and
    max_tasks 6, the root and one task of depth 1 add theirs; the other one of depth 1 meets
    max_tasks, both of depth 2 meet max_depth, and the job ends with 5 tasks."""
    with stack.http() as http:
        runaway = job(http, RUNAWAY_SCRIPT, max_depth=2, max_tasks=6)
        add_tasks(http, runaway, {"input": {}})

        def all_ended() -> list[dict[str, Any]] | None:
            tasks = http.get("/api/tasks", params={"job_id": runaway}).json()["items"]
            ended = len(tasks) == 5 and all(t["finished_at"] is not None for t in tasks)
            return tasks if ended else None

        tasks = wait_until(all_ended, "the runaway's five tasks to end", 120)
    assert all(t["state"] == "success" for t in tasks), tasks
    by_depth: dict[int, list[dict[str, Any]]] = {0: [], 1: [], 2: []}
    for task in tasks:
        by_depth[task["depth"]].append(task["result"])
    assert by_depth[0] == [{"success": True, "error": None}]
    assert sorted(r["success"] for r in by_depth[1]) == [False, True]
    [refused] = [r for r in by_depth[1] if not r["success"]]
    assert refused["error"].startswith(f"add_sub_tasks: job {runaway} holds 5 tasks")
    assert refused["error"].endswith("2 more would be over its max_tasks of 6")
    assert [r["error"] for r in by_depth[2]] == [
        f"add_sub_tasks: sub-task depth 3 is over job {runaway}'s max_depth of 2"
    ] * 2


# ---- the examples ------------------------------------------------------------------------------


def test_fan_out_example(stack: Stack, site: str) -> None:
    parent_device, *others = stack.devices
    with stack.http() as http:
        fan = job(http, (EXAMPLES / "fan_out.py").read_text())
        done = run_one(
            http,
            fan,
            {"urls": [site + "a", site + "b", site + "c"], "devices": others},
            remote_device_id=parent_device,
        )
        children = http.get("/api/tasks", params={"job_id": fan}).json()["items"][1:]
    assert done["result"]["statuses"] == ["confirmed"] * 3
    assert done["result"]["results"] == [
        {"url": site + u, "title": "Button page"} for u in ("a", "b", "c")
    ]
    assert sorted({c["device_id"] for c in children}) == sorted(others)
    assert all(c["parent_task_id"] == done["id"] for c in children)


def test_data_dump_example(stack: Stack, site: str) -> None:
    script = (EXAMPLES / "data_dump.py").read_text()
    with stack.http() as http:
        sink = job(http, "x = 1\n", automation_id="leads")
        writer = job(http, script, automation_id="leads")
        done = run_one(http, writer, {"url": site, "dump_job_id": sink})
        dumped = http.get(f"/api/tasks/{done['result']['job_task_id']}").json()
    assert done["result"]["dumped"] is True and done["result"]["queued"] is False
    assert dumped["job_id"] == sink and dumped["state"] == "pending"
    assert dumped["result"]["title"] == "Button page"
    picture = httpx.get(dumped["result"]["snapshot"], timeout=30).content
    assert picture[:2] == b"\xff\xd8"  # JPEG


# ---- errors that point at the author's line; records; parent_task_id and spawned_by ----------

AUTHOR_SCRIPT = """
from agent.sdk import ActionFailed

async def main(agent):
    job = agent.utils.job
    case = agent.arguments.job_variables["case"]
    if case == "typo":
        await agent.actions.tap(1, 2)
        await agent.actions.tapp(1, 2)
    if case == "name":
        return helper()
    if case == "unawaited":
        job.submit_task("success", {"sent": True}, True)
        return {"returned": True}
    cur = await job.get_current_task()
    info = await agent.info.get_automation_info()
    me = {"task_id": info.task_id, "parent": cur.parent_task_id, "spawned_by": cur.spawned_by}
    if case == "child":
        return me
    out = {"me": me, "kind": (await agent.info.get_device_info()).kind}
    try:
        await job.submit_task("success", {}, True, [
            {"name": "shot", "extension": "jpg", "base64Data": ""}])
    except ValueError as exc:
        out["empty"] = str(exc)
    try:
        agent.files.from_bytes("empty", "txt", b"")
    except ValueError as exc:
        out["from_bytes"] = str(exc)
    await agent.actions.browse("data:text/html,<input id=t type=text>")
    await agent.actions.save_file("a.txt", "hello")
    try:
        await agent.actions.set_input_files("#t", ["a.txt"])
    except ActionFailed as exc:
        out["set_input_files"] = str(exc)
    shot = await agent.actions.screenshot(200, 200, 50)
    out["shot"] = [shot.compressedWidth, shot["compressedWidth"]]
    root = await agent.actions.screen_content()
    out["node"] = [root.class_name, root["class_name"], root.children[0].bounds.left >= 0]
    sub = await job.add_sub_tasks([{"case": "child"}])
    planned = sub.inserted_ids[0].planned_task_id
    out["planned"] = [planned, sub.inserted_ids[0]["planned_task_id"], sub["success"]]
    while True:
        t = (await job.get_sub_tasks([planned])).tasks[planned]
        if t.status in ("confirmed", "failed", "declined", "deleted"):
            break
        await agent.utils.sleep_random(50, 100)
    out["sub"] = {"status": t.status, "parent": t.parent_task_id, "proof": t["job_proof"]}
    return out

def helper():
    result = 1
    return reslt
"""


def line_of(source: str, text: str) -> int:
    """The 1-based line of `source` holding `text`."""
    (n,) = [i for i, line in enumerate(source.splitlines(), start=1) if text in line]
    return n


def test_errors_name_the_authors_file_and_line_and_results_nest(stack: Stack) -> None:
    source = textwrap.dedent(AUTHOR_SCRIPT)
    with stack.http() as http:
        author = job(http, AUTHOR_SCRIPT, name="author_script.py", allow_sub_tasks=True)
        cases = ("typo", "name", "unawaited", "root")
        tasks = add_tasks(http, author, *({"input": {"case": c}} for c in cases))
        typo, name, unawaited, root = (wait_terminal(http, t["id"]) for t in tasks)

    assert (typo["state"], typo["failure_reason"]) == ("failed", "script_error")
    headline, *frames = typo["error"].splitlines()
    assert (
        headline == "AttributeError: 'Actions' object has no attribute 'tapp'. Did you mean: 'tap'?"
    )
    assert frames[:3] == [
        "Traceback (script frames, most recent call last):",
        f'  File "author_script.py", line {line_of(source, "actions.tapp")}, in main',
        "    await agent.actions.tapp(1, 2)",
    ]
    headline, *frames = name["error"].splitlines()
    assert headline == "NameError: name 'reslt' is not defined. Did you mean: 'result'?"
    assert [f.strip() for f in frames if f.strip().startswith("File")] == [
        f'File "author_script.py", line {line_of(source, "return helper()")}, in main',
        f'File "author_script.py", line {line_of(source, "return reslt")}, in helper',
    ]
    assert "agent/" not in typo["error"] + name["error"]  # none of our frames
    assert (unawaited["state"], unawaited["failure_reason"]) == ("failed", "script_error")
    forgot = line_of(source, 'job.submit_task("success", {"sent": True}, True)')
    assert unawaited["error"] == (
        f"agent.utils.job.submit_task(...) was never awaited (line {forgot})"
    )
    assert unawaited["result"] is None
    assert "never awaited" not in stack.daemon.log()  # no RuntimeWarning: the task says it

    assert root["state"] == "success", root
    out = root["result"]
    assert out["empty"] == (
        "submit_task: files.0.base64Data: is empty: a file needs at least one byte"
    )
    assert out["from_bytes"] == "files.from_bytes: data for 'empty' is empty: a file needs bytes"
    assert out["set_input_files"] == (
        "set_input_files: '#t' is <input type=text>, not an <input type=file>: "
        "files can only be set on a file input"
    )
    assert out["kind"] == "browser"
    assert out["shot"][0] == out["shot"][1] > 0
    assert out["node"][0] == out["node"][1] and out["node"][2] is True
    planned = out["planned"]
    assert planned[0] == planned[1] and planned[2] is True
    # parent_task_id is the task's own id (what its sub-tasks carry); spawned_by the adder's.
    assert out["me"] == {"task_id": root["id"], "parent": root["id"], "spawned_by": None}
    sub = out["sub"]
    assert sub["status"] == "confirmed" and sub["parent"] == root["id"]
    child_id = sub["proof"]["task_id"]
    assert sub["proof"] == {"task_id": child_id, "parent": child_id, "spawned_by": root["id"]}
