"""`agent.actions`: each method is one driver call; driver errors come back as ActionFailed."""

from __future__ import annotations

import inspect

from agent.hostapi import HANDLERS
from agent.scriptrpc import ACTION_NAMES
from agent.sdk import Actions
from agent.sdk.unawaited import is_coroutine_method
from tests.scripthost.conftest import SCREENSHOT, Runner


def test_every_action_has_an_sdk_method_a_handler_and_a_camel_case_alias() -> None:
    methods = {
        name
        for name, fn in inspect.getmembers(Actions, is_coroutine_method)
        if not name.startswith("_") and name == fn.__name__
    }
    assert methods == set(ACTION_NAMES)
    for name in ACTION_NAMES:
        assert f"actions.{name}" in HANDLERS
        camel = name.split("_")[0] + "".join(p.title() for p in name.split("_")[1:])
        assert getattr(Actions, camel) is getattr(Actions, name)


async def test_actions_reach_the_session_with_their_parameters(runner: Runner) -> None:
    outcome = await runner.run(
        """
        async def main(agent):
            await agent.actions.browse("https://example.org", clear_existing_data=True)
            await agent.actions.tap(10, 20.5)
            await agent.actions.writeText("hi", clear=True)
            await agent.actions.input_key("Enter")
            await agent.actions.find(text="OK")
            await agent.actions.evaluate("1 + 1")
            await agent.actions.screen_content()
            shot = await agent.actions.screenshot(540, 960, 80, crop=(0, 0, 100, 100))
            return {"shot": shot.model_dump(), "w": shot.compressedWidth}
        """
    )
    assert outcome.state == "success", outcome.error
    assert runner.session.calls == [
        ("browse", {"url": "https://example.org", "clear_existing_data": True}),
        ("tap", {"x": 10, "y": 20.5}),
        ("write_text", {"text": "hi", "clear": True}),
        ("input_key", {"key": "Enter"}),
        ("find", {"text": "OK"}),
        ("evaluate", {"js": "1 + 1"}),
        ("screen_content", {}),
        (
            "screenshot",
            {"max_width": 540, "max_height": 960, "quality": 80, "crop": [0, 0, 100, 100]},
        ),
    ]
    assert outcome.data == {"shot": SCREENSHOT, "w": 540}


async def test_a_driver_error_is_raised_as_action_failed(runner: Runner) -> None:
    runner.session.errors = {"tap": "nothing to tap at (1, 2)"}
    outcome = await runner.run(
        """
        from agent.sdk import ActionFailed

        def main(agent):
            try:
                agent.actions.tap(1, 2)
            except ActionFailed as exc:
                return {"type": type(exc).__name__, "action": exc.action, "message": str(exc)}
        """
    )
    assert outcome.data == {
        "type": "ActionFailed",
        "action": "tap",
        "message": "tap: nothing to tap at (1, 2)",
    }


async def test_an_uncaught_action_failure_fails_the_task(runner: Runner) -> None:
    runner.session.errors = {"browse": "net::ERR_NAME_NOT_RESOLVED"}
    outcome = await runner.run(
        "async def main(agent):\n    await agent.actions.browse('https://nowhere.invalid')\n"
    )
    assert outcome.reason == "script_error"
    assert (outcome.error or "").startswith(
        "ActionFailed: browse: net::ERR_NAME_NOT_RESOLVED\nTraceback (script frames"
    )


async def test_concurrent_actions_from_an_async_script(runner: Runner) -> None:
    outcome = await runner.run(
        """
        import asyncio

        async def main(agent):
            await asyncio.gather(*(agent.actions.tap(i, i) for i in range(20)))
        """
    )
    assert outcome.state == "success", outcome.error
    assert sorted(p["x"] for _, p in runner.session.calls) == list(range(20))
