"""`agent.actions`: each method is one driver call; driver errors come back as ActionFailed."""

from __future__ import annotations

import inspect

from agent.hostapi import HANDLERS
from agent.scriptrpc import ACTION_NAMES
from agent.sdk import Actions
from agent.sdk.unawaited import is_coroutine_method
from drivers.browser.config import BrowserSettings, BrowserSlot
from drivers.browser.device import BrowserDevice
from drivers.browser.host import ChromiumHost
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


async def test_recognize_text_save_file_and_airplane_on_a_real_browser(runner: Runner) -> None:
    """Through the sandboxed script host to a real Chromium: OCR results read by attribute and
    by key, a saved file opened by the name save_file gave, a clear refusal of airplane, and
    the device still usable after each bad call."""
    chromium = ChromiumHost(BrowserSettings())
    await chromium.start()
    device = BrowserDevice(BrowserSlot(name="browser-1"), chromium, BrowserSettings())
    await device.start()
    session = await device.open_session("task-1")
    runner.session = session  # type: ignore[assignment]
    try:
        outcome = await runner.run(
            """
            from agent.sdk import ActionFailed

            AT = 'style="position:absolute;left:40px;margin:0;top:'
            PAGE = ('data:text/html,<body style="margin:0;font:40px sans-serif">'
                    f'<p {AT}40px">Order 5521 shipped</p><p {AT}400px">Track parcel</p>'
                    '<input id="f" type="file" style="position:absolute;top:1000px">'
                    '</body>')

            async def main(agent):
                await agent.actions.browse(PAGE)
                read = await agent.actions.recognizeText()
                first = read.blocks[0]
                lower = await agent.actions.recognize_text(crop=(0, 380, 1280, 460))
                errors = []
                for bad in ({"crop": (0, 0, 9999, 10)}, {"lang": "nope"}):
                    try:
                        await agent.actions.recognize_text(**bad)
                    except ActionFailed as exc:
                        errors.append(str(exc))
                try:
                    await agent.actions.airplane(True)
                except ActionFailed as exc:
                    errors.append(str(exc))
                name = await agent.actions.save_file("order.txt", read.text)
                with open(name) as saved:
                    kept = saved.read()
                await agent.actions.set_input_files("#f", [name])
                chosen = await agent.actions.evaluate("document.getElementById('f').files[0].name")
                return {
                    "text": read.text, "same": read["text"] == read.text,
                    "first": [first.text, first["x"], first.y, first.confidence > 0],
                    "lower": lower.text, "errors": errors, "name": name,
                    "kept": kept, "chosen": chosen,
                }
            """
        )
    finally:
        await session.close()
        await device.stop()
        await chromium.stop()
    assert outcome.state == "success", outcome.error
    data = outcome.data or {}
    assert data["text"] == "Order 5521 shipped\nTrack parcel"
    assert data["same"] is True
    assert data["first"][0] == "Order" and 30 <= data["first"][1] <= 50 and data["first"][3]
    assert data["lower"] == "Track parcel"
    crop_error, lang_error, airplane_error = data["errors"]
    assert crop_error.startswith("recognize_text: crop [0, 0, 9999, 10] is outside the 1280x720")
    assert "lang" in lang_error and "no Tesseract data for nope" in lang_error
    assert airplane_error == "airplane: action 'airplane' is not available on browser devices"
    assert data["name"] == "order.txt" and data["kept"] == data["text"]
    assert data["chosen"] == "order.txt"
