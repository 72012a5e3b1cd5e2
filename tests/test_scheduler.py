"""The scheduler under outbox pressure (past the high-water mark it takes no task, and says so),
and devices removed from the configuration (SIGHUP): an idle one goes at once, a busy one after
its task."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from agent import protocol as p
from agent.backend import CoordinatorBackend
from agent.config import CoordinatorSettings
from agent.link import Link
from agent.outbox import Outbox, OutboxSettings
from agent.sandbox import probe
from agent.scheduler import Scheduler, Slot
from agent.script_settings import ScriptSettings
from drivers.base import Device, DeviceSession, SessionSettings
from tests.schedharness import poll, running_harness

log = logging.getLogger("test.scheduler")


class IdleDevice(Device):
    """A device that is always available and never used: only its slot is under test."""

    kind = "sim"
    slot = "idle-1"

    async def start(self) -> None:
        return None

    async def open_session(
        self, task_id: str, settings: SessionSettings | None = None
    ) -> DeviceSession:
        raise AssertionError("no task may start in this test")

    def state(self) -> p.DeviceState:
        return "available"

    def properties(self) -> dict[str, Any]:
        return {}

    async def stop(self) -> None:
        return None


async def test_over_the_high_water_mark_no_task_is_taken(tmp_path: Path) -> None:
    outbox = await Outbox.open(
        tmp_path / "state.db", OutboxSettings(max_items=10, high_water=0.5), log
    )

    async def nothing(*args: Any) -> None:
        return None

    def no_hello() -> p.Hello:
        raise AssertionError("the link is never opened in this test")

    link = Link(CoordinatorSettings(), "token", no_hello, nothing, nothing, outbox.on_ack, log)
    scheduler = Scheduler(
        slots={"dev-1": Slot(remote_device_id="dev-1", device=IdleDevice())},
        link=link,
        outbox=outbox,
        backend=CoordinatorBackend(link, outbox, 1.0),
        isolation=probe(ScriptSettings()),
        log=log,
    )
    try:
        assert scheduler.free_devices() == ["dev-1"]
        assert scheduler.hello("h1", "t").accepting
        for i in range(5):
            await outbox.put(
                p.Submit(key=f"k{i}", task_id="t1", seq=i, status="success", data={}, finish=True)
            )
        assert scheduler.free_devices() == []
        hello = scheduler.hello("h1", "t")
        assert not hello.accepting and hello.running_tasks == ["t1"]
        await scheduler.on_frame(
            p.Assign(
                task=p.Assignment(
                    task_id="t2",
                    job_id="j",
                    remote_device_id="dev-1",
                    script_sha256="0",
                    script_source="",
                    timeout_s=5,
                )
            )
        )
        assert scheduler.slots["dev-1"].task is None  # rejected: not accepting
    finally:
        await outbox.close()


async def test_a_removed_device_goes_when_idle_and_a_busy_one_after_its_task(
    tmp_path: Path,
) -> None:
    async with running_harness(tmp_path, "test.scheduler_remove") as h:
        scheduler = h.scheduler
        scheduler.slots["dev-2"] = Slot(remote_device_id="dev-2", device=IdleDevice())
        await scheduler.remove_device("dev-2")
        assert list(scheduler.slots) == ["dev-1"]
        script = "async def main(agent):\n    await agent.actions.tap(1, 1)\n"
        await scheduler.on_frame(h.assign("t1", script))
        await poll(h.device.opening.is_set, "the task's session to be opening")
        await scheduler.remove_device("dev-1")
        assert list(scheduler.slots) == ["dev-1"], "a busy device stays until its task ends"
        assert scheduler.free_devices() == []
        h.device.release.set()
        await poll(lambda: not scheduler.slots, "the device to go once its task ended")
        assert h.device.closed == 1, "its last session is closed, none is opened ahead"
        [end] = [f for f in await h.drain(1) if f["type"] == "finished"]
        assert end["state"] == "success", end
