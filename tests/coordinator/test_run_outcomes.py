"""What a run leaves behind, through a real coordinator and fake hosts speaking the real
protocol: webhooks, output schemas and script versions (one module, one coordinator: CI time).

Webhooks (docs/webhooks.md): receivers are small HTTP servers on 127.0.0.1 in the test that verify
each signature as docs/webhooks.md shows. Every final state is delivered once in effect (a repeat
carries the same id), a delivery outlives a receiver that is down and a coordinator killed -9
meanwhile, and a receiver that hangs or fails holds up neither other deliveries nor dispatch.
Output schemas and script versions: docs/jobs.md."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from agent.protocol import Accept, Assign, Assignment, Finished, Started, Submit, SubmitAck
from coordinator.dispatch import assign_frame
from scripts.devstack import poll_until
from tests.coordinator.conftest import (
    DEADLINE_S,
    FakeHost,
    Farm,
    free_port,
    start_coordinator,
    stop_coordinator,
)
from tests.pg import fresh_database

WEBHOOK_FLAGS = (
    # Longer than any test here: a hanging receiver's attempt stays open while the test runs.
    "--webhook-timeout-s",
    "60",
    # A receiver that was down is tried again soon after it is up.
    "--webhook-retry-s",
    "0.2",
    "--webhook-retry-max-s",
    "0.5",
)
HEADER_DEADLINE_S = 10.0


async def until(check: Callable[[], bool], what: str) -> None:
    """Poll a condition on the test's own receivers until it holds (a deadline fails it)."""
    await poll_until(check, what, DEADLINE_S)


def verify(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """As docs/webhooks.md has a receiver do it: the signature over timestamp + "." + body."""
    signed = headers["x-timestamp"].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, headers["x-signature"]), "bad signature"
    event: dict[str, Any] = json.loads(body)
    assert headers["x-delivery-id"] == event["delivery_id"]
    return event


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that keeps each POST; answers `status`, or never (hang)."""

    port: int = field(default_factory=free_port)
    status: int = 200
    hang: bool = False
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answered: int = 0
    dropped: int = 0
    """Requests left hanging that their sender gave up on (closed)."""
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            async with asyncio.timeout(HEADER_DEADLINE_S):
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")[1:]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append((headers, body))
            if self.hang:
                eof = asyncio.ensure_future(reader.read())  # b"" once the sender closes
                released = asyncio.ensure_future(self._release.wait())
                done, pending = await asyncio.wait(
                    {eof, released}, return_when=asyncio.FIRST_COMPLETED
                )
                for waiting in pending:
                    waiting.cancel()
                self.dropped += eof in done
            else:
                reply = (
                    f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                writer.write(reply.encode())
                await writer.drain()
                self.answered += 1
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Receiver]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        try:
            yield self
        finally:
            self._release.set()
            server.close()
            if self._handlers:  # hanging ones end once released
                await asyncio.wait(self._handlers, timeout=HEADER_DEADLINE_S)

    def events(self, secret: str) -> list[dict[str, Any]]:
        return [verify(secret, headers, body) for headers, body in self.received]


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    """conftest's module coordinator, with WEBHOOK_FLAGS; a test may replace it with a restart
    (`farm.coordinator`), and the one there at the end is stopped."""
    data_dir = tmp_path_factory.mktemp("coordinator")
    coordinator = start_coordinator(data_dir, *WEBHOOK_FLAGS, database=fresh_database())
    farm = Farm(coordinator, coordinator.create_api_key("tests"))
    try:
        yield farm
    finally:
        stop_coordinator(farm.coordinator)


async def _take(host: FakeHost, *free: str) -> Assignment:
    await host.credits(*free)
    task = (await host.next(Assign)).task
    await host.send(Accept(task_id=task.task_id))
    await host.send(
        Started(task_id=task.task_id, started_at=datetime.now(UTC), attempt=task.attempt)
    )
    return task


async def _submit(host: FakeHost, task: Assignment, seq: int, data: dict[str, Any]) -> None:
    """A progress update (`status` running), or with `finish` in data's place below."""
    await host.send(
        Submit(
            key=f"s-{task.task_id}-{seq}",
            task_id=task.task_id,
            seq=seq,
            status="running",
            data=data,
            finish=False,
            attempt=task.attempt,
        )
    )
    assert (await host.next(SubmitAck)).ok


