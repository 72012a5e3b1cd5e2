"""How a script's end becomes the task's outcome: returns, raises, load errors, crashes, stop."""

from __future__ import annotations

from tests.scripthost.conftest import Runner


async def test_async_main_returning_a_dict_succeeds_with_that_data(runner: Runner) -> None:
    outcome = await runner.run(
        """
        async def main(agent):
            return {"title": "ok", "n": 3}
        """
    )
    assert outcome.state == "success"
    assert outcome.data == {"title": "ok", "n": 3}
    assert outcome.reason is None


async def test_plain_def_main_gets_blocking_methods(runner: Runner) -> None:
    outcome = await runner.run(
        """
        def main(agent):
            task = agent.utils.job.get_current_task()
            shot = agent.actions.screenshot(1080, 1920, 80)
            agent.log.info("blocking works")
            sent = agent.utils.job.submit_task("running", {"step": 1}, False)
            return {"url": task.job_proof["url"], "width": shot.originalWidth,
                    "sent": sent.success}
        """,
        input={"url": "https://example.org"},
    )
    assert outcome.state == "success", outcome.error
    assert outcome.data == {"url": "https://example.org", "width": 1080, "sent": True}
    assert [f.status for f in runner.backend.submits] == ["running"]


async def test_other_return_values(runner: Runner) -> None:
    none = await runner.run("async def main(agent):\n    return None\n")
    assert (none.state, none.data) == ("success", None)
    number = await runner.run("def main(agent):\n    return [1, 'two']\n")
    assert (number.state, number.data) == ("success", {"result": [1, "two"]})


async def test_a_value_that_is_not_json_is_a_bad_return_value(runner: Runner) -> None:
    outcome = await runner.run("async def main(agent):\n    return {'when': object()}\n")
    assert outcome.state == "failed"
    assert outcome.reason == "bad_return_value"
    assert outcome.error is not None and "not JSON-serialisable" in outcome.error


async def test_an_exception_fails_the_task_with_only_the_scripts_frames(runner: Runner) -> None:
    outcome = await runner.run(
        """
        import json

        def parse(text):
            return json.loads(text)

        async def main(agent):
            await agent.actions.tap(1, 2)
            parse("{not json")
        """
    )
    assert outcome.state == "failed"
    assert outcome.reason == "script_error"
    error = outcome.error or ""
    assert error.startswith("JSONDecodeError: Expecting property name")
    assert 'File "script.py", line 9, in main' in error
    assert 'File "script.py", line 5, in parse' in error
    assert "json/decoder.py" not in error and "agent/" not in error


async def test_an_error_raised_inside_an_sdk_call_shows_the_scripts_line_only(
    runner: Runner,
) -> None:
    outcome = await runner.run(
        """
        def main(agent):
            agent.utils.job.submit_task("done", {}, True)
        """
    )
    error = outcome.error or ""
    assert outcome.reason == "script_error"
    assert error.startswith("ValueError: submit_task: automation_status must be one of")
    assert 'File "script.py", line 3, in main' in error
    assert "sdk" not in error and "blocking" not in error


async def test_syntax_error_is_a_load_error_naming_the_line(runner: Runner) -> None:
    outcome = await runner.run("async def main(agent):\n    return {\n\nx = = 1\n")
    assert outcome.state == "failed"
    assert outcome.reason == "script_load_error"
    assert (outcome.error or "").startswith("script.py line 2: SyntaxError:")


async def test_a_script_without_main_is_a_load_error(runner: Runner) -> None:
    outcome = await runner.run("def helper(agent):\n    pass\nmain = 3\n")
    assert (outcome.state, outcome.reason) == ("failed", "script_load_error")
    assert outcome.error == "script.py defines no main(agent)"


async def test_a_failing_import_is_a_load_error(runner: Runner) -> None:
    outcome = await runner.run("import no_such_module_here\n\nasync def main(agent):\n    pass\n")
    assert outcome.reason == "script_load_error"
    assert outcome.error == (
        "script.py line 1: ModuleNotFoundError: No module named 'no_such_module_here'"
    )


