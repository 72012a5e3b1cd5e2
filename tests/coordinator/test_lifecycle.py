"""The task lifecycle at the coordinator (docs/jobs.md): retries and runs, priority, deadlines,
dependencies, and the bad input each refuses; fake hosts speak the real protocol."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.protocol import Accept, Assign, Assignment, Finished, Started, Submit, SubmitAck

if TYPE_CHECKING:
    import httpx

    from tests.coordinator.conftest import FakeHost, Farm


async def _take(host: FakeHost, *free: str) -> Assignment:
    """Offer `free` and take the next assignment: accepted and started."""
    await host.credits(*free)
    task = (await host.next(Assign)).task
    await host.send(Accept(task_id=task.task_id))
    await host.send(
        Started(task_id=task.task_id, started_at=datetime.now(UTC), attempt=task.attempt)
    )
    return task


async def _end(host: FakeHost, task: Assignment, state: str, reason: str | None = None) -> None:
    await host.send(
        Finished(
            key=f"f-{task.task_id}-{task.attempt}",
            task_id=task.task_id,
            state=state,  # type: ignore[arg-type]
            reason=reason,
            error=None if reason is None else f"it ended: {reason}",
            finished_at=datetime.now(UTC),
            attempt=task.attempt,
        )
    )
    assert (await host.next(SubmitAck)).ok


async def _refused(client: httpx.AsyncClient, url: str, body: dict[str, Any], field: str) -> str:
    response = await client.post(url, json=body)
    assert response.status_code == 422, response.text
    assert field in response.text, response.text
    return response.text


async def test_a_task_whose_device_is_lost_is_retried_on_another_device_after_its_delay(
    farm: Farm,
) -> None:
    host_id, d1, d2 = farm.unique("h"), farm.unique("d"), farm.unique("d")
    async with (
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(d1), farm.device(d2)]) as host,
    ):
        job = await farm.make_job(client, max_attempts=3, retry_delay_s=1.5, backoff=2)
        assert (job["max_attempts"], job["retry_delay_s"], job["backoff"]) == (3, 1.5, 2)
        [task] = await farm.make_tasks(client, job["id"], {"input": {}})
        first = await _take(host, d1)
        assert (first.task_id, first.attempt, first.remote_device_id) == (task["id"], 1, d1)
        await _end(host, first, "failed", "device_lost")

        waiting = await farm.task(client, task["id"])
        assert (waiting["state"], waiting["attempt"]) == ("pending", 2)
        retry_at = datetime.fromisoformat(waiting["retry_at"])
        second = await _take(host, d2)
        assert datetime.now(UTC) >= retry_at  # never given out before its delay ended
        assert (second.task_id, second.attempt, second.remote_device_id) == (task["id"], 2, d2)
        # A late end of the first attempt changes nothing now.
        await _end(host, first, "failed", "device_lost")
        await _end(host, second, "success")
        done = await farm.wait_state(client, task["id"], "success")
        assert done["attempt"] == 2 and done["device_id"] == d2

        runs = (await client.get(f"/api/tasks/{task['id']}/runs")).json()["runs"]
        assert [(r["attempt"], r["state"], r["failure_reason"], r["device_id"]) for r in runs] == [
            (1, "failed", "device_lost", d1),
            (2, "success", None, d2),
        ]
        assert runs[0]["error"] == "it ended: device_lost" and runs[0]["finished_at"]


async def test_a_script_failure_is_not_retried_and_a_task_override_wins(farm: Farm) -> None:
    host_id, dev = farm.unique("h"), farm.unique("d")
    async with (
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host,
    ):
        job = await farm.make_job(client, max_attempts=3, retry_delay_s=0)
        own, overridden = await farm.make_tasks(
            client,
            job["id"],
            {"input": {}},
            {"input": {}, "max_attempts": 1},
        )
        for task in (own, overridden):
            reason = "script_error" if task is own else "device_lost"
            run = await _take(host, dev)
            assert run.task_id == task["id"]
            await _end(host, run, "failed", reason)
            ended = await farm.wait_state(client, task["id"], "failed")
            assert (ended["attempt"], ended["failure_reason"]) == (1, reason)
            runs = (await client.get(f"/api/tasks/{task['id']}/runs")).json()["runs"]
            assert len(runs) == 1


async def test_higher_priority_goes_first_and_fifo_within_one(farm: Farm) -> None:
    host_id, dev = farm.unique("h"), farm.unique("d")
    async with (
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host,
    ):
        job = await farm.make_job(client)
        created = await farm.make_tasks(
            client,
            job["id"],
            *[{"input": {"name": n}, "priority": p} for n, p in [("a", 0), ("b", 5), ("c", -1)]],
            {"input": {"name": "d"}, "priority": 5},
        )
        names = {t["id"]: t["input"]["name"] for t in created}
        order = []
        for _ in created:
            run = await _take(host, dev)
            order.append(names[run.task_id])
            await _end(host, run, "success")
        assert order == ["b", "d", "a", "c"]


async def test_a_task_not_started_by_its_deadline_expires(farm: Farm) -> None:
    async with farm.client() as client:
        job = await farm.make_job(client)
        deadline = datetime.now(UTC) + timedelta(seconds=1)
        [task] = await farm.make_tasks(
            client, job["id"], {"input": {}, "deadline": deadline.isoformat()}
        )
        expired = await farm.wait_state(client, task["id"], "expired")
        assert expired["failure_reason"] == "deadline"
        assert datetime.fromisoformat(expired["deadline"]) == deadline
        assert expired["started_at"] is None


async def test_a_dependency_chain_runs_in_order_and_a_failed_dependency_skips(
    farm: Farm,
) -> None:
    host_id, dev = farm.unique("h"), farm.unique("d")
    async with (
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host,
    ):
        job = await farm.make_job(client)
        a, b, c = await farm.make_tasks(
            client,
            job["id"],
            {"input": {}, "ref": "c-first", "depends_on": ["b-first"]},
            {"input": {}, "ref": "b-first", "depends_on": ["a-first"]},
            {"input": {}, "ref": "a-first"},
        )
        assert [t["state"] for t in (a, b, c)] == ["blocked", "blocked", "pending"]
        assert [t["blocked_by"] for t in (a, b, c)] == [1, 1, 0]
        for expected in (c, b, a):
            run = await _take(host, dev)
            assert run.task_id == expected["id"]
            await _end(host, run, "success")
        await farm.wait_state(client, a["id"], "success")

        x, y = await farm.make_tasks(client, job["id"], {"input": {}}, {"input": {}})
        [z] = await farm.make_tasks(client, job["id"], {"input": {}, "depends_on": [y["id"]]})
        [w] = await farm.make_tasks(
            client, job["id"], {"input": {}, "depends_on": [x["id"], z["id"]]}
        )
        run = await _take(host, dev)
        assert run.task_id == x["id"]
        await _end(host, run, "success")
        run = await _take(host, dev)
        assert run.task_id == y["id"]
        await _end(host, run, "failed", "script_error")
        skipped_z = await farm.wait_state(client, z["id"], "skipped")
        assert skipped_z["failure_reason"] == "dependency_failed"
        assert skipped_z["error"] == f"dependency {y['id']} ended failed"
        skipped_w = await farm.wait_state(client, w["id"], "skipped")
        assert skipped_w["error"] == f"dependency {z['id']} ended skipped"
        # A task made on a dependency that already failed is skipped at once.
        [late] = await farm.make_tasks(client, job["id"], {"input": {}, "depends_on": [y["id"]]})
        assert (late["state"], late["error"]) == ("skipped", f"dependency {y['id']} ended failed")


async def test_bad_lifecycle_input_is_a_422_naming_the_field_and_creates_nothing(
    farm: Farm,
) -> None:
    async with farm.client() as client:
        script = "async def main(agent):\n    return {}\n"
        for field, value in [("retry_delay_s", -1), ("max_attempts", 0), ("backoff", 0.5)]:
            body = {"name": "j", "script": script, field: value}
            await _refused(client, "/api/jobs", body, field)
        await _refused(
            client,
            "/api/jobs",
            {"name": "j", "script": script, "retry_on": ["assignment_too_large"]},
            "retry_on",
        )
        job = await farm.make_job(client)
        url = f"/api/jobs/{job['id']}/tasks"
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        cases = [
            ({"input": {}, "priority": 101}, "priority"),
            ({"input": {}, "deadline": past}, "tasks[1].deadline"),
            ({"input": {}, "deadline": "2030-01-01T00:00:00"}, "tasks[1].deadline"),
            ({"input": {}, "depends_on": ["no-such-task"]}, "unknown task no-such-task"),
            ({"input": {}, "retry_delay_s": -2}, "retry_delay_s"),
            ({"input": {}, "max_attempts": 0}, "max_attempts"),
        ]
        for bad, field in cases:
            await _refused(client, url, {"tasks": [{"input": {}}, bad]}, field)
        cycle = [
            {"input": {}, "ref": "one", "depends_on": ["two"]},
            {"input": {}, "ref": "two", "depends_on": ["one"]},
        ]
        text = await _refused(client, url, {"tasks": cycle}, "depends_on")
        assert "cycle" in text
        listed = (await client.get("/api/tasks", params={"job_id": job["id"]})).json()
        assert listed["items"] == []

        stranger = farm.coordinator.create_api_key(farm.unique("stranger"))
        async with farm.client() as owner_client:
            [theirs] = await farm.make_tasks(owner_client, job["id"], {"input": {}})
        async with farm.client() as client_other:
            client_other.headers["Authorization"] = f"Bearer {stranger}"
            other_job = await farm.make_job(client_other)
            await _refused(
                client_other,
                f"/api/jobs/{other_job['id']}/tasks",
                {"tasks": [{"input": {}, "depends_on": [theirs["id"]]}]},
                "cannot read",
            )
        await client.post(f"/api/tasks/{theirs['id']}/cancel")  # no other test's device takes it


async def test_an_error_after_the_final_submission_is_kept_with_the_result(farm: Farm) -> None:
    host_id, dev = farm.unique("h"), farm.unique("d")
    async with (
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host,
    ):
        job = await farm.make_job(client)
        [task] = await farm.make_tasks(client, job["id"], {"input": {}})
        run = await _take(host, dev)
        assert run.task_id == task["id"]
        await host.send(
            Submit(
                key=f"s-{run.task_id}",
                task_id=run.task_id,
                seq=0,
                status="success",
                data={"n": 1},
                finish=True,
                attempt=run.attempt,
            )
        )
        assert (await host.next(SubmitAck)).ok
        await host.send(
            Finished(
                key=f"f-{run.task_id}",
                task_id=run.task_id,
                state="success",
                error="after its final submission: ValueError: boom",
                data={"n": 1},
                finished_at=datetime.now(UTC),
                attempt=run.attempt,
            )
        )
        assert (await host.next(SubmitAck)).ok

        async def recorded() -> dict[str, Any] | None:
            found = await farm.task(client, task["id"])
            return found if found["error"] else None

        done = await farm.poll(recorded, "the error to be recorded")
        assert (done["state"], done["result"]) == ("success", {"n": 1})
        assert done["error"] == "after its final submission: ValueError: boom"
