"""Poison input: size caps on scripts and inputs (413), and assignments too large for a frame."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.protocol import MAX_FRAME_BYTES, Assign, Finished, Reply, Request, Started, SubmitAck
from tests.coordinator.test_host_session import now, probe

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.coordinator.conftest import Farm

MIB = 1024 * 1024


def script_of(size: int) -> str:
    """A valid script of exactly `size` bytes."""
    head = "async def main(agent):\n    return {}\n#"
    return head + "x" * (size - len(head))


def input_of(size: int) -> dict[str, str]:
    """A task input whose compact JSON is exactly `size` bytes."""
    return {"p": "x" * (size - len('{"p":""}'))}


async def test_default_caps_refuse_a_big_script_and_input_with_413(farm: Farm) -> None:
    async with farm.client() as client:
        big = await client.post("/api/jobs", json={"name": "big", "script": script_of(MIB + 1)})
        assert big.status_code == 413
        assert big.json()["detail"] == (
            f"script is {MIB + 1} bytes, over the limit of {MIB} bytes (--max-script-bytes)"
        )
        job = await farm.make_job(client, script=script_of(MIB))
        heavy = await client.post(
            f"/api/jobs/{job['id']}/tasks", json={"tasks": [{"input": input_of(256 * 1024 + 1)}]}
        )
        assert heavy.status_code == 413
        assert heavy.json()["detail"] == (
            f"tasks[0].input is {256 * 1024 + 1} bytes of JSON, over the limit of {256 * 1024} "
            "bytes (--max-input-bytes)"
        )
        await farm.make_tasks(client, job["id"], {"input": input_of(256 * 1024)})


async def test_configured_caps_cover_every_way_in(start_farm: Callable[..., Farm]) -> None:
    farm = start_farm("--max-script-bytes", "1000", "--max-input-bytes", "100")
    async with farm.client() as client:
        job = await farm.make_job(client, script=script_of(1000))
        for method, path, body in (
            ("POST", "/api/jobs", {"name": "j", "script": script_of(1001)}),
            ("PUT", f"/api/jobs/{job['id']}/script", {"script": script_of(1001)}),
        ):
            refused = await client.request(method, path, json=body)
            assert refused.status_code == 413, path
            assert "over the limit of 1000 bytes (--max-script-bytes)" in refused.json()["detail"]
        tasks = {"tasks": [{"input": input_of(100)}, {"input": input_of(101)}]}
        refused = await client.post(f"/api/jobs/{job['id']}/tasks", json=tasks)
        assert refused.status_code == 413
        assert refused.json()["detail"].startswith("tasks[1].input is 101 bytes of JSON")
        listed = (await client.get("/api/tasks", params={"job_id": job["id"]})).json()
        assert listed["items"] == []  # all or none

        host_id, dev = farm.unique("host"), farm.unique("dev")
        async with farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host:
            [task] = await farm.make_tasks(client, job["id"], {"remote_device_id": dev})
            await host.credits(dev)
            assert (await host.next(Assign)).task.task_id == task["id"]
            await host.send(Started(task_id=task["id"], started_at=now()))
            await host.send(
                Request(
                    id="subs",
                    task_id=task["id"],
                    method="add_sub_tasks",
                    params={"job_variables": [input_of(100), input_of(101)]},
                )
            )
            reply = await host.next(Reply)
            assert (reply.id, reply.ok) == ("subs", False)
            assert reply.error == (
                "add_sub_tasks: job_variables[1] is 101 bytes of JSON, over the limit of 100 "
                "bytes (--max-input-bytes)"
            )
        listed = (await client.get("/api/tasks", params={"job_id": job["id"]})).json()
        assert len(listed["items"]) == 1  # no sub-task was added


def test_cap_flags_must_be_positive_byte_counts(farm: Farm) -> None:
    for flag in ("--max-script-bytes", "--max-input-bytes"):
        for value in ("0", "-5", "1.5", "lots"):
            done = farm.run_cli("serve", "--data-dir", "/tmp/x", flag, value)
            assert done.returncode == 2, (flag, value)
            assert f"argument {flag}" in done.stderr


async def test_an_assignment_over_the_frame_limit_fails_once_and_the_device_works_on(
    start_farm: Callable[..., Farm],
) -> None:
    # Caps above the frame limit: only dispatch stands between this task and the host's link.
    farm = start_farm("--max-script-bytes", str(64 * MIB), "--max-input-bytes", str(64 * MIB))
    host_id, dev = farm.unique("host"), farm.unique("dev")
    async with farm.client() as client:
        huge = await farm.make_job(client, script=script_of(MAX_FRAME_BYTES + 1))
        [doomed] = await farm.make_tasks(client, huge["id"], {})
        small = await farm.make_job(client)
        [fine] = await farm.make_tasks(client, small["id"], {})
        async with farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host:
            await host.credits(dev)
            assert (await host.next(Assign)).task.task_id == fine["id"]
            failed = await farm.task(client, doomed["id"])
            assert (failed["state"], failed["failure_reason"]) == ("failed", "assignment_too_large")
            assert failed["error"].startswith("the assign frame would be ")
            assert f"over the websocket frame limit of {MAX_FRAME_BYTES} bytes" in failed["error"]
            assert f"script {MAX_FRAME_BYTES + 1} bytes" in failed["error"]

            await host.send(
                Finished(
                    key="f-" + fine["id"], task_id=fine["id"], state="success", finished_at=now()
                )
            )
            assert (await host.next(SubmitAck)).ok
            await host.credits(dev)
            await probe(host)  # every frame sent before it has been handled
            assigns = [frame for frame in host.seen if isinstance(frame, Assign)]
            assert [a.task.task_id for a in assigns] == [fine["id"]]
        assert (await farm.task(client, doomed["id"]))["state"] == "failed"
    log = farm.coordinator.log_text()
    assert log.count(f"task {doomed['id']} failed (assignment_too_large)") == 1