async def test_main_that_takes_no_agent_is_a_load_error(runner: Runner) -> None:
    outcome = await runner.run("async def main():\n    pass\n")
    assert outcome.reason == "script_load_error"
    assert outcome.error == "script.py: main must take one argument (agent), it is main()"


async def test_a_process_that_dies_without_reporting_has_crashed(runner: Runner) -> None:
    outcome = await runner.run("import os\n\nasync def main(agent):\n    os._exit(3)\n")
    assert (outcome.state, outcome.reason) == ("failed", "script_crashed")
    assert outcome.error == "script process exited with code 3 without reporting an outcome"


async def test_a_process_killed_by_a_signal_has_crashed(runner: Runner) -> None:
    outcome = await runner.run(
        "import os, signal\n\ndef main(agent):\n    os.kill(os.getpid(), signal.SIGSEGV)\n"
    )
    assert outcome.reason == "script_crashed"
    assert outcome.error == "script process was killed by SIGSEGV"


async def test_garbage_on_the_channel_ends_the_script(runner: Runner) -> None:
    outcome = await runner.run(
        """
        import os, sys, time

        def main(agent):
            os.write(int(sys.argv[2]), b"\\xff\\xff\\xff\\xff")
            time.sleep(1000)  # outlives its timeout: the kill is under test
        """
    )
    assert outcome.reason == "script_crashed"
    assert (outcome.error or "").startswith("script host broke the channel protocol: frame of")


async def test_stop_current_automation_ends_the_script_as_success(runner: Runner) -> None:
    outcome = await runner.run(
        """
        async def main(agent):
            try:
                agent.control.stop_current_automation()
            except Exception:
                return {"swallowed": True}
            return {"not": "reached"}
        """
    )
    assert (outcome.state, outcome.data, outcome.error) == ("success", None, None)


async def test_stop_after_a_final_submission_keeps_that_submission(runner: Runner) -> None:
    outcome = await runner.run(
        """
        def main(agent):
            agent.utils.job.submitTask("declined", {"why": "no stock"}, True)
            agent.control.stopCurrentAutomation()
        """
    )
    assert (outcome.state, outcome.data) == ("declined", {"why": "no stock"})


async def test_a_final_submission_wins_over_a_later_exception_which_is_kept(
    runner: Runner,
) -> None:
    outcome = await runner.run(
        """
        async def main(agent):
            await agent.utils.job.submit_task("success", {"done": 1}, True)
            raise RuntimeError("after the fact")
        """
    )
    assert (outcome.state, outcome.data, outcome.reason) == ("success", {"done": 1}, None)
    assert outcome.error is not None
    assert outcome.error.startswith("after its final submission: ")
    assert "RuntimeError: after the fact" in outcome.error


async def test_a_refused_final_submission_does_not_decide_the_outcome(runner: Runner) -> None:
    runner.backend.refuse = "task is not running"
    outcome = await runner.run(
        """
        async def main(agent):
            result = await agent.utils.job.submit_task("success", {"done": 1}, True)
            return result.model_dump()
        """
    )
    assert outcome.state == "success"
    assert outcome.data == {"success": False, "error": "task is not running"}


async def test_hints_and_coroutines_never_awaited_in_sync_and_async_mains(runner: Runner) -> None:
    sync = await runner.run("def main(agent):\n    agent.actions.tapp(1, 2)\n")
    assert (sync.error or "").startswith(
        "AttributeError: 'Actions' object has no attribute 'tapp'. Did you mean: 'tap'?\n"
    )
    assert 'File "script.py", line 2, in main' in (sync.error or "")
    forgot = await runner.run(
        """
        async def main(agent):
            later = agent.utils.job.submitTask("success", {}, True)
            await agent.actions.tap(1, 2)
            agent.actions.screenshot(10, 10, 50)
            raise KeyError("k")
        """
    )
    assert (forgot.state, forgot.reason) == ("failed", "script_error")
    error = (forgot.error or "").splitlines()
    assert error[0] == "KeyError: 'k'"
    assert error[-2:] == [
        "agent.utils.job.submit_task(...) was never awaited (line 3)",
        "agent.actions.screenshot(...) was never awaited (line 5)",
    ]
    assert runner.backend.submits == []
