"""A fake host on a real websocket against a real coordinator process: docs/protocol.md."""

from __future__ import annotations

import base64
import io
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from PIL import Image
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agent.protocol import (
    AUTH_HEADER,
    MAX_FRAME_BYTES,
    Accept,
    Assign,
    Cancel,
    Error,
    FileBlob,
    Finished,
    Heartbeat,
    Hello,
    Reject,
    Reply,
    Request,
    Started,
    Submit,
    SubmitAck,
)
from tests.coordinator.conftest import api_client

if TYPE_CHECKING:
    from tests.coordinator.conftest import FakeHost, Farm

SCRIPT = "async def main(agent):\n    return {}\n"


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 48), (200, 30, 90)).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def now() -> datetime:
    return datetime.now(UTC)


def submit(task_id: str, seq: int, status: str, finish: bool, **extra: Any) -> Submit:
    return Submit.model_validate(
        {
            "key": extra.pop("key", uuid.uuid4().hex),
            "task_id": task_id,
            "seq": seq,
            "status": status,
            "data": extra.pop("data", {}),
            "finish": finish,
            **extra,
        }
    )


async def probe(host: FakeHost) -> Reply:
    """A request whose reply proves every frame sent before it was handled (frames are ordered)."""
    await host.send(Request(id=uuid.uuid4().hex, task_id="none", method="ping"))
    return await host.next(Reply)


async def pinned_task(farm: Farm, client: httpx.AsyncClient, device_id: str, **task: Any) -> str:
    job = await farm.make_job(client, parameters={"p": 1}, automation_id="auto-7")
    [created] = await farm.make_tasks(client, job["id"], {"remote_device_id": device_id, **task})
    return str(created["id"])


async def started_task(
    farm: Farm, client: httpx.AsyncClient, host: FakeHost, dev: str, **task: Any
) -> str:
    """A task pinned to `dev`, assigned to `host` and reported started by it."""
    task_id = await pinned_task(farm, client, dev, **task)
    await host.credits(dev)
    await host.next(Assign)
    await host.send(Started(task_id=task_id, started_at=now()))
    return task_id


async def test_task_life_with_progress_result_and_file(farm: Farm) -> None:
    host_id, dev = farm.unique("host"), farm.unique("dev")
    token = farm.token(host_id)
    picture = jpeg_bytes()
    async with farm.client() as client, farm.host(token, host_id, [farm.device(dev)]) as host:
        assert host.welcome is not None
        assert host.welcome.protocol_version == 1
        assert host.welcome.max_frame_bytes == MAX_FRAME_BYTES
        await farm.poll_log(f"host {host_id} connected (session {host.welcome.session_id})")
        task_id = await pinned_task(farm, client, dev, input={"url": "http://x"}, timeout_s=50)
        await host.credits(dev)
        assignment = (await host.next(Assign)).task
        assert assignment.task_id == task_id
        assert assignment.remote_device_id == dev
        assert assignment.script_source == SCRIPT
        assert assignment.input == {"url": "http://x"}
        assert assignment.parameters == {"p": 1}
        assert assignment.automation_id == "auto-7"
        assert (assignment.timeout_s, assignment.attempt) == (50, 1)
        assert (await farm.task(client, task_id))["state"] == "assigned"

        await host.send(Accept(task_id=task_id))
        await host.send(Started(task_id=task_id, started_at=now()))
        await host.send(submit(task_id, 0, "running", False, data={"step": 1}, key="p0"))
        assert await host.next(SubmitAck) == SubmitAck(key="p0", ok=True)
        running = await farm.task(client, task_id)
        assert (running["state"], running["progress"]) == ("running", {"step": 1})
        assert running["device_id"] == dev
        assert running["host_id"] == host_id

        blob = FileBlob(name="page", extension=".jpg", data_b64=base64.b64encode(picture).decode())
        final = submit(task_id, 1, "success", True, data={"title": "t"}, files=[blob])
        await host.send(final)
        assert await host.next(SubmitAck) == SubmitAck(key=final.key, ok=True)
        await host.send(final)  # a resend after a lost ack: same key, no second effect
        assert await host.next(SubmitAck) == SubmitAck(key=final.key, ok=True)
        again = submit(task_id, 2, "failed", True, data={"late": True})
        await host.send(again)
        refused = await host.next(SubmitAck)
        assert not refused.ok
        assert refused.error is not None
        assert "task already finished" in refused.error
        await host.send(
            Finished(key="f-" + task_id, task_id=task_id, state="success", finished_at=now())
        )
        assert (await host.next(SubmitAck)).ok

        done = await farm.poll(
            lambda: _finished(farm, client, task_id), f"task {task_id} finished_at"
        )
        assert done["state"] == "success"
        assert done["result"] == {"title": "t"}
        assert done["progress"] == {"step": 1}
        assert done["duration_s"] is not None
        [file] = done["files"]
        assert (file["name"], file["extension"], file["size"]) == ("page", "jpg", len(picture))
        download = await client.get(file["url"])
        assert download.status_code == 200
        assert download.headers["content-type"] == "image/jpeg"
        assert download.content == picture
        assert file["url"].startswith(farm.coordinator.base_url)
        stranger = farm.coordinator.create_api_key(farm.unique("stranger"))
        async with api_client(farm.coordinator, stranger) as other:
            assert (await other.get(file["url"])).status_code == 403