async def _end(
    host: FakeHost, task: Assignment, state: str, reason: str | None = None, data: Any = None
) -> None:
    await host.send(
        Finished(
            key=f"f-{task.task_id}",
            task_id=task.task_id,
            state=state,
            reason=reason,
            data=data,
            finished_at=datetime.now(UTC),
            attempt=task.attempt,
        )
    )
    assert (await host.next(SubmitAck)).ok


async def _deliveries(
    farm: Farm, client: httpx.AsyncClient, job_id: str, *states: str
) -> list[dict[str, Any]]:
    """The job's deliveries once every one is in one of `states`."""

    async def settled() -> list[dict[str, Any]] | None:
        response = await client.get(f"/api/jobs/{job_id}/webhook-deliveries")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items if items and all(d["state"] in states for d in items) else None

    return await farm.poll(settled, f"job {job_id}'s deliveries to be {states}")


async def test_every_final_state_is_delivered_signed_once_and_a_resend_repeats_its_id(
    farm: Farm,
) -> None:
    host_id, dev = farm.unique("h"), farm.unique("d")
    async with (
        Receiver().serving() as job_hook,
        Receiver().serving() as task_hook,
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host,
    ):
        job = await farm.make_job(client, webhook_url=job_hook.url)
        secret = job["webhook_secret"]
        assert job["webhook_events"] == sorted(
            ["success", "failed", "declined", "timeout", "cancelled", "expired", "skipped"]
        )
        owner_view = (await client.get(f"/api/jobs/{job['id']}/webhook-secret")).json()
        assert owner_view["webhook_secret"] == secret
        assert "webhook_secret" not in (await client.get(f"/api/jobs/{job['id']}")).json()

        ok, failed, own, cancelled = await farm.make_tasks(
            client,
            job["id"],
            {"input": {"n": 1}},
            {"input": {"n": 2}},
            {"input": {"n": 3}, "webhook_url": task_hook.url, "webhook_events": ["progress"]},
            {"input": {"n": 4}},
        )
        assert own["webhook_url"] == task_hook.url and ok["webhook_url"] is None
        response = await client.post(f"/api/tasks/{cancelled['id']}/cancel")
        assert response.status_code == 200, response.text

        run = await _take(host, dev)
        await host.send(
            Submit(
                key=f"s-{run.task_id}",
                task_id=run.task_id,
                seq=1,
                status="success",
                data={"title": "done"},
                finish=True,
                attempt=run.attempt,
            )
        )
        assert (await host.next(SubmitAck)).ok
        await _end(host, run, "success")
        run = await _take(host, dev)
        await _end(host, run, "failed", "script_error")
        run = await _take(host, dev)
        await _submit(host, run, 1, {"step": "half"})
        await _end(host, run, "success", data={"step": "all"})

        delivered = await _deliveries(farm, client, job["id"], "delivered")
        assert len(delivered) == 4
        events = {e["task_id"]: e for e in job_hook.events(secret)}
        assert len(job_hook.received) == 3 and len(events) == 3  # one each, no repeat
        assert {(e["event"], e["state"], e["reason"]) for e in events.values()} == {
            ("task.success", "success", None),
            ("task.failed", "failed", "script_error"),
            ("task.cancelled", "cancelled", "cancelled"),
        }
        assert events[ok["id"]]["data"] == {"title": "done"}
        assert events[ok["id"]]["job_id"] == job["id"]
        assert datetime.fromisoformat(events[failed["id"]]["time"]).tzinfo is not None
        # The task's own webhook got its progress and nothing of its end (not asked for).
        [progress] = task_hook.events(secret)
        assert (progress["event"], progress["task_id"], progress["data"]) == (
            "task.progress",
            own["id"],
            {"step": "half"},
        )

        first = next(d for d in delivered if d["task_id"] == ok["id"])
        assert (first["attempts"], first["last_status"]) == (1, 200)
        url = f"/api/jobs/{job['id']}/webhook-deliveries/{first['id']}/resend"
        response = await client.post(url)
        assert response.status_code == 202 and response.json()["state"] == "pending"
        await until(lambda: len(job_hook.received) == 4, "the re-sent delivery")
        again = job_hook.events(secret)[-1]
        assert again == events[ok["id"]]  # same delivery id, same body
        missing = await client.post(f"/api/jobs/{job['id']}/webhook-deliveries/nope/resend")
        assert missing.status_code == 404


