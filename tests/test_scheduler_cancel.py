"""A task cancelled at any point of its life frees its device, and leaves only its end to send.

Each case drives the scheduler with the coordinator's own frames (`assign`, then `cancel` at one
point of the task's life), with a real outbox and the script in the real sandbox; the device is
a small recording one whose opening the test can hold. The outbox's items are taken as the link
would send them and acknowledged, so "nothing left for the task" is what the daemon would hold.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from agent import protocol as p
from tests.schedharness import Harness, poll, running_harness
from tests.taskprocs import task_processes

LOG_NAME = "test.scheduler_cancel"

SCRIPT = """
import asyncio
import time
print("loading", flush=True)
time.sleep(LOAD_S)  # a top level still loading (LOAD_S > 0) is the point the cancel must hit

async def main(agent):
    await agent.actions.tap(1, 1)
    if FINAL:
        await agent.utils.job.submit_task("success", {"done": 1}, True)
        print("submitted", flush=True)
    await asyncio.sleep(60)
"""


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_harness(tmp_path, LOG_NAME) as h:
        yield h


def logged(caplog: pytest.LogCaptureFixture, text: str) -> Callable[[], bool]:
    return lambda: any(text in record.getMessage() for record in caplog.records)


async def _before_start(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    return None  # the cancel follows the assign at once: the task has not run a step


async def _session_opening(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    await poll(h.device.opening.is_set, "the session to be opening")


async def _script_loading(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h.device.release.set()
    await poll(logged(caplog, "loading"), "the script's top level to run")


async def _mid_script(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h.device.release.set()
    await poll(lambda: h.device.calls == ["tap"], "the script's first action")


async def _after_final_submission(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h.device.release.set()
    await poll(logged(caplog, "submitted"), "the script's final submission")


POINTS: dict[str, tuple[Callable[[Harness, pytest.LogCaptureFixture], Awaitable[None]], str]] = {
    "before_start": (_before_start, "LOAD_S = 0\nFINAL = False"),
    "session_opening": (_session_opening, "LOAD_S = 0\nFINAL = False"),
    "script_loading": (_script_loading, "LOAD_S = 60\nFINAL = False"),
    "mid_script": (_mid_script, "LOAD_S = 0\nFINAL = False"),
    "after_final_submission": (_after_final_submission, "LOAD_S = 0\nFINAL = True"),
}


@pytest.mark.parametrize("point", list(POINTS))
async def test_cancel_frees_the_device_and_leaves_only_the_end(
    harness: Harness, caplog: pytest.LogCaptureFixture, point: str
) -> None:
    caplog.set_level(logging.INFO, logger=LOG_NAME)
    reach, constants = POINTS[point]
    h = harness
    await h.scheduler.on_frame(h.assign("t-1", constants + SCRIPT))
    await reach(h, caplog)
    await h.scheduler.on_frame(p.Cancel(task_id="t-1", reason="cancelled_by_user"))

    await poll(lambda: h.slot.task is None, "the slot to be free")
    # Offered again once its next task's script host is ready (agent/ahead.py).
    await poll(lambda: h.scheduler.free_devices() == ["dev-1"], "the device to be offered")
    assert task_processes("t-1") == []
    assert await h.outbox.orphaned_tasks() == []
    if point == "before_start":
        assert h.device.opened == 0  # the cancel came before the task's first step
    # The session is closed (the device reset) after the task's end, off its path.
    closed = h.device.opened - (1 if point == "session_opening" else 0)
    await poll(lambda: h.device.closed == closed, f"{closed} session(s) closed")

    frames = await h.drain(2 if point == "after_final_submission" else 1)
    assert [f["type"] for f in frames][-1] == "finished"
    finished = frames[-1]
    assert (finished["task_id"], finished["state"], finished["reason"]) == (
        "t-1",
        "cancelled",
        "cancelled_by_user",
    )
    if point == "after_final_submission":
        assert frames[0]["type"] == "submit" and frames[0]["finish"] is True

    # The device takes the next task and runs it to its end.
    h.device.release.set()
    done = "async def main(agent):\n    await agent.actions.tap(2, 2)\n    return {'ok': True}\n"
    await h.scheduler.on_frame(h.assign("t-2", done))
    (end,) = await h.drain(1)
    assert (end["task_id"], end["state"], end["data"]) == ("t-2", "success", {"ok": True})
    assert h.slot.task is None or h.slot.task.get_name() == "t-2"