async def _finished(farm: Farm, client: httpx.AsyncClient, task_id: str) -> dict[str, Any] | None:
    task = await farm.task(client, task_id)
    return task if task["finished_at"] is not None else None


async def test_file_names_from_a_host_are_stored_and_served_reduced(farm: Farm) -> None:
    host_id, dev = farm.unique("host"), farm.unique("dev")
    data_b64 = base64.b64encode(b"payload").decode()
    hostile = [
        FileBlob(name="../../../etc/passwd", extension="/../sh", data_b64=data_b64),
        FileBlob(name="..", extension="..", data_b64=data_b64),
        FileBlob(name="a\x00b\nc", extension=".jpg", data_b64=data_b64),
    ]
    async with (
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host,
    ):
        task_id = await started_task(farm, client, host, dev)
        final = submit(task_id, 0, "success", True, files=hostile)
        await host.send(final)
        assert await host.next(SubmitAck) == SubmitAck(key=final.key, ok=True)
        files = (await farm.task(client, task_id))["files"]
        assert [(f["name"], f["extension"]) for f in files] == [
            ("passwd", "sh"),
            ("file", ""),
            ("a_b_c", "jpg"),
        ]
        served = [(await client.get(f["url"])).headers["content-disposition"] for f in files]
    assert [header.rpartition("filename=")[2] for header in served] == [
        '"passwd.sh"',
        '"file"',
        '"a_b_c.jpg"',
    ]


async def test_bad_base64_and_foreign_task_submissions_are_refused(farm: Farm) -> None:
    host_id, dev = farm.unique("host"), farm.unique("dev")
    token = farm.token(host_id)
    async with farm.client() as client, farm.host(token, host_id, [farm.device(dev)]) as host:
        task_id = await started_task(farm, client, host, dev)
        bad = FileBlob(name="x", extension="bin", data_b64="%%%not base64")
        await host.send(submit(task_id, 0, "success", True, files=[bad]))
        ack = await host.next(SubmitAck)
        assert not ack.ok
        assert ack.error is not None and "base64" in ack.error
        await host.send(submit("no-such-task", 0, "running", False))
        assert not (await host.next(SubmitAck)).ok
        assert (await farm.task(client, task_id))["state"] == "running"
        await client.post(f"/api/tasks/{task_id}/cancel")
        assert (await host.next(Cancel)).task_id == task_id


