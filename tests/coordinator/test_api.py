"""The coordinator's HTTP API against a real coordinator process (no host sends credits here)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.coordinator.conftest import api_client

if TYPE_CHECKING:
    from tests.coordinator.conftest import Farm

SCRIPT = "async def main(agent):\n    return {'ok': True}\n"


async def test_healthz_needs_no_key_and_openapi_lists_the_api(farm: Farm) -> None:
    async with httpx.AsyncClient(base_url=farm.coordinator.base_url, timeout=30) as anon:
        assert (await anon.get("/healthz")).json() == {"ok": True}
        paths = (await anon.get("/openapi.json")).json()["paths"]
    for path in (
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/script",
        "/api/jobs/{job_id}/tasks",
        "/api/tasks",
        "/api/tasks/{task_id}",
        "/api/tasks/{task_id}/cancel",
        "/api/files/{file_id}",
        "/api/devices",
    ):
        assert path in paths


async def test_api_needs_a_valid_key(farm: Farm) -> None:
    async with httpx.AsyncClient(base_url=farm.coordinator.base_url, timeout=30) as anon:
        missing = await anon.get("/api/devices")
        wrong = await anon.get("/api/devices", headers={"Authorization": "Bearer nope"})
    assert missing.status_code == 401
    assert "missing API key" in missing.json()["detail"]
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "unknown API key"


async def test_create_and_read_job_with_script_versions(farm: Farm) -> None:
    async with farm.client() as client:
        job = await farm.make_job(
            client,
            name="crawl",
            script=SCRIPT,
            parameters={"depth": 2},
            timeout_s=60,
            automation_id="auto-1",
        )
        first = hashlib.sha256(SCRIPT.encode()).hexdigest()
        assert job["script_sha256"] == first
        assert job["versions"] == [first]
        assert job["parameters"] == {"depth": 2}
        assert job["timeout_s"] == 60
        assert job["automation_id"] == "auto-1"
        # The creation's answer alone holds the webhook secret (docs/webhooks.md).
        secret = job.pop("webhook_secret")
        assert len(secret) == 64
        assert (await client.get(f"/api/jobs/{job['id']}")).json() == job

        [old_task] = await farm.make_tasks(client, job["id"], {"input": {"n": 1}})
        new_script = SCRIPT.replace("True", "False")
        updated = (
            await client.put(f"/api/jobs/{job['id']}/script", json={"script": new_script})
        ).json()
        second = hashlib.sha256(new_script.encode()).hexdigest()
        assert updated["versions"] == [first, second]
        assert updated["script_sha256"] == second
        [new_task] = await farm.make_tasks(client, job["id"], {"input": {"n": 2}})
        assert old_task["script_sha256"] == first
        assert new_task["script_sha256"] == second
        assert new_task["timeout_s"] == 60
        assert new_task["state"] == "pending"
        for task in (old_task, new_task):
            await client.post(f"/api/tasks/{task['id']}/cancel")


async def test_invalid_bodies_get_422_naming_the_field(farm: Farm) -> None:
    async with farm.client() as client:
        cases = [
            ({"name": "j", "script": ""}, "script"),
            ({"name": "j"}, "script"),
            ({"name": "j", "script": SCRIPT, "timeout_s": 0}, "timeout_s"),
            ({"name": "j", "script": SCRIPT, "timeout_s": 86401}, "timeout_s"),
            ({"name": "j", "script": SCRIPT, "parameters": [1]}, "parameters"),
        ]
        for body, fieldname in cases:
            response = await client.post("/api/jobs", json=body)
            assert response.status_code == 422, body
            assert fieldname in {str(p) for e in response.json()["detail"] for p in e["loc"]}
        job = await farm.make_job(client)
        tasks_bodies: list[dict[str, Any]] = [
            {"tasks": []},
            {"tasks": [{"input": {}}] * 1001},
            {"tasks": [{"x": 1}]},
        ]
        for tasks_body in tasks_bodies:
            response = await client.post(f"/api/jobs/{job['id']}/tasks", json=tasks_body)
            assert response.status_code == 422
        bad_limit = await client.get("/api/tasks", params={"limit": 501})
        assert bad_limit.status_code == 422
        assert "limit" in bad_limit.text


NON_FINITE = ("NaN", "Infinity", "-Infinity")


async def test_nan_and_infinity_in_any_body_are_422(farm: Farm) -> None:
    async with farm.client() as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
        routes = [
            (method.upper(), path)
            for path, operations in paths.items()
            for method, operation in operations.items()
            if "requestBody" in operation
        ]
        assert {
            ("POST", "/api/jobs"),
            ("PATCH", "/api/jobs/{job_id}"),
            ("PUT", "/api/jobs/{job_id}/script"),
            ("PUT", "/api/jobs/{job_id}/shares/{owner}"),
            ("POST", "/api/jobs/{job_id}/tasks"),
        } <= set(routes)
        job = await farm.make_job(client)
        ids = {"job_id": job["id"], "owner": "someone", "task_id": "t", "file_id": "f"}
        for method, path in routes:
            for word in NON_FINITE:
                response = await client.request(
                    method,
                    path.format(**ids),
                    content=f'{{"x": [1, {word}]}}',
                    headers={"Content-Type": "application/json"},
                )
                assert response.status_code == 422, (method, path, word, response.text)
                assert f"{word} is not valid JSON" in response.text, (method, path)
        # Bodies that would validate but for the number: before, these were stored and then
        # failed as a 500 when the answer was rendered.
        for word in NON_FINITE:
            for url, body in (
                ("/api/jobs", f'{{"name": "j", "script": "x = 1", "parameters": {{"a": {word}}}}}'),
                (f"/api/jobs/{job['id']}/tasks", f'{{"tasks": [{{"input": {{"v": {word}}}}}]}}'),
            ):
                response = await client.post(
                    url, content=body, headers={"Content-Type": "application/json"}
                )
                assert response.status_code == 422, (url, word, response.text)
        # Nesting no frame may carry: the task could never be assigned.
        deep = '{"tasks": [{"input": {"v": ' + "[" * 100 + "]" * 100 + "}}]}"
        response = await client.post(
            f"/api/jobs/{job['id']}/tasks",
            content=deep,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert "nested deeper than" in response.text
        tasks = (await client.get("/api/tasks", params={"job_id": job["id"]})).json()
        assert tasks["items"] == []


async def test_a_nul_in_a_stored_string_or_in_the_url_is_422(farm: Farm) -> None:
    """No name, script or id holds a NUL (PostgreSQL's text cannot); JSON values may."""
    async with farm.client() as client:
        job = await farm.make_job(client)
        job_url = f"/api/jobs/{job['id']}"
        for method, url, body in [
            ("POST", "/api/jobs", {"name": "a\x00b", "script": SCRIPT}),
            ("PATCH", job_url, {"automation_id": "\x00"}),
            ("PUT", f"{job_url}/script", {"script": SCRIPT + "\x00"}),
            ("POST", f"{job_url}/tasks", {"tasks": [{"remote_device_id": "d\x00"}]}),
            ("PUT", f"{job_url}/shares/bob%00", {"access": "shared_view"}),
            ("GET", "/api/tasks/a%00b", None),
            ("GET", "/api/tasks?device=%00", None),
        ]:
            response = await client.request(method, url, json=body)
            assert response.status_code == 422, (method, url, response.text)
            assert "must not hold a NUL character (U+0000)" in response.text
        [task] = await farm.make_tasks(client, job["id"], {"input": {"text": "a\x00b"}})
        assert (await farm.task(client, task["id"]))["input"] == {"text": "a\x00b"}
        # The module's other tests expect no pending task of theirs to be left by this one.
        assert (await client.post(f"/api/tasks/{task['id']}/cancel")).status_code == 200


async def test_unknown_ids_get_404(farm: Farm) -> None:
    async with farm.client() as client:
        for method, path in (
            ("GET", "/api/jobs/nope"),
            ("PUT", "/api/jobs/nope/script"),
            ("POST", "/api/jobs/nope/tasks"),
            ("GET", "/api/tasks/nope"),
            ("POST", "/api/tasks/nope/cancel"),
            ("GET", "/api/files/nope"),
        ):
            body: dict[str, Any] = {"script": SCRIPT} if method == "PUT" else {"tasks": [{}]}
            response = await client.request(method, path, json=body)
            assert response.status_code == 404, path
            assert "nope" in response.json()["detail"]


async def test_pin_to_unknown_device_is_422_but_known_device_works(farm: Farm) -> None:
    host_id = farm.unique("host")
    known = farm.unique("dev")
    token = farm.coordinator.create_token(host_id)
    async with farm.client() as client:
        job = await farm.make_job(client)
        async with farm.host(token, host_id, [farm.device(known)]):
            # No credits are sent, so the pinned task stays pending.
            [task] = await farm.make_tasks(client, job["id"], {"remote_device_id": known})
            assert task["remote_device_id"] == known
            assert task["state"] == "pending"
            devices = (await client.get("/api/devices")).json()
            [listed] = [d for d in devices if d["remote_device_id"] == known]
            assert listed["host_id"] == host_id
            assert listed["connected"] is True
            assert listed["free"] is False  # its host offered it in no credits
            assert listed["kind"] == "sim"
        stranger = farm.unique("dev")
        response = await client.post(
            f"/api/jobs/{job['id']}/tasks",
            json={"tasks": [{"remote_device_id": known}, {"remote_device_id": stranger}]},
        )
        assert response.status_code == 422
        assert stranger in response.json()["detail"]
        assert known not in response.json()["detail"]
        cancelled = (await client.post(f"/api/tasks/{task['id']}/cancel")).json()
        assert cancelled["state"] == "cancelled"


async def test_list_filters_and_pages_oldest_first(farm: Farm) -> None:
    async with farm.client() as client:
        job = await farm.make_job(client)
        other = await farm.make_job(client)
        created = await farm.make_tasks(client, job["id"], *({"input": {"i": i}} for i in range(5)))
        [other_task] = await farm.make_tasks(client, other["id"], {"input": {"i": 99}})
        first = (await client.get("/api/tasks", params={"job_id": job["id"], "limit": 2})).json()
        page = (
            await client.get(
                "/api/tasks",
                params={"job_id": job["id"], "limit": 2, "cursor": first["next_cursor"]},
            )
        ).json()
        assert (page["limit"], page["total"]) == (2, None)
        assert [t["input"]["i"] for t in page["items"]] == [2, 3]
        await client.post(f"/api/tasks/{created[0]['id']}/cancel")
        cancelled = (
            await client.get("/api/tasks", params={"job_id": job["id"], "state": "cancelled"})
        ).json()
        assert [t["id"] for t in cancelled["items"]] == [created[0]["id"]]
        pending = (
            await client.get("/api/tasks", params={"job_id": job["id"], "state": "pending"})
        ).json()
        assert [t["input"]["i"] for t in pending["items"]] == [1, 2, 3, 4]
        bad_state = await client.get("/api/tasks", params={"state": "bogus"})
        assert bad_state.status_code == 422
        for task in [*pending["items"], other_task]:
            await client.post(f"/api/tasks/{task['id']}/cancel")
        everything = (await client.get("/api/tasks", params={"limit": 500})).json()
        assert all(t["state"] != "pending" for t in everything["items"])


async def test_unknown_query_parameters_are_422_naming_them_on_every_api_route(
    farm: Farm,
) -> None:
    async with farm.client() as client:
        job = await farm.make_job(client, type="manual")
        [task] = await farm.make_tasks(client, job["id"], {})
        for method, path in (
            ("GET", "/api/tasks?stat=failed"),
            ("GET", "/api/tasks?offset=10"),
            ("GET", "/api/devices?stat=failed"),
            ("GET", f"/api/jobs/{job['id']}?stat=failed"),
            ("GET", f"/api/tasks/{task['id']}?stat=failed"),
            ("POST", f"/api/tasks/{task['id']}/cancel?stat=failed"),
        ):
            response = await client.request(method, path)
            assert response.status_code == 422, (path, response.text)
            [error] = response.json()["detail"]
            name = path.rsplit("?", 1)[1].split("=")[0]
            assert error["loc"] == ["query", name], path
            assert "unknown query parameter" in error["msg"]
        refused = await client.get("/api/tasks", params={"limit": 1, "pgae": 2, "job": "x"})
        assert [e["loc"][1] for e in refused.json()["detail"]] == ["pgae", "job"]
        assert "cursor" in refused.json()["detail"][0]["msg"]  # it says what the route takes
        # Public file links are handed on, and sites add their own parameters to links.
        link = await client.get("/files/no-such-file?fbclid=abc")
        assert link.status_code == 404


async def test_cancel_pending_task_then_again_is_409(farm: Farm) -> None:
    async with farm.client() as client:
        job = await farm.make_job(client)
        [task] = await farm.make_tasks(client, job["id"], {"input": {}})
        cancelled = (await client.post(f"/api/tasks/{task['id']}/cancel")).json()
        assert cancelled["state"] == "cancelled"
        assert cancelled["finished_at"] is not None
        again = await client.post(f"/api/tasks/{task['id']}/cancel")
        assert again.status_code == 409
        assert "already cancelled" in again.json()["detail"]


async def test_other_keys_see_and_change_a_job_only_through_its_shares(farm: Farm) -> None:
    """Reading needs the owner or a share; adding and cancelling tasks needs owner or edit."""
    bob_id = farm.unique("bob")
    bob_key = farm.coordinator.create_api_key(bob_id)
    async with farm.client() as owner, api_client(farm.coordinator, bob_key) as bob:
        job = await farm.make_job(owner)
        [task] = await farm.make_tasks(owner, job["id"], {"input": {}})
        job_url, task_url = f"/api/jobs/{job['id']}", f"/api/tasks/{task['id']}"
        add = {"tasks": [{"input": {}}]}

        async def codes() -> dict[str, int]:
            listed = (await bob.get("/api/tasks")).json()["items"]
            assert (task["id"] in [t["id"] for t in listed]) == (
                (await bob.get(task_url)).status_code == 200
            )
            return {
                "job": (await bob.get(job_url)).status_code,
                "task": (await bob.get(task_url)).status_code,
                "list": (await bob.get("/api/tasks", params={"job_id": job["id"]})).status_code,
                "add": (await bob.post(f"{job_url}/tasks", json=add)).status_code,
            }

        alone = await codes()
        assert alone == {"job": 403, "task": 403, "list": 403, "add": 403}
        refused = await bob.post(f"{task_url}/cancel")
        assert refused.status_code == 403
        assert f"{bob_id} is not its owner or shared_edit (access: None)" in refused.text

        assert (
            await owner.put(f"{job_url}/shares/{bob_id}", json={"access": "shared_view"})
        ).is_success
        assert await codes() == {"job": 200, "task": 200, "list": 200, "add": 403}
        assert (await bob.post(f"{task_url}/cancel")).status_code == 403

        assert (
            await owner.put(f"{job_url}/shares/{bob_id}", json={"access": "shared_edit"})
        ).is_success
        assert await codes() == {"job": 200, "task": 200, "list": 200, "add": 201}
        assert (await bob.post(f"{task_url}/cancel")).json()["state"] == "cancelled"


def test_cli_bad_arguments_exit_2(farm: Farm) -> None:
    for args in (
        [],
        ["token", "create", "bad host id", "--data-dir", "/tmp/x"],
        ["token", "create", "h1"],
        ["serve", "--data-dir", "/tmp/x", "--port", "0"],
        ["serve", "--data-dir", "/tmp/x", "--grace-s", "-1"],
        ["bogus"],
    ):
        done = farm.run_cli(*args)
        assert done.returncode == 2, args
        assert "error:" in done.stderr


async def test_token_create_replaces_and_stores_only_the_digest(farm: Farm) -> None:
    command = ["token", "create", "replace-me", *farm.coordinator.database_args]
    first, second = (farm.run_cli(*command).stdout.strip() for _ in range(2))
    assert first != second
    assert len(first) >= 40
    raw = farm.coordinator.stored_bytes()
    assert first.encode() not in raw
    assert second.encode() not in raw
    with pytest.raises(InvalidStatus) as refused:
        async with farm.connect(first):
            pass
    assert refused.value.response.status_code == 401
    async with farm.host(second, "replace-me", []) as host:
        assert host.welcome is not None
