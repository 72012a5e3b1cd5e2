"""A scheduler driven as the coordinator would, with a real outbox and the real sandbox.

The device is a small recording one whose session opening a test can hold (`release`); the
outbox's items are taken as the link would send them and acknowledged (`Harness.drain`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
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
from drivers.base import Device, DeviceSession, SessionSettings

DEADLINE_S = 60.0


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
        self.settings: list[SessionSettings | None] = []
        """What each session was opened with."""
        self.closed = 0
        self.calls: list[str] = []

    async def start(self) -> None:
        return None

    async def open_session(
        self, task_id: str, settings: SessionSettings | None = None
    ) -> DeviceSession:
        self.opened += 1
        self.settings.append(settings)
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
        self.timelines: list[dict[str, Any]] = []
        """The `timeline` frames `drain` took."""

    @property
    def slot(self) -> Slot:
        return self.scheduler.slots["dev-1"]

    def assign(self, task_id: str, source: str, **fields: Any) -> p.Assign:
        return p.Assign(
            task=p.Assignment(
                task_id=task_id,
                job_id="job-1",
                remote_device_id="dev-1",
                script_sha256="0" * 64,
                script_source=textwrap.dedent(source),
                timeout_s=120,
                **fields,
            )
        )

    async def drain(self, count: int) -> list[dict[str, Any]]:
        """Take the outbox's items as a connected link would and acknowledge each: returns
        the frames, once `count` of them were sent. Timeline batches (which go ahead of each
        task's end) are acknowledged too but not counted: they are kept in `timelines`."""
        sent: list[dict[str, Any]] = []

        async def send(raw: str) -> None:
            sent.append(json.loads(raw))

        def results() -> list[dict[str, Any]]:
            return [f for f in sent if f["type"] != "timeline"]

        connected = asyncio.Event()
        connected.set()
        self.outbox.restart_delivery()
        delivery = asyncio.create_task(self.outbox.deliver(send, connected))
        try:
            await poll(lambda: len(results()) >= count, f"{count} frame(s) from the outbox")
        finally:
            delivery.cancel()
            await asyncio.gather(delivery, return_exceptions=True)
        for frame in sent:
            self.outbox.on_ack(p.SubmitAck(key=frame["key"], ok=True))
        await poll(lambda: self.outbox.items == 0, "the outbox to hold nothing")
        self.timelines += [f for f in sent if f["type"] == "timeline"]
        return results()


@asynccontextmanager
async def running_harness(tmp_path: Path, log_name: str) -> AsyncIterator[Harness]:
    log = logging.getLogger(log_name)
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


def install_under_tmp() -> list[str]:
    """What a fresh sandbox's private /tmp shows: nothing, but for the mount point of the
    install when it lives under /tmp (a CI checkout), bound read-only on top of it."""
    install = [Path(sys.prefix).resolve(), Path(__file__).resolve().parents[1]]
    return sorted({p.parts[2] for p in install if p.parts[1] == "tmp"})


def warm(caplog: pytest.LogCaptureFixture, task_id: str) -> bool:
    """Whether the task ran in the script host started ahead for its device."""
    wanted = f"task {task_id}: runs in the script host started ahead"
    return any(record.getMessage() == wanted for record in caplog.records)