async def test_a_delivery_outlives_a_receiver_down_and_a_coordinator_killed(
    farm: Farm,
) -> None:
    """Receiver down -> the coordinator tries and fails -> killed -9 -> restarted -> receiver
    up -> the delivery arrives, once, signed, with the id the log showed. (The module's
    coordinator is the one restarted: one start less for CI.)"""
    receiver = Receiver()
    async with farm.client() as client:
        job = await farm.make_job(client, webhook_url=receiver.url)
        [task] = await farm.make_tasks(client, job["id"], {"input": {}})
        # A cancel is a final state like any other, and needs no host.
        response = await client.post(f"/api/tasks/{task['id']}/cancel")
        assert response.status_code == 200, response.text

        async def failed_once() -> dict[str, Any] | None:
            response = await client.get(f"/api/jobs/{job['id']}/webhook-deliveries")
            [item] = response.json()["items"]
            return item if item["attempts"] >= 1 and item["last_error"] else None

        pending = await farm.poll(failed_once, "a failed attempt while the receiver is down")
        assert pending["state"] == "pending" and pending["next_attempt_at"]
    killed = farm.coordinator
    killed.process.kill()
    killed.process.wait(timeout=30)

    farm.coordinator = start_coordinator(killed.data_dir, *WEBHOOK_FLAGS, database=killed.database)
    async with receiver.serving(), farm.client() as client:
        await until(lambda: bool(receiver.received), "the delivery after the restart")
        [done] = await _deliveries(farm, client, job["id"], "delivered")
        [event] = receiver.events(job["webhook_secret"])
        assert (event["delivery_id"], event["task_id"]) == (pending["id"], task["id"])
        assert (event["state"], done["id"]) == ("cancelled", pending["id"])


async def test_a_hanging_or_failing_receiver_holds_up_no_other_delivery_nor_dispatch(
    farm: Farm,
) -> None:
    host_id, dev = farm.unique("h"), farm.unique("d")
    async with (
        Receiver(hang=True).serving() as hanging,
        Receiver(status=500).serving() as failing,
        Receiver().serving() as healthy,
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host,
    ):
        stuck = await farm.make_job(client, webhook_url=hanging.url)
        broken = await farm.make_job(client, webhook_url=failing.url)
        fine = await farm.make_job(client, webhook_url=healthy.url)
        for job in (stuck, broken):
            await farm.make_tasks(client, job["id"], {"input": {}})
            await _end(host, await _take(host, dev), "success")
        await until(lambda: bool(hanging.received and failing.answered), "both bad receivers hit")

        # While the first receiver holds its request, the next job's task is dispatched,
        # ends, and its delivery arrives.
        [task] = await farm.make_tasks(client, fine["id"], {"input": {}})
        run = await _take(host, dev)
        assert run.task_id == task["id"]
        await _end(host, run, "success")
        await until(lambda: bool(healthy.received), "the healthy receiver's delivery")
        [event] = healthy.events(fine["webhook_secret"])
        assert event["task_id"] == task["id"]
        # The hanging attempt was still open (the coordinator gives up after 60 s): nothing
        # waited for it to end.
        assert (hanging.answered, hanging.dropped) == (0, 0)

        async def retrying() -> dict[str, Any] | None:
            response = await client.get(f"/api/jobs/{broken['id']}/webhook-deliveries")
            [item] = response.json()["items"]
            return item if item["last_status"] == 500 else None

        failed = await farm.poll(retrying, "the failing receiver's answer recorded")
        assert (failed["state"], failed["last_error"]) == ("pending", "answered HTTP 500")


