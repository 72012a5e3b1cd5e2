"""Job API calls the coordinator answers: forwarded as requests for the script's own task."""

from __future__ import annotations

from tests.scripthost.conftest import Runner


async def test_calls_are_forwarded_for_the_scripts_task_and_answered(runner: Runner) -> None:
    runner.backend.answers = {
        "set_automation_variables": {"automation_variables": {"waiting": True}},
        "add_sub_tasks": {"inserted_ids": [{"planned_task_id": "p1", "input": {"q": 1}}]},
        "use_another_task": {},
    }
    outcome = await runner.run(
        """
        def main(agent):
            stored = agent.utils.setAutomationVariables({"waiting": True})
            added = agent.utils.job.add_sub_tasks([{"q": 1}], run_immediately=False)
            other = agent.utils.job.use_another_task()
            missing = agent.utils.get_latest_checkpoint()
            agent.utils.sleep_random(1, 2)
            return {"stored": stored.automation_variables, "added": added.inserted_ids,
                    "other": other, "missing": missing.model_dump()}
        """
    )
    assert outcome.data is not None, outcome.error
    assert outcome.data == {
        "stored": {"waiting": True},
        "added": [{"planned_task_id": "p1", "input": {"q": 1}}],
        "other": None,
        "missing": {
            "success": False,
            "error": "get_latest_checkpoint: unknown method 'get_latest_checkpoint'",
            "checkpoint": None,
        },
    }
    assert runner.backend.requests == [
        ("task-1", "set_automation_variables", {"variables": {"waiting": True}}),
        (
            "task-1",
            "add_sub_tasks",
            {
                "job_variables": [{"q": 1}],
                "run_immediately": False,
                "job_id": None,
                "remote_device_id": None,
            },
        ),
        ("task-1", "use_another_task", {}),
        ("task-1", "get_latest_checkpoint", {}),
    ]


async def test_bad_arguments_raise_before_anything_is_sent(runner: Runner) -> None:
    outcome = await runner.run(
        """
        async def main(agent):
            errors = []
            calls = (
                lambda: agent.utils.job.get_sub_tasks([str(i) for i in range(101)]),
                lambda: agent.utils.job.submit_task_to_another_job("j2", {}, status="success"),
                lambda: agent.utils.set_automation_variables({"x": {1, 2}}),
            )
            for call in calls:
                try:
                    await call()
                except (TypeError, ValueError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
            return {"errors": errors}
        """
    )
    assert outcome.data is not None, outcome.error
    errors = outcome.data["errors"]
    assert errors[0] == "ValueError: get_sub_tasks: at most 100 ids per call, got 101"
    assert errors[1].startswith(
        "ValueError: submit_task_to_another_job: status must be one of pending, failed, declined"
    )
    assert errors[2].startswith(
        "TypeError: set_automation_variables: variables is not JSON-serialisable"
    )
    assert runner.backend.requests == []