async def test_a_burst_of_submits_is_judged_one_by_one_in_order(farm: Farm) -> None:
    """Frames sent without waiting: submits share transactions, each judged as if alone."""
    host_id, dev = farm.unique("host"), farm.unique("dev")
    token = farm.token(host_id)
    async with farm.client() as client, farm.host(token, host_id, [farm.device(dev)]) as host:
        task_id = await started_task(farm, client, host, dev)
        burst = [
            submit(task_id, i, "running", False, data={"i": i}, key=f"p{i}") for i in range(40)
        ]
        burst += [
            submit(task_id, 3, "running", False, data={"i": "again"}, key="p3"),
            submit(task_id, 40, "running", True, key="bad-final"),
            submit("no-such-task", 0, "running", False, key="stray"),
            submit(task_id, 41, "success", True, data={"done": True}, key="final"),
            submit(task_id, 42, "running", False, key="late"),
        ]
        for frame in burst[:20]:
            await host.send(frame)
        await host.send_raw('{"type": "submit", "key": "broken"}')
        for frame in burst[20:]:
            await host.send(frame)
        # Answers come in the order of the frames, the bad frame's error included.
        acks = [await host.next(SubmitAck) for _ in burst[:20]]
        broken = await host.next(Error)
        assert (broken.code, broken.ref) == ("invalid_frame", "broken")
        acks += [await host.next(SubmitAck) for _ in burst[20:]]
        assert [a.key for a in acks] == [f.key for f in burst]
        assert all(a.ok for a in acks[:41]) and acks[43].ok
        refused = {a.key: a.error or "" for a in acks if not a.ok}
        assert sorted(refused) == ["bad-final", "late", "stray"]
        assert "needs status success" in refused["bad-final"]
        assert "unknown task" in refused["stray"]
        assert "task already finished" in refused["late"]
        task = await farm.task(client, task_id)
        assert (task["state"], task["result"], task["progress"]) == (
            "success",
            {"done": True},
            {"i": 39},
        )


async def test_a_device_is_free_from_its_credits_until_it_is_assigned_and_busy_until_its_end(
    farm: Farm,
) -> None:
    host_id, dev = farm.unique("host"), farm.unique("dev")
    token = farm.token(host_id)
    async with farm.client() as client, farm.host(token, host_id, [farm.device(dev)]) as host:

        async def listed() -> tuple[bool, str]:
            devices = (await client.get("/api/devices")).json()
            device = next(d for d in devices if d["remote_device_id"] == dev)
            return bool(device["free"]), str(device["state"])

        assert await listed() == (False, "available")
        await host.credits(dev)
        await probe(host)
        assert await listed() == (True, "available")
        task_id = await pinned_task(farm, client, dev)
        assert (await host.next(Assign)).task.task_id == task_id
        # The host reports the device's own state only; busy is the coordinator's word for an
        # available device that has a task (docs/protocol.md, `devices`).
        assert await listed() == (False, "busy")
        await host.send(Accept(task_id=task_id))
        await host.send(Started(task_id=task_id, started_at=now()))
        await probe(host)
        assert await listed() == (False, "busy")
        await host.send(
            Finished(key="f-" + task_id, task_id=task_id, state="failed", finished_at=now())
        )
        assert (await host.next(SubmitAck)).ok
        assert await listed() == (False, "available")
        await host.credits(dev)
        await probe(host)
        assert await listed() == (True, "available")


async def test_pinned_task_goes_only_to_the_device_that_has_it(farm: Farm) -> None:
    host_a, host_b = farm.unique("host"), farm.unique("host")
    dev_a, dev_b = farm.unique("dev"), farm.unique("dev")
    token_a, token_b = farm.token(host_a), farm.token(host_b)
    async with (
        farm.client() as client,
        farm.host(token_a, host_a, [farm.device(dev_a)]) as a,
        farm.host(token_b, host_b, [farm.device(dev_b)]) as b,
    ):
        task_id = await pinned_task(farm, client, dev_b)
        await a.credits(dev_a, dev_b)  # dev_b is not host A's: ignored
        assert not (await probe(a)).ok  # and nothing was assigned before the reply
        await b.credits(dev_b)
        assignment = (await b.next(Assign)).task
        assert (assignment.task_id, assignment.remote_device_id) == (task_id, dev_b)
        assert (await farm.task(client, task_id))["host_id"] == host_b
        listed = (await client.get("/api/tasks", params={"device": dev_b})).json()
        assert [t["id"] for t in listed["items"]] == [task_id]
        await client.post(f"/api/tasks/{task_id}/cancel")


async def test_bad_or_missing_token_is_refused_with_401(farm: Farm) -> None:
    for headers in ({AUTH_HEADER: "Bearer wrong-token"}, {}):
        from websockets.asyncio.client import connect

        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                farm.coordinator.ws_url, additional_headers=headers, open_timeout=30
            ):
                pass
        assert refused.value.response.status_code == 401
    await farm.poll_log("refused: bad token")
    await farm.poll_log("refused: missing token")
    assert "wrong-token" not in farm.coordinator.log_text()