async def test_bad_webhook_input_is_a_422_naming_the_field(farm: Farm) -> None:
    async with farm.client() as client:
        for body, where in (
            ({"webhook_url": "ftp://example.org/hook"}, "webhook_url"),
            ({"webhook_url": "http://"}, "webhook_url"),
            (
                {"webhook_url": "https://example.org", "webhook_events": ["finished"]},
                "webhook_events",
            ),
            ({"webhook_events": []}, "webhook_events"),
        ):
            response = await client.post("/api/jobs", json={"name": "j", "script": "x", **body})
            assert response.status_code == 422, response.text
            assert where in response.json()["detail"][0]["loc"], response.text
        job = await farm.make_job(client)
        response = await client.post(
            f"/api/jobs/{job['id']}/tasks",
            json={"tasks": [{"input": {}}, {"webhook_url": "file:///etc/passwd"}]},
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"][-3:] == ["tasks", 1, "webhook_url"]
        response = await client.patch(f"/api/jobs/{job['id']}", json={"webhook_url": "mailto:a"})
        assert response.status_code == 422 and "webhook_url" in response.text
        listed = await client.get(f"/api/tasks?job_id={job['id']}")
        assert listed.json()["items"] == []  # nothing of the refused request was created


TITLED = {
    "type": "object",
    "required": ["title"],
    "properties": {"title": {"type": "string"}},
}


async def test_success_data_off_the_output_schema_ends_failed_output_invalid(farm: Farm) -> None:
    host_id, dev = farm.unique("h"), farm.unique("d")
    async with (
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host,
    ):
        job = await farm.make_job(client, output_schema=TITLED)
        assert job["output_schema"] == TITLED
        bad_submit, bad_return, good = await farm.make_tasks(
            client, job["id"], {"input": {}}, {"input": {}}, {"input": {}}
        )
        run = await _take(host, dev)
        assert run.output_schema == TITLED  # what get_current_task() gives the script
        await host.send(
            Submit(
                key=f"s-{run.task_id}",
                task_id=run.task_id,
                seq=1,
                status="success",
                data={"title": 5},
                finish=True,
                attempt=run.attempt,
            )
        )
        assert (await host.next(SubmitAck)).ok
        await _end(host, await _take(host, dev), "success", data={"name": "no title"})
        await _end(host, await _take(host, dev), "success", data={"title": "fine"})

        for task, problem in (
            (bad_submit, "[\"title\"]: 5 is not of type 'string'"),
            (bad_return, "the data: 'title' is a required property"),
        ):
            ended = await farm.wait_state(client, task["id"], "failed")
            assert ended["failure_reason"] == "output_invalid"
            assert ended["error"] == f"output does not match the job's output_schema: {problem}"
        assert (await farm.wait_state(client, good["id"], "success"))["result"] == {"title": "fine"}

        # Cleared by PATCH: the next task's data is not checked.
        patched = await client.patch(f"/api/jobs/{job['id']}", json={"output_schema": None})
        assert patched.status_code == 200 and patched.json()["output_schema"] is None


async def test_a_task_pinned_to_an_old_version_is_assigned_the_old_code(farm: Farm) -> None:
    host_id, dev = farm.unique("h"), farm.unique("d")
    old_code = "async def main(agent):\n    return {'v': 1}\n"
    new_code = "async def main(agent):\n    return {'v': 2}\n"
    async with (
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, [farm.device(dev)]) as host,
    ):
        job = await farm.make_job(client, script=old_code)
        [before] = await farm.make_tasks(client, job["id"], {"input": {}})
        response = await client.put(f"/api/jobs/{job['id']}/script", json={"script": new_code})
        assert response.status_code == 200 and response.json()["version"] == 2
        pinned, current = await farm.make_tasks(
            client, job["id"], {"input": {}, "script_version": 1}, {"input": {}}
        )
        assert [t["script_version"] for t in (before, pinned, current)] == [1, 1, 2]

        versions = (await client.get(f"/api/jobs/{job['id']}/versions")).json()["versions"]
        assert [(v["version"], v["current"]) for v in versions] == [(1, False), (2, True)]
        sources = {}
        for _ in range(3):
            run = await _take(host, dev)
            sources[run.task_id] = run.script_source
            await _end(host, run, "success")
        assert sources == {before["id"]: old_code, pinned["id"]: old_code, current["id"]: new_code}
        listed = (await client.get(f"/api/tasks?job_id={job['id']}")).json()["items"]
        assert [t["script_version"] for t in listed] == [1, 1, 2]
        assert versions[0]["script_sha256"] == listed[0]["script_sha256"]


async def test_a_bad_schema_or_an_unknown_version_is_a_422_naming_the_field(farm: Farm) -> None:
    async with farm.client() as client:
        response = await client.post(
            "/api/jobs",
            json={"name": "j", "script": "x", "output_schema": {"type": "no such type"}},
        )
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "output_schema"]
        assert "not a valid JSON Schema" in error["msg"]
        job = await farm.make_job(client)
        response = await client.patch(
            f"/api/jobs/{job['id']}", json={"output_schema": {"required": "title"}}
        )
        assert response.status_code == 422 and "output_schema" in response.text
        for version, why in ((2, "has no version 2 (its versions are 1 to 1)"), (0, "greater")):
            response = await client.post(
                f"/api/jobs/{job['id']}/tasks",
                json={"tasks": [{"input": {}}, {"input": {}, "script_version": version}]},
            )
            assert response.status_code == 422, response.text
            assert "script_version" in response.text and why in response.text, response.text
        listed = await client.get(f"/api/tasks?job_id={job['id']}")
        assert listed.json()["items"] == []


