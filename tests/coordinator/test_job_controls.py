"""Job controls and fan-out limits against a real coordinator, with fake hosts on real websockets:
pause, resume, cancel (a job's, and a task's with its sub-tasks), delete, the job list, and the
limits on sub-tasks (docs/jobs.md).

Every task here is pinned to a device of the test's own host, so no test's work reaches another's.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from agent.protocol import (
    Accept,
    Assign,
    Cancel,
    FileBlob,
    Finished,
    Reply,
    Request,
    Started,
    Submit,
    SubmitAck,
)
from tests.coordinator.conftest import api_client

if TYPE_CHECKING:
    from tests.coordinator.conftest import FakeHost, Farm


async def start(host: FakeHost, task_id: str) -> None:
    await host.send(Accept(task_id=task_id))
    await host.send(Started(task_id=task_id, started_at=datetime.now(UTC)))


async def end(host: FakeHost, task_id: str, state: str = "success") -> None:
    await host.send(
        Finished(key=uuid.uuid4().hex, task_id=task_id, state=state, finished_at=datetime.now(UTC))
    )
    assert (await host.next(SubmitAck)).ok


async def ask(host: FakeHost, task_id: str, method: str, **params: Any) -> Reply:
    """A script's request for its task; the host's next frame must be the reply."""
    request = Request(id=uuid.uuid4().hex, task_id=task_id, method=method, params=params)
    await host.send(request)
    reply = await host.next(Reply)
    assert reply.id == request.id
    return reply


async def job_tasks(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    response = await client.get("/api/tasks", params={"job_id": job_id, "limit": 500})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def pinned(device_id: str, **task_input: Any) -> dict[str, Any]:
    return {"input": task_input, "remote_device_id": device_id}


async def test_pause_resume_and_cancel_with_running_tasks_on_two_devices(farm: Farm) -> None:
    host_id, d1, d2 = farm.unique("host"), farm.unique("d1"), farm.unique("d2")
    devices = [farm.device(d1), farm.device(d2)]
    async with farm.client() as client, farm.host(farm.token(host_id), host_id, devices) as host:
        job = await farm.make_job(client)
        url = f"/api/jobs/{job['id']}"
        t1, t2, t3, t4, t5 = (
            t["id"]
            for t in await farm.make_tasks(
                client, job["id"], *(pinned(d, n=n) for n, d in enumerate([d1, d2, d1, d2, d1]))
            )
        )
        await host.credits(d1, d2)
        assert {(await host.next(Assign)).task.task_id for _ in range(2)} == {t1, t2}
        await start(host, t1)
        await start(host, t2)

        paused = await client.post(f"{url}/pause")
        assert paused.status_code == 200, paused.text
        assert paused.json()["paused"] is True
        assert (await client.get(url)).json()["paused"] is True
        # Running tasks go on and end as they would.
        await end(host, t1)
        await host.credits(d1)
        # A newer task of another job, for the same device, is what the device gets: the paused
        # job's older t3 was passed over.
        other = await farm.make_job(client)
        [newer] = await farm.make_tasks(client, other["id"], pinned(d1))
        assert (await host.next(Assign)).task.task_id == newer["id"]
        await start(host, newer["id"])
        await end(host, newer["id"])
        await host.send(
            Submit(key=uuid.uuid4().hex, task_id=t2, seq=0, status="running", data={}, finish=False)
        )
        assert (await host.next(SubmitAck)).ok
        await end(host, t2)
        states = {t["id"]: t["state"] for t in await job_tasks(client, job["id"])}
        assert states == {
            t1: "success",
            t2: "success",
            t3: "pending",
            t4: "pending",
            t5: "pending",
        }

        resumed = await client.post(f"{url}/resume")
        assert resumed.json()["paused"] is False
        await host.credits(d1, d2)
        assert {(await host.next(Assign)).task.task_id for _ in range(2)} == {t3, t4}
        await start(host, t3)
        await start(host, t4)
        added = await ask(
            host,
            t3,
            "add_sub_tasks",
            job_variables=[{"child": 1}],
            remote_device_id=d1,
            run_immediately=False,
        )
        assert added.ok, added.error

        cancelled = await client.post(f"{url}/cancel", json={"reason": "runaway fan-out"})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json() == {
            "job_id": job["id"],
            "tasks": 3,
            "running": 2,
            "planned_tasks": 1,
        }
        stops = [await host.next(Cancel) for _ in range(2)]
        assert {stop.task_id for stop in stops} == {t3, t4}
        # A cancelled task's script can add nothing more.
        refused = await ask(host, t4, "add_sub_tasks", job_variables=[{"child": 2}])
        assert not refused.ok
        assert "not running" in str(refused.error)
        await end(host, t3, "cancelled")
        await end(host, t4, "cancelled")

        tasks = {t["id"]: t for t in await job_tasks(client, job["id"])}
        [child] = [t for t in tasks.values() if t["parent_task_id"] == t3]
        assert (child["input"], child["depth"]) == ({"child": 1}, 1)
        for task_id in (t3, t4, t5, child["id"]):
            task = tasks[task_id]
            assert (task["state"], task["failure_reason"], task["error"]) == (
                "cancelled",
                "job_cancelled",
                "runaway fan-out",
            ), task
            assert task["finished_at"] is not None
        assert [tasks[t]["state"] for t in (t1, t2)] == ["success", "success"]

        # Cancel is an action, not a state: the job takes new tasks, and may be cancelled again.
        [late] = await farm.make_tasks(client, job["id"], pinned(d1))
        again = await client.post(f"{url}/cancel")
        assert again.json() == {"job_id": job["id"], "tasks": 1, "running": 0, "planned_tasks": 0}
        late_now = await farm.task(client, late["id"])
        assert (late_now["state"], late_now["error"]) == ("cancelled", None)


async def test_a_runaway_is_stopped_at_its_fan_out_limits(farm: Farm) -> None:
    host_id, d1, d2 = farm.unique("host"), farm.unique("d1"), farm.unique("d2")
    devices = [farm.device(d1), farm.device(d2)]
    async with farm.client() as client, farm.host(farm.token(host_id), host_id, devices) as host:
        job = await farm.make_job(client, max_depth=1, max_tasks=4)
        assert (job["max_depth"], job["max_tasks"]) == (1, 4)
        [root] = await farm.make_tasks(client, job["id"], pinned(d1))
        await host.credits(d1)
        assert (await host.next(Assign)).task.task_id == root["id"]
        await start(host, root["id"])

        two = [{"n": 1}, {"n": 2}]
        first = await ask(
            host, root["id"], "add_sub_tasks", job_variables=two, run_immediately=False
        )
        assert first.ok, first.error
        over = await ask(
            host, root["id"], "add_sub_tasks", job_variables=two, run_immediately=False
        )
        assert not over.ok
        assert over.error == (
            f"job {job['id']} holds 3 tasks (planned ones included); 2 more would "
            "be over its max_tasks of 4"
        )
        refused = await client.post(
            f"/api/jobs/{job['id']}/tasks", json={"tasks": [pinned(d1), pinned(d1)]}
        )
        assert refused.status_code == 409
        assert "2 more would be over its max_tasks of 4" in refused.json()["detail"]

        last = await ask(
            host,
            root["id"],
            "add_sub_tasks",
            job_variables=[{"n": 3}],
            remote_device_id=d2,
            run_immediately=True,
        )
        assert last.ok, last.error
        assert last.result is not None
        assert [r["assigned"] for r in last.result["assignment_results"]] == [False]
        await host.credits(d2)
        child = (await host.next(Assign)).task
        assert (child.input, child.parent_task_id) == ({"n": 3}, root["id"])
        await start(host, child.task_id)
        deeper = await ask(host, child.task_id, "add_sub_tasks", job_variables=[{"n": 4}])
        assert not deeper.ok
        assert deeper.error == (f"sub-task depth 2 is over job {job['id']}'s max_depth of 1")
        assert (await farm.task(client, root["id"]))["depth"] == 0
        assert (await farm.task(client, child.task_id))["depth"] == 1

        # One cancel stops all of it: the two running tasks and the two planned ones.
        stopped = (await client.post(f"/api/jobs/{job['id']}/cancel")).json()
        assert (stopped["tasks"], stopped["running"], stopped["planned_tasks"]) == (2, 2, 2)
        assert {(await host.next(Cancel)).task_id for _ in range(2)} == {root["id"], child.task_id}
        tasks = await job_tasks(client, job["id"])
        assert len(tasks) == 4
        assert all(t["state"] == "cancelled" for t in tasks)


async def test_cancelling_a_task_cancels_its_sub_tasks_unless_asked_not_to(farm: Farm) -> None:
    host_id, d1, d2 = farm.unique("host"), farm.unique("d1"), farm.unique("d2")
    devices = [farm.device(d1), farm.device(d2)]
    async with farm.client() as client, farm.host(farm.token(host_id), host_id, devices) as host:
        job = await farm.make_job(client)
        [root] = await farm.make_tasks(client, job["id"], pinned(d1))
        root_id = root["id"]
        await host.credits(d1)
        await host.next(Assign)
        await start(host, root_id)
        for items, now in (([{"c": 1}, {"c": 2}], True), ([{"p": 1}], False)):
            reply = await ask(
                host,
                root_id,
                "add_sub_tasks",
                job_variables=items,
                remote_device_id=d2,
                run_immediately=now,
            )
            assert reply.ok, reply.error
        await host.credits(d2)
        c1 = (await host.next(Assign)).task
        assert c1.input == {"c": 1}
        await start(host, c1.task_id)
        grandchild = await ask(
            host,
            c1.task_id,
            "add_sub_tasks",
            job_variables=[{"g": 1}],
            remote_device_id=d2,
            run_immediately=False,
        )
        assert grandchild.ok, grandchild.error

        bad = await client.post(f"/api/tasks/{root_id}/cancel", params={"sub_tasks": "yes"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["query", "sub_tasks"]

        alone = await client.post(f"/api/tasks/{c1.task_id}/cancel", params={"sub_tasks": "false"})
        assert alone.status_code == 200, alone.text
        assert (alone.json()["state"], alone.json()["sub_tasks_cancelled"]) == ("cancelled", 0)
        assert (await host.next(Cancel)).task_id == c1.task_id
        await end(host, c1.task_id, "cancelled")

        tree = await client.post(f"/api/tasks/{root_id}/cancel")
        assert tree.status_code == 200, tree.text
        assert (tree.json()["state"], tree.json()["failure_reason"]) == ("cancelled", "cancelled")
        # c2 (pending), the planned p, and c1's planned g (through c1, cancelled before).
        assert tree.json()["sub_tasks_cancelled"] == 3
        assert (await host.next(Cancel)).task_id == root_id
        await end(host, root_id, "cancelled")
        assert (await client.post(f"/api/tasks/{root_id}/cancel")).status_code == 409

        tasks = {
            next(iter(t["input"].items())): t
            for t in await job_tasks(client, job["id"])
            if t["input"]
        }
        assert tasks["c", 1]["failure_reason"] == "cancelled"
        for key, parent, depth in (
            (("c", 2), root_id, 1),
            (("p", 1), root_id, 1),
            (("g", 1), c1.task_id, 2),
        ):
            task = tasks[key]
            assert (task["state"], task["failure_reason"]) == ("cancelled", "parent_cancelled")
            assert task["error"] == f"cancelled with task {root_id}"
            assert (task["parent_task_id"], task["depth"]) == (parent, depth)


async def test_the_cascade_stays_in_the_jobs_the_caller_may_change(farm: Farm) -> None:
    """A shared_edit user of the root's job cancels its sub-tasks there, not those its script
    added to a job that user may not change."""
    host_id, d1, d2 = farm.unique("host"), farm.unique("d1"), farm.unique("d2")
    bob_name, carol_name = farm.unique("bob"), farm.unique("carol")
    bob_key = farm.coordinator.create_api_key(bob_name)
    carol_key = farm.coordinator.create_api_key(carol_name)
    devices = [farm.device(d1), farm.device(d2)]
    async with (
        farm.client() as client,
        api_client(farm.coordinator, bob_key) as bob,
        api_client(farm.coordinator, carol_key) as carol,
        farm.host(farm.token(host_id), host_id, devices) as host,
    ):
        mine = await farm.make_job(client)
        await client.put(
            f"/api/jobs/{mine['id']}/shares/{carol_name}", json={"access": "shared_edit"}
        )
        theirs = await farm.make_job(bob, allow_sub_tasks=True)
        await bob.put(f"/api/jobs/{theirs['id']}/shares/tests", json={"access": "shared_edit"})
        [root] = await farm.make_tasks(client, mine["id"], pinned(d1))
        await host.credits(d1)
        await host.next(Assign)
        await start(host, root["id"])
        for target in (mine, theirs):
            reply = await ask(
                host,
                root["id"],
                "add_sub_tasks",
                job_variables=[{}],
                job_id=target["id"],
                remote_device_id=d2,
                run_immediately=True,
            )
            assert reply.ok, reply.error

        cancelled = await carol.post(f"/api/tasks/{root['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["sub_tasks_cancelled"] == 1
        assert (await host.next(Cancel)).task_id == root["id"]
        [own_child] = [t for t in await job_tasks(client, mine["id"]) if t["parent_task_id"]]
        assert own_child["failure_reason"] == "parent_cancelled"
        [their_child] = await job_tasks(bob, theirs["id"])
        assert (their_child["state"], their_child["parent_task_id"]) == ("pending", root["id"])
        await bob.post(f"/api/jobs/{theirs['id']}/cancel")


async def test_delete_is_refused_while_a_task_runs_then_removes_everything(farm: Farm) -> None:
    host_id, dev = farm.unique("host"), farm.unique("dev")
    editor_name = farm.unique("editor")
    editor_key = farm.coordinator.create_api_key(editor_name)
    data = b"bytes of a file " + uuid.uuid4().bytes
    blob = FileBlob(name="shot", extension="bin", data_b64=base64.b64encode(data).decode())
    stored = farm.coordinator.data_dir / "files" / hashlib.sha256(data).hexdigest()[:2]
    stored = stored / hashlib.sha256(data).hexdigest()

    async def run_with_file(host: FakeHost, task_id: str) -> None:
        await host.credits(dev)
        assert (await host.next(Assign)).task.task_id == task_id
        await start(host, task_id)
        final = Submit(
            key=uuid.uuid4().hex,
            task_id=task_id,
            seq=0,
            status="success",
            data={},
            finish=True,
            files=[blob],
        )
        await host.send(final)
        assert (await host.next(SubmitAck)).ok
        await end(host, task_id)

    async with (
        farm.client() as client,
        api_client(farm.coordinator, editor_key) as editor,
        farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host,
    ):
        doomed, kept = await farm.make_job(client), await farm.make_job(client)
        url = f"/api/jobs/{doomed['id']}"
        await client.put(f"{url}/shares/{editor_name}", json={"access": "shared_edit"})
        await client.put(f"{url}/script", json={"script": "def main(agent):\n    return {}\n"})
        first, busy = await farm.make_tasks(client, doomed["id"], pinned(dev), pinned(dev))
        [other] = await farm.make_tasks(client, kept["id"], pinned(dev))
        await run_with_file(host, first["id"])
        assert stored.exists()
        await host.credits(dev)
        assert (await host.next(Assign)).task.task_id == busy["id"]
        await start(host, busy["id"])
        planned = await ask(
            host,
            busy["id"],
            "add_sub_tasks",
            job_variables=[{}],
            remote_device_id=dev,
            run_immediately=False,
        )
        assert planned.ok, planned.error

        refused = await client.delete(url)
        assert refused.status_code == 409
        assert f"job {doomed['id']} has 1 task(s) assigned or running" in refused.json()["detail"]
        not_owner = await editor.delete(url)
        assert not_owner.status_code == 403
        assert f"{editor_name} is not its owner (access: shared_edit)" in not_owner.text
        await end(host, busy["id"])
        # The other job stores the same bytes: they stay while its file names them.
        await run_with_file(host, other["id"])

        deleted = await client.delete(url)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {
            "job_id": doomed["id"],
            "tasks": 2,
            "planned_tasks": 1,
            "files": 1,
        }
        assert (await client.get(url)).status_code == 404
        assert (await editor.get(url)).status_code == 404
        assert (await client.get(f"/api/tasks/{first['id']}")).status_code == 404
        assert (await client.delete(url)).status_code == 404
        assert stored.exists()
        [file] = (await farm.task(client, other["id"]))["files"]
        assert (await client.get(file["url"])).content == data

        assert (await client.delete(f"/api/jobs/{kept['id']}")).json()["files"] == 1
        assert not stored.exists()


async def test_limits_are_validated_and_changed_like_other_fields(farm: Farm) -> None:
    async with farm.client() as client:
        job = await farm.make_job(client)
        assert (job["paused"], job["max_depth"], job["max_tasks"]) == (False, 5, 10000)
        for field, value in (
            ("max_depth", 0),
            ("max_depth", -1),
            ("max_depth", "3"),
            ("max_depth", 2.5),
            ("max_depth", True),
            ("max_depth", 101),
            ("max_tasks", 0),
            ("max_tasks", 1_000_001),
        ):
            body = {"name": "j", "script": "x = 1\n", field: value}
            response = await client.post("/api/jobs", json=body)
            assert response.status_code == 422, (field, value)
            assert response.json()["detail"][0]["loc"] == ["body", field], (field, value)
        url = f"/api/jobs/{job['id']}"
        for body in ({"max_depth": None}, {"max_tasks": None}, {"max_tasks": -5}):
            response = await client.patch(url, json=body)
            assert response.status_code == 422, body
            assert next(iter(body)) in response.text
        changed = (await client.patch(url, json={"max_depth": 2, "max_tasks": 3})).json()
        assert (changed["max_depth"], changed["max_tasks"]) == (2, 3)
        refused = await client.post(f"{url}/tasks", json={"tasks": [{}] * 4})
        assert refused.status_code == 409
        assert refused.json()["detail"] == (
            f"job {job['id']} holds 0 tasks (planned ones included); 4 more would be over its "
            "max_tasks of 3"
        )
        bad = await client.post(f"{url}/cancel", json={"reason": 5})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "reason"]
        for action in ("pause", "resume", "cancel"):
            assert (await client.post(f"/api/jobs/nope/{action}")).status_code == 404


async def test_the_job_list_pages_the_callers_own_and_shared_jobs(farm: Farm) -> None:
    alice_name, bob_name = farm.unique("alice"), farm.unique("bob")
    alice_key = farm.coordinator.create_api_key(alice_name)
    bob_key = farm.coordinator.create_api_key(bob_name)
    async with (
        api_client(farm.coordinator, alice_key) as alice,
        api_client(farm.coordinator, bob_key) as bob,
    ):
        crawl = await farm.make_job(alice, name="Crawl 50% of it")
        manual = await farm.make_job(alice, name="review", type="manual")
        quiet = await farm.make_job(alice, name="crawl later")
        await alice.post(f"/api/jobs/{quiet['id']}/pause")
        seen = await farm.make_job(bob, name="bob's crawl")
        unseen = await farm.make_job(bob, name="bob's secret")
        await bob.put(f"/api/jobs/{seen['id']}/shares/{alice_name}", json={"access": "shared_view"})
        mine = [crawl["id"], manual["id"], quiet["id"]]

        async def ids(**params: Any) -> list[str]:
            response = await alice.get("/api/jobs", params=params)
            assert response.status_code == 200, response.text
            return [job["id"] for job in response.json()["items"]]

        pages, cursor = [], None
        while True:
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = (await alice.get("/api/jobs", params=params)).json()
            pages.append([job["id"] for job in page["items"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == [mine, [seen["id"]]]
        assert unseen["id"] not in await ids(limit=500)
        assert await ids(owner="me") == mine
        assert await ids(owner="shared") == [seen["id"]]
        assert await ids(type="manual") == [manual["id"]]
        assert await ids(paused="true") == [quiet["id"]]
        assert await ids(paused="false", owner="me") == [crawl["id"], manual["id"]]
        assert await ids(name="CRAWL") == [crawl["id"], quiet["id"], seen["id"]]
        assert await ids(name="50%") == [crawl["id"]]
        [listed] = (await alice.get("/api/jobs", params={"owner": "shared"})).json()["items"]
        assert listed == (await alice.get(f"/api/jobs/{seen['id']}")).json()

        for params in (
            {"cursor": "not-a-cursor"},
            {"paused": "yes"},
            {"owner": "bob"},
            {"limit": 0},
            {"limit": 501},
            {"type": "other"},
        ):
            response = await alice.get("/api/jobs", params=params)
            assert response.status_code == 422, params
            assert response.json()["detail"][0]["loc"] == ["query", next(iter(params))], params

        # Pausing needs the owner or shared_edit; a shared_view is told what access it has.
        refused = await alice.post(f"/api/jobs/{seen['id']}/pause")
        assert refused.status_code == 403
        assert f"{alice_name} is not its owner or shared_edit (access: shared_view)" in (
            refused.text
        )
        await bob.put(f"/api/jobs/{seen['id']}/shares/{alice_name}", json={"access": "shared_edit"})
        assert (await alice.post(f"/api/jobs/{seen['id']}/pause")).json()["paused"] is True
        assert (await alice.post(f"/api/jobs/{seen['id']}/cancel")).status_code == 200
