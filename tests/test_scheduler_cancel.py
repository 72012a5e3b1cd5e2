"""A task cancelled at any point of its life frees its device, and leaves only its end to send.

Each case drives the scheduler with the coordinator's own frames (`assign`, then `cancel` at one
point of the task's life), with a real outbox and the script in the real sandbox; the device is
a small recording one whose opening the test can hold. The outbox's items are taken as the link
would send them and acknowledged, so "nothing left for the task" is what the daemon would hold.
"""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agent import protocol as p
from agent.backend import CoordinatorBackend
from agent.config import CoordinatorSettings
from agent.link import Link
from agent.outbox import Outbox, OutboxSettings
from agent.sandbox import Isolation, probe
from agent.scheduler import Scheduler, Slot
from agent.script_settings import ScriptSettings
from drivers.base import Device, DeviceSession
from tests.taskprocs import task_processes

LOG_NAME = "test.scheduler_cancel"
DEADLINE_S = 60.0

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


class HeldSession(DeviceSession):
    def __init__(self, device: HeldDevice) -> None:
        self.device = device

    async def call(self, action: str, params: dict[str, Any]) -> Any:
        self.device.calls.append(action)
        return None

    async def close(self) -> None:
        self.device.closed += 1


class HeldDevice(Device):
    """Opens a session once `release` is set; counts openings, closes and actions."""

    kind = "sim"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.opening = asyncio.Event()
        self.opened = 0
        self.closed = 0
        self.calls: list[str] = []

    async def start(self) -> None:
        return None

    async def open_session(self, task_id: str) -> DeviceSession:
        self.opened += 1
        self.opening.set()
        await self.release.wait()
        return HeldSession(self)

    def state(self) -> p.DeviceState:
        return "available"

    def properties(self) -> dict[str, Any]:
        return {}

    async def stop(self) -> None:
        return None


async def poll(check: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class Harness:
    def __init__(self, outbox: Outbox, scheduler: Scheduler, device: HeldDevice) -> None:
        self.outbox = outbox
        self.scheduler = scheduler
        self.device = device
        self.sent: list[dict[str, Any]] = []

    @property
    def slot(self) -> Slot:
        return self.scheduler.slots["dev-1"]

    def assign(self, task_id: str, source: str) -> p.Assign:
        return p.Assign(
            task=p.Assignment(
                task_id=task_id,
                job_id="job-1",
                remote_device_id="dev-1",
                script_sha256="0" * 64,
                script_source=textwrap.dedent(source),
                timeout_s=120,
            )
        )

    async def drain(self, count: int) -> list[dict[str, Any]]:
        """Take the outbox's items as a connected link would and acknowledge each: returns
        the frames, once `count` of them were sent."""
        sent: list[dict[str, Any]] = []

        async def send(raw: str) -> None:
            sent.append(json.loads(raw))

        connected = asyncio.Event()
        connected.set()
        self.outbox.restart_delivery()
        delivery = asyncio.create_task(self.outbox.deliver(send, connected))
        try:
            await poll(lambda: len(sent) >= count, f"{count} frame(s) from the outbox")
        finally:
            delivery.cancel()
            await asyncio.gather(delivery, return_exceptions=True)
        for frame in sent:
            self.outbox.on_ack(p.SubmitAck(key=frame["key"], ok=True))
        await poll(lambda: self.outbox.items == 0, "the outbox to hold nothing")
        return sent


@pytest.fixture
async def harness(tmp_path: Path) -> Any:
    log = logging.getLogger(LOG_NAME)
    outbox = await Outbox.open(tmp_path / "state.db", OutboxSettings(), log)

    async def nothing(*args: Any) -> None:
        return None

    def no_hello() -> p.Hello:
        raise AssertionError("the link is never opened in this test")

    link = Link(CoordinatorSettings(), "token", no_hello, nothing, nothing, outbox.on_ack, log)
    isolation: Isolation = probe(ScriptSettings(work_root=tmp_path / "work", kill_grace_s=5))
    assert not isolation.problems, isolation.report()
    device = HeldDevice()
    scheduler = Scheduler(
        slots={"dev-1": Slot(remote_device_id="dev-1", device=device)},
        link=link,
        outbox=outbox,
        backend=CoordinatorBackend(link, outbox, 0.1),
        isolation=isolation,
        log=log,
    )
    try:
        yield Harness(outbox, scheduler, device)
    finally:
        await scheduler.stop()
        await outbox.close()


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
    assert h.scheduler.free_devices() == ["dev-1"]
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
