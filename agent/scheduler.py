"""Task slots: one task at a time per device, from `assign` to `finished`.

The scheduler answers the coordinator's `assign` and `cancel` frames, runs each accepted task
as its own asyncio task, and knows which devices are free (the host's credits). A task's
`finished` frame goes through the outbox like a submission; until it is acknowledged the task
counts as still held in `hello`, so the coordinator never declares it lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from agent import protocol as p
from agent.ahead import Ahead
from agent.link import Link, LinkDown
from agent.metrics import DaemonMetrics
from agent.opening import OpeningSession
from agent.outbox import Outbox, OutboxError
from agent.runner import JobBackend, TaskOutcome, run_task
from agent.sandbox import Isolation
from agent.timeline import ArtifactBlob, Timeline, TimelineEntry, note_outcome
from drivers.base import Device

FAILING_CANCELS = frozenset({"agent_stopped", "device_lost"})
"""Why a task may be cut short other than by the coordinator's cancel: these end it failed."""


@dataclass
class Slot:
    remote_device_id: str
    device: Device
    task: asyncio.Task[None] | None = None
    interruptible: bool = False
    """Whether `task` may be cancelled now: from entering its body until its outcome is known.
    A task cancelled before it runs never runs its body, and one cancelled while it records its
    end would lose it; either way its slot would stay busy. Outside that window a cancel is
    only recorded (`cancel_reason`), and the body acts on it."""
    cancel_reason: str | None = None
    cancel_error: str | None = None
    """What the task's `error` says when it is cut short by this host (device lost)."""
    ahead: Ahead | None = None
    """The next task's script host and session, made while the device is idle."""
    started_at: float = 0.0
    """When its task was taken (monotonic): the task's duration is a metric."""
    retiring: bool = False
    """Removed from the configuration while busy: it goes once its task has ended."""

    def state(self) -> p.DeviceState:
        """The device's state as this host sees it: `busy` while its slot runs a task."""
        return "busy" if self.task is not None else self.device.state()

    def info(self) -> p.DeviceInfo:
        """The device as reported to the coordinator: its own state, not its slot's (the
        coordinator knows which devices run a task), so a task's start or end changes nothing
        here and sends no `devices` frame."""
        return p.DeviceInfo(
            remote_device_id=self.remote_device_id,
            kind=self.device.kind,
            state=self.device.state(),
            properties=self.device.properties(),
        )

    def script_device_info(self) -> dict[str, Any]:
        return {"id": self.remote_device_id, "kind": self.device.kind, **self.device.properties()}


