"""A session opened ahead (a browser context) that its task never used goes to the next task as
it is: no reset, no new session; one a task used is reset and a fresh one opened (agent/ahead.py,
agent/opening.py). The scheduler runs with a real outbox and sandbox (tests/schedharness.py)."""

from __future__ import annotations

from pathlib import Path

from tests.schedharness import poll, running_harness

TAP = "async def main(agent):\n    await agent.actions.tap(1, 1)\n"
NOTHING = "async def main(agent):\n    return {'touched': False}\n"


async def test_an_unused_session_is_the_next_tasks_as_it_is(tmp_path: Path) -> None:
    async with running_harness(tmp_path, "test.session_reuse") as h:
        h.device.open_ahead = True  # as a browser: its next session is opened while idle
        h.device.release.set()
        await h.scheduler.on_frame(h.assign("t-1", TAP))
        await h.drain(1)
        await poll(lambda: (h.device.opened, h.device.closed) == (2, 1), "t-1's reset")

        await h.scheduler.on_frame(h.assign("t-2", NOTHING))
        (untouched,) = await h.drain(1)
        assert untouched["state"] == "success", untouched
        await h.scheduler.on_frame(h.assign("t-3", TAP))
        (used,) = await h.drain(1)
        assert used["state"] == "success", used
        # t-3 tapped in the session t-2 left unused: nothing closed or opened in between
        assert h.device.calls == ["tap", "tap"]
        await poll(lambda: (h.device.opened, h.device.closed) == (3, 2), "t-3's reset")