async def test_invalid_frames_get_an_error_and_the_session_stays_up(farm: Farm) -> None:
    host_id, dev = farm.unique("host"), farm.unique("dev")
    async with farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host:
        cases: list[tuple[str | bytes, str]] = [
            ("this is not json", "bad_json"),
            ('{"type": "credits", "free": [], "x": NaN}', "bad_json"),
            ('{"type": "heartbeat", "sent_at": -Infinity}', "bad_json"),
            ('{"type": "teleport"}', "unknown_type"),
            ('{"type": "credits", "free": "d1"}', "invalid_frame"),
            (b"\x00\x01", "binary_frame"),
            ('{"type": "accept", "task_id": "no-such-task"}', "unknown_task"),
            ('{"type": "x", "pad": "' + "a" * MAX_FRAME_BYTES + '"}', "frame_too_large"),
        ]
        for raw, code in cases:
            await host.send_raw(raw)
            error = await host.next(Error)
            assert error.code == code, error
        await host.send(Hello(protocol_version=1, host_id=host_id, agent_version="t", devices=[]))
        assert (await host.next(Error)).code == "invalid_frame"
        await host.send(Heartbeat(sent_at=now()))
        reply = await probe(host)
        assert reply.error is not None and "unknown method 'ping'" in reply.error
        await farm.poll_log(f"host {host_id} sent a bad frame: bad_json")


async def test_unsupported_version_closes_4000_and_wrong_hello_4002(farm: Farm) -> None:
    host_id = farm.unique("host")
    token = farm.token(host_id)
    first_frames = [
        ('{"type": "hello", "protocol_version": 2, "host_id": "x"}', 4000, "speaks 1"),
        (
            Hello(
                protocol_version=1, host_id="someone-else", agent_version="t", devices=[]
            ).model_dump_json(),
            4002,
            "does not match",
        ),
        ('{"type": "credits", "free": []}', 4002, "first frame must be hello"),
    ]
    for raw, code, reason in first_frames:
        async with farm.connect(token) as host:
            await host.send_raw(raw)
            with pytest.raises(ConnectionClosed) as closed:
                await host.next(Heartbeat)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == code
            assert reason in closed.value.rcvd.reason


async def test_new_session_takes_over_and_old_one_is_closed_4001(farm: Farm) -> None:
    host_id, dev = farm.unique("host"), farm.unique("dev")
    token = farm.token(host_id)
    async with (
        farm.host(token, host_id, [farm.device(dev)]) as old,
        farm.host(token, host_id, [farm.device(dev)]) as new,
    ):
        with pytest.raises(ConnectionClosed) as closed:
            await old.next(Heartbeat)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4001
        assert "unknown method" in str((await probe(new)).error)
        assert new.welcome is not None and old.welcome is not None
        assert new.welcome.session_id != old.welcome.session_id
    await farm.poll_log(f"host {host_id} session {old.welcome.session_id} replaced")


async def test_reconnect_reconciles_tasks_the_host_no_longer_holds(farm: Farm) -> None:
    host_id = farm.unique("host")
    devs = [farm.unique("dev") for _ in range(3)]
    token = farm.token(host_id)
    devices = [farm.device(d) for d in devs]
    async with farm.client() as client:
        async with farm.host(token, host_id, devices) as host:
            held, lost, unstarted = [await pinned_task(farm, client, d) for d in devs]
            await host.credits(*devs)
            assigned = {(await host.next(Assign)).task.task_id for _ in devs}
            assert assigned == {held, lost, unstarted}
            for task_id in (held, lost):
                await host.send(Started(task_id=task_id, started_at=now()))
            await probe(host)
        assert (await farm.task(client, lost))["state"] == "running"
        async with farm.host(token, host_id, devices, running_tasks=[held]):
            await farm.wait_state(client, lost, "failed")
            assert (await farm.task(client, lost))["failure_reason"] == "agent_lost"
            await farm.wait_state(client, unstarted, "pending")
            assert (await farm.task(client, held))["state"] == "running"
        for task_id in (held, unstarted):
            await client.post(f"/api/tasks/{task_id}/cancel")