def test_an_assign_without_a_schema_is_the_frame_daemons_from_before_it_take() -> None:
    """Their Assignment refuses unknown fields: `output_schema` goes only where a job has one."""
    plain = Assignment(
        task_id="t",
        job_id="j",
        remote_device_id="d",
        script_sha256="s",
        script_source="x",
        timeout_s=1,
    )
    later = {"output_schema", "browser", "script_name"}
    assert later.isdisjoint(json.loads(assign_frame(plain))["task"])
    schema = plain.model_copy(update={"output_schema": TITLED})
    assert json.loads(assign_frame(schema))["task"]["output_schema"] == TITLED


PROXY_PASSWORD = "pr0xy-s3cret"
JOB_BROWSER = {
    "user_agent": "Job/1",
    "locale": "en-GB",
    "proxy": {"server": "http://proxy.example:3128", "username": "u", "password": PROXY_PASSWORD},
}


async def test_browser_settings_are_stored_assigned_over_the_jobs_and_never_shown(
    farm: Farm,
) -> None:
    host_id, browser, phone = farm.unique("h"), farm.unique("b"), farm.unique("p")
    devices = [farm.device(browser, kind="browser"), farm.device(phone, kind="android")]
    async with (
        farm.client() as client,
        farm.host(farm.token(host_id), host_id, devices) as host,
    ):
        job = await farm.make_job(client, browser=JOB_BROWSER)
        assert job["browser"]["proxy"]["password"] == "***"
        own = {"user_agent": "Task/1", "locale": None, "profile": "shop"}
        [task] = await farm.make_tasks(client, job["id"], {"browser": own})
        assert task["browser"] == own
        answers = [
            (await client.get(f"/api/jobs/{job['id']}")).text,
            (await client.get(f"/api/tasks/{task['id']}")).text,
            (await client.get(f"/api/tasks?job_id={job['id']}")).text,
            (await client.get("/api/jobs")).text,
        ]
        assert all("***" in a or task["id"] in a for a in answers)
        assert not [a for a in answers if PROXY_PASSWORD in a]

        # The host gets the task's settings over the job's, password and all.
        run = await _take(host, browser)
        assert run.browser is not None
        assert run.browser.user_agent == "Task/1" and run.browser.locale is None
        assert run.browser.profile == "shop"
        assert run.browser.proxy is not None and run.browser.proxy.password is not None
        assert run.browser.proxy.password.get_secret_value() == PROXY_PASSWORD
        await _end(host, run, "success")

        # A phone cannot honour them: refused at creation when the pin says so.
        for body, field in (
            ({"remote_device_id": phone, "browser": {"locale": "fr"}}, "tasks[1].browser"),
            ({"remote_device_id": phone}, "tasks[1].remote_device_id"),
        ):
            response = await client.post(f"/api/jobs/{job['id']}/tasks", json={"tasks": [{}, body]})
            assert response.status_code == 422, response.text
            assert response.json()["detail"].startswith(
                f"{field}: device {phone} is not a browser (android)"
            )
        cleared = await client.patch(f"/api/jobs/{job['id']}", json={"browser": None})
        assert cleared.status_code == 200 and cleared.json()["browser"] is None
        [plain] = await farm.make_tasks(client, job["id"], {"remote_device_id": phone})
        run = await _take(host, phone)
        assert run.task_id == plain["id"] and run.browser is None
        await _end(host, run, "success")


async def test_bad_browser_settings_are_a_422_naming_the_field(farm: Farm) -> None:
    async with farm.client() as client:
        job = await farm.make_job(client)
        cases = [
            ({"proxy": {"server": "http://proxy:port"}}, ["proxy", "server"]),
            ({"timezone_id": "Nowhere/Else"}, ["timezone_id"]),
            ({"locale": "??"}, ["locale"]),
            ({"geolocation": {"latitude": 100, "longitude": 0}}, ["geolocation", "latitude"]),
            ({"colour": "blue"}, ["colour"]),
        ]
        for browser, where in cases:
            made = await client.post(
                "/api/jobs", json={"name": "j", "script": "x", "browser": browser}
            )
            patched = await client.patch(f"/api/jobs/{job['id']}", json={"browser": browser})
            added = await client.post(
                f"/api/jobs/{job['id']}/tasks", json={"tasks": [{"browser": browser}]}
            )
            for response, prefix in ((made, []), (patched, []), (added, ["tasks", 0])):
                assert response.status_code == 422, (browser, response.text)
                locs = [e["loc"] for e in response.json()["detail"]]
                assert ["body", *prefix, "browser", *where] in locs, (browser, locs)
        listed = await client.get(f"/api/tasks?job_id={job['id']}")
        assert listed.json()["items"] == []
