"""What every script-call handler gets: the task it serves, and the daemon's links for it.

A `TaskContext` is made by agent/runner.py for one task and lives as long as its script. All
identity comes from here (the assignment the coordinator gave), never from what the script sends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from agent.protocol import Assignment, Dump, FinalState, Submit
from agent.timeline import Timeline
from drivers.base import DeviceSession


class BackendError(Exception):
    """The coordinator refused a request, did not answer in time, or cannot be reached."""


class NotStored(BackendError):
    """The host could not store a submission (its disk is full): nothing was sent."""


class JobBackend(Protocol):
    """The daemon's coordinator link, as the script API needs it."""

    async def submit(self, frame: Submit | Dump) -> dict[str, Any]:
        """Deliver (or durably queue) one submission or data dump; returns the result the script
        sees: {"success": True, **ack.result} (a dump's job_task_id and job_id), {"success": True,
        "queued": True} when queued offline, or {"success": False, "error": "..."}. Raises
        NotStored when the host could not store it."""
        ...

    async def request(self, task_id: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The coordinator's reply result; raises BackendError on ok=false, timeout, no link."""
        ...


@dataclass(frozen=True)
class FinalSubmission:
    state: FinalState
    data: dict[str, Any]


@dataclass
class TaskContext:
    assignment: Assignment
    session: DeviceSession
    device_info: dict[str, Any]
    backend: JobBackend
    log: logging.Logger
    max_file_bytes: int
    request_timeout_s: float
    started_at: datetime
    final: FinalSubmission | None = None
    """Set once a finish=True submission succeeded; it then decides the task's outcome."""
    device_lost: str | None = None
    """Set when the driver reported the device gone; the task then fails with device_lost."""
    on_call: Callable[[str, float], None] | None = None
    """Told each call's method and duration (the daemon's metrics)."""
    timeline: Timeline | None = None
    """The run's timeline: each call, log line and note is recorded there."""
    submit_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Submissions go out one at a time, in the order the script made them."""
    _next_seq: int = 0

    @property
    def task_id(self) -> str:
        return self.assignment.task_id

    @property
    def next_seq(self) -> int:
        """The seq of the task's next submission."""
        return self._next_seq

    def seq_used(self) -> None:
        """The submission numbered `next_seq` was stored: the next one gets the next number.
        A submission that could not be stored uses none, so the coordinator sees no gap."""
        self._next_seq += 1