async def test_silent_host_task_times_out_after_timeout_plus_grace(farm: Farm) -> None:
    host_id, dev = farm.unique("host"), farm.unique("dev")
    async with (
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host,
    ):
        task_id = await pinned_task(farm, client, dev, timeout_s=1)
        await host.credits(dev)
        await host.next(Assign)
        await host.send(Accept(task_id=task_id))
        await host.send(Started(task_id=task_id, started_at=now()))
        timed_out = await farm.wait_state(client, task_id, "timeout")
        assert timed_out["failure_reason"] == "timeout"
        cancel = await host.next(Cancel)
        assert (cancel.task_id, cancel.reason) == (task_id, "timeout")
        await host.send(submit(task_id, 0, "success", True))
        late = await host.next(SubmitAck)
        assert not late.ok
        assert late.error is not None and "task already finished" in late.error


async def test_get_current_task_request(farm: Farm) -> None:
    host_id, dev = farm.unique("host"), farm.unique("dev")
    async with (
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host,
    ):
        task_id = await started_task(farm, client, host, dev, input={"url": "u"}, timeout_s=42)
        await host.send(Request(id="r1", task_id=task_id, method="get_current_task"))
        reply = await host.next(Reply)
        assert reply == Reply(
            id="r1",
            ok=True,
            result={
                "parent_task_id": task_id,
                "spawned_by": None,
                "job_proof": {"url": "u"},
                "timeout": 42.0,
            },
        )
        await host.send(Request(id="r2", task_id="other", method="get_current_task"))
        refused = await host.next(Reply)
        assert (refused.id, refused.ok) == ("r2", False)
        assert "not running on this host" in str(refused.error)
        await host.send(
            Finished(
                key="f-" + task_id,
                task_id=task_id,
                state="failed",
                reason="script_error",
                error="ValueError: boom\x00",
                finished_at=now(),
            )
        )
        assert (await host.next(SubmitAck)).ok
        failed = await farm.wait_state(client, task_id, "failed")
        # A NUL in a host's free text is stored as U+FFFD (PostgreSQL's text cannot hold one).
        assert (failed["failure_reason"], failed["error"]) == (
            "script_error",
            "ValueError: boom\ufffd",
        )


async def test_reject_returns_the_task_until_the_next_credits(farm: Farm) -> None:
    host_id, dev = farm.unique("host"), farm.unique("dev")
    async with (
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host,
    ):
        task_id = await pinned_task(farm, client, dev)
        await host.credits(dev)
        assert (await host.next(Assign)).task.task_id == task_id
        await host.send(Reject(task_id=task_id, reason="device_busy"))
        await probe(host)
        assert (await farm.task(client, task_id))["state"] == "pending"
        await host.credits(dev)
        assert (await host.next(Assign)).task.task_id == task_id
        await client.post(f"/api/tasks/{task_id}/cancel")
        assert (await host.next(Cancel)).task_id == task_id
        assert (await farm.task(client, task_id))["state"] == "cancelled"


async def test_a_host_side_reject_holds_the_host_until_it_takes_work_again(farm: Farm) -> None:
    host_id, dev = farm.unique("host"), farm.unique("dev")
    async with (
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host,
    ):
        task_id = await pinned_task(farm, client, dev)
        await host.credits(dev)
        assert (await host.next(Assign)).task.task_id == task_id
        await host.send(Reject(task_id=task_id, reason="disk_full"))
        await host.send(Heartbeat(sent_at=now(), accepting=False, pause_reason="disk_full"))
        await probe(host)
        assert (await farm.task(client, task_id))["state"] == "pending"
        [shown] = [d for d in (await client.get("/api/devices")).json() if d["host_id"] == host_id]
        assert not shown["free"]
        # No new credits: the heartbeat saying it takes work again is enough.
        await host.send(Heartbeat(sent_at=now(), accepting=True))
        assert (await host.next(Assign)).task.task_id == task_id


async def test_cancel_of_a_running_task_asks_its_host(farm: Farm) -> None:
    host_id, dev = farm.unique("host"), farm.unique("dev")
    async with (
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host,
    ):
        task_id = await started_task(farm, client, host, dev)
        await probe(host)
        response = await client.post(f"/api/tasks/{task_id}/cancel")
        # Final at once: from now on its script's requests are refused.
        assert response.json()["state"] == "cancelled"
        assert response.json()["failure_reason"] == "cancelled"
        assert (await host.next(Cancel)).task_id == task_id
        await host.send(
            Finished(key="f-" + task_id, task_id=task_id, state="cancelled", finished_at=now())
        )
        assert (await host.next(SubmitAck)).ok
        assert (await farm.task(client, task_id))["state"] == "cancelled"
