"""The job API and the task's facts as a script sees them: every rule of job-api.md."""

from __future__ import annotations

import base64

import pytest

from tests.scripthost.conftest import DEVICE_INFO, Runner


async def test_bad_status_raises_value_error_in_the_script_before_sending(runner: Runner) -> None:
    outcome = await runner.run(
        "async def main(agent):\n    await agent.utils.job.submit_task('done', {}, True)\n"
    )
    assert outcome.reason == "script_error"
    assert (outcome.error or "").startswith(
        "ValueError: submit_task: automation_status must be one of running, success, failed, "
        "declined, not 'done'"
    )
    assert runner.backend.submits == []


async def test_data_must_be_a_json_serialisable_dict(runner: Runner) -> None:
    outcome = await runner.run(
        """
        async def main(agent):
            errors = []
            for data in ([1, 2], {"when": object()}, {"x": float("nan")}):
                try:
                    await agent.utils.job.submit_task("running", data, False)
                except (TypeError, ValueError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
            return {"errors": errors}
        """
    )
    assert outcome.data is not None
    errors = outcome.data["errors"]
    assert errors[0] == "TypeError: submit_task: data must be a dict, not list"
    assert errors[1].startswith("TypeError: submit_task: data is not JSON-serialisable")
    assert errors[2].startswith("ValueError: submit_task: data is not JSON-serialisable")
    assert runner.backend.submits == []


async def test_bad_files_raise_value_error(runner: Runner) -> None:
    runner.configure(max_file_bytes=10)
    outcome = await runner.run(
        """
        async def main(agent):
            errors = []
            for files in (
                [{"name": "a", "extension": "txt", "base64Data": "not base64!"}],
                [{"name": "a", "extension": "txt"}],
                [agent.files.from_bytes("big", "bin", b"x" * 11)],
                "a.txt",
            ):
                try:
                    await agent.utils.job.submit_task("success", {}, True, files)
                except (TypeError, ValueError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
            return {"errors": errors}
        """
    )
    assert outcome.data is not None, outcome.error
    assert outcome.data["errors"] == [
        "ValueError: submit_task: files.0.base64Data: not valid standard base64",
        "ValueError: submit_task: files.0.base64Data: Field required",
        "ValueError: submit_task: files.0.base64Data: file of 11 bytes exceeds the limit of "
        "10 bytes",
        "TypeError: submit_task: files must be a list, not str",
    ]
    assert runner.backend.submits == []


async def test_submissions_become_submit_frames(runner: Runner) -> None:
    outcome = await runner.run(
        """
        from pathlib import Path

        async def main(agent):
            page = {"name": "page", "extension": ".jpg", "base64Data": "aGVsbG8="}
            await agent.utils.job.submit_task("running", {"step": 1}, False, [page, "junk"])
            Path("notes.txt").write_text("hi")
            await agent.utils.job.submit_task(
                "success", {"step": 2}, True, [page, agent.files.from_path("notes.txt")]
            )
        """
    )
    assert outcome.state == "success", outcome.error
    assert outcome.data == {"step": 2}
    progress, final = runner.backend.submits
    assert (progress.task_id, progress.seq, progress.status) == ("task-1", 0, "running")
    assert progress.finish is False and progress.files == []
    assert (final.seq, final.status, final.finish, final.data) == (1, "success", True, {"step": 2})
    assert [(f.name, f.extension) for f in final.files] == [("page", "jpg"), ("notes", "txt")]
    assert base64.b64decode(final.files[1].data_b64) == b"hi"
    assert progress.key != final.key and len(final.key) == 32


async def test_file_names_are_reduced_in_the_sdk_and_again_in_the_daemon(runner: Runner) -> None:
    outcome = await runner.run(
        """
        async def main(agent):
            shot = agent.files.from_bytes("../../etc/passwd", "/../sh", b"x")
            # Past the SDK: the daemon's own model reduces what a raw call sends.
            raw = {"name": "..", "extension": "..\\\\x\\x00", "base64Data": "eQ=="}
            await agent.utils.job._transport.call(
                "job.submit_task",
                {"automation_status": "success", "data": {"sdk": [shot.name, shot.extension]},
                 "finish": True, "files": [raw]},
            )
        """
    )
    assert outcome.data == {"sdk": ["passwd", "sh"]}, outcome.error
    [final] = runner.backend.submits
    assert [(f.name, f.extension) for f in final.files] == [("file", "x_")]