@dataclass
class Scheduler:
    slots: dict[str, Slot]
    link: Link
    outbox: Outbox
    backend: JobBackend
    isolation: Isolation
    log: logging.Logger
    stopping: bool = False
    metrics: DaemonMetrics = field(default_factory=DaemonMetrics)
    on_timeline: Callable[[str, TimelineEntry], None] | None = None
    """Told each timeline entry of each run, with its task's id (`device-agent script run`
    prints them as they happen)."""
    _background: set[asyncio.Task[None]] = field(default_factory=set)
    _taking: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while an assignment is being accepted: `stop` waits for it to be running."""
    _reported: list[p.DeviceInfo] | None = None
    """The device list the coordinator got last on this session (in `hello` or `devices`)."""

    @property
    def pause_reason(self) -> str | None:
        """Why the host takes no new task now (`draining`, `disk_full`, ...), or None."""
        return "draining" if self.stopping else self.outbox.pause_reason()

    @property
    def accepting(self) -> bool:
        return self.pause_reason is None

    def hello(self, host_id: str, agent_version: str) -> p.Hello:
        self._reported = self._devices()
        return p.Hello(
            protocol_version=p.PROTOCOL_VERSION,
            host_id=host_id,
            agent_version=agent_version,
            devices=self._reported,
            running_tasks=self.held_tasks(),
            accepting=self.accepting,
            pause_reason=self.pause_reason,
        )

    def heartbeat(self) -> p.Heartbeat:
        return p.Heartbeat(
            sent_at=datetime.now(UTC), accepting=self.accepting, pause_reason=self.pause_reason
        )

    def held_tasks(self) -> list[str]:
        running = {s.task.get_name() for s in self.slots.values() if s.task is not None}
        return sorted(running | self.outbox.held_tasks())

    def free_devices(self) -> list[str]:
        if not self.accepting:
            return []
        return [
            rid
            for rid, slot in self.slots.items()
            if slot.task is None
            and not slot.retiring
            and slot.device.state() == "available"
            and not (slot.ahead is not None and slot.ahead.preparing)
        ]

    async def on_session(self) -> None:
        """A new session: the outbox starts over from its oldest item; ask for work."""
        self.outbox.restart_delivery()
        await self.link.send(p.Credits(free=self.free_devices()))

    def pressure_changed(self) -> None:
        """The outbox crossed its high-water mark or its disk got short or has room again, or
        a device got ready for its next task: tell the coordinator what is free now (this is
        how it learns to assign again)."""
        task = asyncio.create_task(self.devices_changed())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def add_device(self, remote_device_id: str, device: Device) -> None:
        """A device appeared (at start or hot-plugged): offer it to the coordinator."""
        slot = Slot(remote_device_id=remote_device_id, device=device)
        self.slots[remote_device_id] = slot
        self._ahead(slot).prepare()
        await self.devices_changed()

    def _devices(self) -> list[p.DeviceInfo]:
        return [slot.info() for slot in self.slots.values()]

    async def devices_changed(self) -> None:
        """A device or a slot changed: send the full device list if it differs from the one
        the coordinator has (each one it gets is a write there), and fresh credits."""
        devices = self._devices()
        try:
            if devices != self._reported:
                # Noted before the send: a session opened meanwhile sends its own in `hello`.
                self._reported = devices
                await self.link.send(p.Devices(devices=devices))
            await self.link.send(p.Credits(free=self.free_devices()))
        except LinkDown:
            self._reported = None  # the next hello carries them, or the next change resends

    async def remove_device(self, remote_device_id: str) -> None:
        """A device left the configuration: it goes now when idle, else once its task ends."""
        slot = self.slots.get(remote_device_id)
        if slot is None:
            return
        slot.retiring = True
        if slot.task is None:
            await self._retire(slot)
        else:
            self.log.info(
                "device %s leaves once task %s ends", remote_device_id, slot.task.get_name()
            )
        await self.devices_changed()

    async def _retire(self, slot: Slot) -> None:
        del self.slots[slot.remote_device_id]
        if slot.ahead is not None:
            await slot.ahead.discard()
        await slot.device.stop()
        self.log.info("device %s removed", slot.remote_device_id)

    def device_lost(self, remote_device_id: str) -> None:
        """The device vanished: its running task (if any) ends failed with reason device_lost."""
        slot = self.slots.get(remote_device_id)
        if slot is not None and slot.task is not None:
            self.log.warning(
                "device %s lost during task %s", remote_device_id, slot.task.get_name()
            )
            why = slot.device.properties().get("last_error") or f"it is {slot.device.state()}"
            self._interrupt(slot, "device_lost", f"the device was lost while the task ran: {why}")

    async def on_frame(self, frame: p.CoordinatorFrame) -> None:
        if isinstance(frame, p.Assign):
            await self._assign(frame.task)
        elif isinstance(frame, p.Cancel):
            self._cancel(frame.task_id, frame.reason)

    async def _assign(self, task: p.Assignment) -> None:
        async with self._taking:
            await self._take(task)

    async def _take(self, task: p.Assignment) -> None:
        slot = self.slots.get(task.remote_device_id)
        reason = None
        if not self.accepting:
            reason = "disk_full" if self.outbox.disk_short else "not_accepting"
        elif slot is None:
            reason = "unknown_device"
        elif slot.task is not None or slot.device.state() != "available":
            reason = "device_busy"
        if reason is None and slot is not None:
            try:
                await self.outbox.task_started(task.task_id, slot.remote_device_id)
            except OutboxError as exc:
                self.log.error("cannot record task %s: %s", task.task_id, exc)
                reason = "disk_full" if self.outbox.disk_short else "outbox_unavailable"
        if reason is not None or slot is None:
            self.log.warning(
                "rejected task %s: %s",
                task.task_id,
                reason,
                extra=_fields(task, task.remote_device_id),
            )
            await self._send_quietly(p.Reject(task_id=task.task_id, reason=reason or "unknown"))
            # Fresh credits after every reject: the coordinator re-offers exactly what is free,
            # so no reject keeps a device out of work once the reason is gone.
            await self._send_quietly(p.Credits(free=self.free_devices()))
            return
        slot.interruptible = False
        slot.cancel_reason = slot.cancel_error = None
        slot.started_at = time.monotonic()
        slot.task = asyncio.create_task(self._run(slot, task), name=task.task_id)
        await self._send_quietly(p.Accept(task_id=task.task_id))

    def _cancel(self, task_id: str, reason: str) -> None:
        for slot in self.slots.values():
            if slot.task is not None and slot.task.get_name() == task_id:
                self.log.info("cancelling task %s: %s", task_id, reason)
                self._interrupt(slot, reason)
                return
        self.log.info("ignored cancel for task %s: not running here", task_id)

    @staticmethod
    def _interrupt(slot: Slot, reason: str, error: str | None = None) -> None:
        """Cut the slot's task short; the first reason given is the one reported."""
        if slot.task is None or slot.cancel_reason is not None:
            return
        slot.cancel_reason = reason
        slot.cancel_error = error
        if slot.interruptible:
            slot.task.cancel()

    def _ahead(self, slot: Slot) -> Ahead:
        if slot.ahead is None:
            slot.ahead = Ahead(slot.device, self.isolation, self.log, self.pressure_changed)
        return slot.ahead

    async def _run(self, slot: Slot, task: p.Assignment) -> None:
        slot.interruptible = True
        self.log.info(
            "task %s started on %s",
            task.task_id,
            slot.remote_device_id,
            extra=_fields(task, slot.remote_device_id),
        )
        cancelled = False
        ahead = self._ahead(slot)
        session: OpeningSession | None = None
        settings = self.isolation.settings
        timeline = Timeline(
            partial(self._put_timeline, task),
            settings.timeline_max_entries,
            settings.artifacts_max_bytes,
            self.log,
            on_entry=None if self.on_timeline is None else partial(self.on_timeline, task.task_id),
        )
        try:
            if slot.cancel_reason is not None:
                raise asyncio.CancelledError  # cancelled before it began: end it the same way
            session = ahead.session(task)
            outcome = await self._execute(slot, task, session, timeline)
        except asyncio.CancelledError:
            cancelled = True
            reason = slot.cancel_reason or "agent_stopped"
            state: p.FinalState = "failed" if reason in FAILING_CANCELS else "cancelled"
            error = slot.cancel_error
            if reason == "agent_stopped":
                error = "the daemon was stopped while the task ran"
            outcome = TaskOutcome(state=state, reason=reason, error=error)
        slot.interruptible = False
        if self.stopping or slot.retiring:
            if session is not None:
                await session.close()
        else:
            # The reset (closing the session) and the next task's host and session are made
            # after the outcome is known, off this task's report and the next task's path.
            ahead.prepare(previous=session)
        await self._finish(slot, task, outcome, timeline)
        if cancelled:
            raise asyncio.CancelledError

    async def _execute(
        self, slot: Slot, task: p.Assignment, session: OpeningSession, timeline: Timeline
    ) -> TaskOutcome:
        await self._send_quietly(
            p.Started(task_id=task.task_id, started_at=datetime.now(UTC), attempt=task.attempt)
        )
        host = await self._ahead(slot).host(task.task_id)
        return await run_task(
            task,
            session,
            slot.script_device_info(),
            self.backend,
            self.isolation,
            self.log,
            host,
            self.metrics.action_done,
            timeline,
        )

    async def _put_timeline(
        self, task: p.Assignment, entries: list[TimelineEntry], artifacts: list[ArtifactBlob]
    ) -> None:
        await self.outbox.put(self._timeline_frame(task, entries, artifacts))

    @staticmethod
    def _timeline_frame(
        task: p.Assignment, entries: list[TimelineEntry], artifacts: list[ArtifactBlob]
    ) -> p.TimelineBatch:
        return p.TimelineBatch(
            key=uuid.uuid4().hex,
            task_id=task.task_id,
            attempt=task.attempt,
            entries=entries,
            artifacts=artifacts,
        )

    async def _finish(
        self, slot: Slot, task: p.Assignment, outcome: TaskOutcome, timeline: Timeline
    ) -> None:
        self.log.info(
            "task %s finished: %s%s%s",
            task.task_id,
            outcome.state,
            f" ({outcome.reason})" if outcome.reason else "",
            f": {outcome.error}" if outcome.error and outcome.state == "success" else "",
            extra=_fields(task, slot.remote_device_id),
        )
        self.metrics.task_ended(outcome.state, outcome.reason, time.monotonic() - slot.started_at)
        note_outcome(timeline, outcome.state, outcome.reason, outcome.error)
        entries, artifacts = timeline.last_batch()
        finished = p.Finished(
            key=uuid.uuid4().hex,
            task_id=task.task_id,
            state=outcome.state,
            reason=outcome.reason,
            error=outcome.error,
            data=outcome.data,
            finished_at=datetime.now(UTC),
            attempt=task.attempt,
        )
        # The run's last timeline batch goes just ahead of its `finished`, in the same commit.
        ahead = self._timeline_frame(task, entries, artifacts) if entries or artifacts else None
        try:
            # On a full disk this waits (the outbox retries) until the end is stored.
            await self.outbox.put(finished, ends_task=True, ahead=ahead)
        except OutboxError as exc:
            self.log.error("task %s: its end could not be recorded: %s", task.task_id, exc)
        slot.task = None
        if slot.retiring and not self.stopping:
            await self._retire(slot)
        # The slot is no longer busy: report its device's own state (which may have changed
        # under the task: lost, quarantined) with the fresh credits.
        await self.devices_changed()

    async def _send_quietly(self, frame: p.Frame) -> None:
        """Send a frame whose loss the protocol tolerates (reconciliation covers it)."""
        try:
            await self.link.send(frame)
        except LinkDown:
            self.log.info("could not send %s: link down", frame.__class__.__name__.lower())

    def busy_count(self) -> int:
        return sum(slot.task is not None for slot in self.slots.values())

    async def begin_drain(self) -> None:
        """Take no more tasks and tell the coordinator now (empty credits, a heartbeat saying
        why), not at the next heartbeat: it must not assign to a host that is going away."""
        self.stopping = True  # each ending task sends the credits: empty from now on
        async with self._taking:
            pass  # an assignment being accepted is running once this returns
        await self._send_quietly(p.Credits(free=[]))
        await self._send_quietly(self.heartbeat())

    async def wait_idle(self) -> None:
        """Return once no task runs (after `begin_drain`, none starts)."""
        while tasks := [s.task for s in self.slots.values() if s.task is not None]:
            await asyncio.wait(tasks)

    async def stop(self) -> None:
        """Take no more tasks; kill every running script and return once each one's end
        (failed, reason agent_stopped) is committed to the outbox."""
        self.stopping = True
        self.outbox.stop_retrying()
        async with self._taking:
            busy = [s for s in self.slots.values() if s.task is not None]
        if busy:
            self.log.info("stopping: ending %d running task(s)", len(busy))
        tasks = [s.task for s in busy if s.task is not None]
        for slot in busy:
            self._interrupt(slot, "agent_stopped")
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(
            *(s.ahead.discard() for s in self.slots.values() if s.ahead is not None)
        )


def _fields(task: p.Assignment, device: str) -> dict[str, object]:
    """What a json log line of the task carries (agent/logsetup.py)."""
    return {"task_id": task.task_id, "device": device, "attempt": task.attempt}