async def test_after_a_final_submission_later_ones_fail(
    runner: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = await runner.run(
        """
        async def main(agent):
            await agent.utils.job.submit_task("failed", {"n": 1}, True)
            second = await agent.utils.job.submit_task("running", {"n": 2}, False)
            third = await agent.utils.job.submitTask("success", {"n": 3}, True)
            print("later:", second.model_dump(), third.success, third.error)
            return {"n": 4}
        """
    )
    assert (outcome.state, outcome.data) == ("failed", {"n": 1})
    assert [f.data for f in runner.backend.submits] == [{"n": 1}]
    refused = "task task-1 already has a final submission"
    assert (
        f"task task-1 stdout: later: {{'success': False, 'error': '{refused}'}} False {refused}"
        in caplog.messages
    )


async def test_the_daemon_checks_what_a_script_sends_past_the_sdk(runner: Runner) -> None:
    runner.configure(max_file_bytes=4)
    outcome = await runner.run(
        """
        async def main(agent):
            raw = agent.utils.job._transport
            errors = []
            for params in (
                {"automation_status": "done", "data": {}, "finish": False},
                {"automation_status": "success", "data": [], "finish": True},
                {"automation_status": "success", "data": {}, "finish": True,
                 "files": [{"name": "a", "extension": "txt", "base64Data": "aGVsbG8="}]},
                {"automation_status": "success", "data": {}, "finish": True, "task_id": "other"},
            ):
                try:
                    await raw.call("job.submit_task", params)
                except ValueError as exc:
                    errors.append(str(exc))
            try:
                await raw.call("job.nope", {})
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            return {"errors": errors}
        """
    )
    assert outcome.data is not None, outcome.error
    assert outcome.data["errors"] == [
        "submit_task: automation_status: Input should be 'running', 'success', 'failed' or "
        "'declined'",
        "submit_task: data: Input should be a valid dictionary",
        "submit_task: files.0.base64Data: file of 5 bytes exceeds the limit of 4 bytes",
        "submit_task: task_id: Extra inputs are not permitted",
        "AgentError: unknown script call 'job.nope'",
    ]
    assert runner.backend.submits == []


async def test_a_final_submission_cannot_say_running(runner: Runner) -> None:
    outcome = await runner.run(
        "async def main(agent):\n    await agent.utils.job.submit_task('running', {}, True)\n"
    )
    assert outcome.reason == "script_error"
    assert "finish=True" in (outcome.error or "")


async def test_get_current_task_info_and_arguments(runner: Runner) -> None:
    outcome = await runner.run(
        """
        async def main(agent):
            task = await agent.utils.job.getCurrentTask()
            return {
                "task": task.model_dump(),
                "device": await agent.info.get_device_info(),
                "automation": await agent.info.getAutomationInfo(),
                "vars": agent.arguments.job_variables,
                "params": agent.arguments.automationParameters,
            }
        """,
        timeout_s=42,
        input={"url": "https://example.org"},
        parameters={"depth": 2},
        parent_task_id="parent-1",
        automation_id="auto-1",
        attempt=2,
        output_schema={"type": "object", "required": ["title"]},
    )
    assert outcome.data is not None, outcome.error
    assert outcome.data["task"] == {
        "success": True,
        "error": None,
        "parent_task_id": "task-1",
        "spawned_by": "parent-1",
        "job_proof": {"url": "https://example.org"},
        "timeout": 42.0,
        "attempt": 2,
        "output_schema": {"type": "object", "required": ["title"]},
    }
    assert outcome.data["device"] == DEVICE_INFO
    automation = outcome.data["automation"]
    assert automation.pop("started_at").endswith("+00:00")
    assert automation == {
        "task_id": "task-1",
        "job_id": "job-1",
        "automation_id": "auto-1",
        "attempt": 2,
        "timeout": 42.0,
    }
    assert outcome.data["vars"] == {"url": "https://example.org"}
    assert outcome.data["params"] == {"depth": 2}


async def test_log_calls_land_in_the_task_log(
    runner: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = await runner.run(
        """
        async def main(agent):
            agent.log.info("plain", step=1)
            await agent.log.warning("awaited", what={1, 2})
            agent.log.error("bad")
        """
    )
    assert outcome.state == "success", outcome.error
    records = [r for r in caplog.records if getattr(r, "source", None) == "script"]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("INFO", "task task-1: plain step=1"),
        ("WARNING", "task task-1: awaited what='{1, 2}'"),
        ("ERROR", "task task-1: bad"),
    ]
