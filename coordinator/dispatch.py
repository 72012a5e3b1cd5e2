"""Dispatch: hands pending tasks to the free devices of connected hosts.

Anything that can make work possible (credits, new tasks, a task ending, a host connecting or
leaving) calls `wake()`, which returns at once; one background task runs dispatch passes, so
requests coalesce and no caller waits for a pass (`settle()` is for the few that must see its
outcome). A pass takes every device offered by a session that accepts work, drops those that
still have an active task, reads the queue heads those devices could take in one statement,
matches them oldest first (a pinned task to its device, an unpinned one to any free device, one
not wanted by a pinned task first), and assigns them all in one transaction; the `assign`
frames are then posted, in order, to each host's send queue. Free devices left over take
planned sub-tasks, which become job tasks as they are given out. A task whose `assign` frame
would be over the frame limit is failed at once (`assignment_too_large`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from agent.filenames import script_file_name
from agent.protocol import MAX_FRAME_BYTES, Assign, Assignment, encode
from coordinator.db import Database, now
from coordinator.db_conn import Conn
from coordinator.herald import Herald, WorkNotice
from coordinator.limits import json_bytes
from coordinator.sessions import HostSession, SessionRegistry
from coordinator.store_jobs import JobRow, get_job, get_script
from coordinator.store_planned import any_open_planned, materialise, oldest_planned_for
from coordinator.store_queue import busy_among, mark_all_assigned, queue_heads
from coordinator.store_tasks import TaskRow
from coordinator.task_end import end_run
from drivers.browser.options import BrowserOptions

log = logging.getLogger(__name__)

RETRY_S = 1.0
"""How long after a failed dispatch pass another is tried."""
ASSIGNMENT_TOO_LARGE = "assignment_too_large"
"""Failure reason of a task whose `assign` frame would exceed MAX_FRAME_BYTES."""


@dataclass(frozen=True)
class _Pick:
    session: HostSession
    device_id: str
    task_id: str
    frame: str
    created_at: float


class Dispatcher:
    def __init__(self, db: Database, sessions: SessionRegistry) -> None:
        self._db = db
        self._sessions = sessions
        self.herald: Herald | None = None
        """Set on PostgreSQL (coordinator/herald.py)."""
        self.on_assigned: Callable[[float], None] | None = None
        """Told the seconds from creation to assignment of each task given out (a metric)."""
        self._wanted = asyncio.Event()
        self._requested = 0
        self._served = 0
        self._progress = asyncio.Condition()

    def wake(self) -> None:
        """Ask for a dispatch pass soon."""
        self._requested += 1
        self._wanted.set()

    def announce(self) -> None:
        """Tasks became pending: wake this coordinator's dispatcher and, on PostgreSQL, every
        replica's (their hosts' devices may take them)."""
        self.wake()
        if self.herald is not None:
            self.herald.tell(WorkNotice())

    async def settle(self) -> None:
        """Wake the dispatcher and wait until a pass begun after this call has ended."""
        self.wake()
        wanted = self._requested
        async with self._progress:
            await self._progress.wait_for(lambda: self._served >= wanted)

    async def run(self) -> None:
        """Run passes as they are asked for, until cancelled; a failed pass is logged and
        tried again a second later."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            serving = self._requested
            try:
                while await self._pass():
                    pass
            except Exception:
                log.exception("dispatch pass failed (tried again in %g s)", RETRY_S)
                asyncio.get_running_loop().call_later(RETRY_S, self.wake)
            async with self._progress:
                self._served = serving
                self._progress.notify_all()

    async def _pass(self) -> bool:
        """One pass; whether it gave out or failed any task (then another may find more)."""
        offers: dict[str, HostSession] = {}
        if self._sessions.closing:
            return False  # stopping: what is pending waits for the next start or a replica
        for session in self._sessions.all():
            if session.accepting and not session.closed:
                for device_id in session.credits:
                    if device_id in session.device_ids:
                        offers[device_id] = session
        if not offers:
            return False
        async with self._db.transaction() as conn:
            busy = await busy_among(conn, list(offers))
            free = {d: s for d, s in offers.items() if d not in busy}
            if not free:
                return False
            frames = _Frames(conn, self.announce)
            picks = await _match(conn, free, frames)
            for pick in picks:
                del free[pick.device_id]
            if free and await any_open_planned(conn):
                picks += await _planned(conn, free, frames)
            assigned = await mark_all_assigned(
                conn, [(p.task_id, p.session.host_id, p.device_id) for p in picks]
            )
        picks = [p for p in picks if p.task_id in assigned]
        assigned_at = now()
        for pick in picks:
            if self.on_assigned is not None:
                self.on_assigned(max(0.0, assigned_at - pick.created_at))
            if pick.device_id in pick.session.credits:
                pick.session.credits.remove(pick.device_id)
            pick.session.unaccepted.add(pick.task_id)
            log.debug(
                "task %s assigned to host %s device %s",
                pick.task_id,
                pick.session.host_id,
                pick.device_id,
            )
            # A frame that is never sent leaves its task assigned: the host's reconnect or the
            # timeout frees it.
            pick.session.post(pick.frame)
        return bool(picks) or frames.failed


LATER_FIELDS = ("output_schema", "browser", "script_name")
"""Fields of `Assignment` that daemons from before them do not know."""
LATER_DEFAULTS = {"keep_screenshots": False, "screenshot_on_failure": True}
"""Later fields left out at their defaults (a daemon without them acts as if so, bar the
screenshot on failure, which it never takes)."""


def assign_frame(assignment: Assignment) -> str:
    """The `assign` frame. Without `output_schema`, `browser` or `script_name` when the task has
    none: a daemon
    from before those fields refuses fields it does not know, and so still takes every other
    task."""
    unset = {name for name in LATER_FIELDS if getattr(assignment, name) is None}
    unset |= {name for name, value in LATER_DEFAULTS.items() if getattr(assignment, name) == value}
    if unset:
        return Assign(task=assignment).model_dump_json(exclude={"task": unset})
    return encode(Assign(task=assignment))


def browser_settings(task: TaskRow, job: JobRow) -> BrowserOptions | None:
    """The task's browser settings over its job's; None when they ask for nothing."""
    merged = job.browser if task.browser is None else task.browser.over(job.browser)
    if merged is None or not merged.model_dump(exclude_none=True):
        return None
    return merged


class _Frames:
    """Builds `assign` frames, reading each job and script once per pass."""

    def __init__(self, conn: Conn, announce: Callable[[], None]) -> None:
        self._conn = conn
        self._announce = announce
        self._jobs: dict[str, JobRow] = {}
        self._scripts: dict[str, str] = {}
        self.failed = False
        """Whether a task was failed for an `assign` frame over the limit."""

    async def pick(self, task: TaskRow, device_id: str, session: HostSession) -> _Pick | None:
        """The task given to the device; None (and the task failed) if its frame is too big."""
        frame, problem = await self._assign(task, device_id)
        if frame is None:
            # Failed for good here: sent, it would break the host's link and come back pending
            # at its reconnect, again and again, starving the host's other devices.
            await end_run(
                self._conn,
                task,
                self._announce,
                state="failed",
                reason=ASSIGNMENT_TOO_LARGE,
                error=problem,
                finished_at=now(),
            )
            log.warning("task %s failed (%s): %s", task.id, ASSIGNMENT_TOO_LARGE, problem)
            self.failed = True
            return None
        return _Pick(session, device_id, task.id, frame, task.created_at)

    async def _assign(self, task: TaskRow, device_id: str) -> tuple[str | None, str | None]:
        """The encoded frame, or None and why it cannot be sent."""
        job = self._jobs.get(task.job_id) or await get_job(self._conn, task.job_id)
        source = self._scripts.get(task.script_sha256) or await get_script(
            self._conn, task.script_sha256
        )
        if job is None or source is None:
            raise RuntimeError(f"task {task.id} refers to a missing job or script")
        self._jobs[job.id] = job
        self._scripts[task.script_sha256] = source
        assignment = Assignment(
            task_id=task.id,
            job_id=task.job_id,
            remote_device_id=device_id,
            script_sha256=task.script_sha256,
            script_source=source,
            input=task.input,
            parameters=job.parameters,
            timeout_s=task.timeout_s,
            attempt=task.attempt,
            parent_task_id=task.parent_task_id,
            automation_id=job.automation_id,
            script_name=script_file_name(job.name),
            output_schema=job.output_schema,
            browser=browser_settings(task, job),
            keep_screenshots=job.keep_screenshots,
            screenshot_on_failure=job.screenshot_on_failure,
        )
        frame = assign_frame(assignment)
        size = len(frame.encode())
        if size <= MAX_FRAME_BYTES:
            return frame, None
        return None, (
            f"the assign frame would be {size} bytes, over the websocket frame limit of "
            f"{MAX_FRAME_BYTES} bytes (script {len(source.encode())} bytes, "
            f"input {json_bytes(task.input)} bytes, "
            f"parameters {json_bytes(job.parameters)} bytes)"
        )


async def _match(conn: Conn, free: dict[str, HostSession], frames: _Frames) -> list[_Pick]:
    """Give queue heads to free devices, oldest first."""
    heads = await queue_heads(conn, list(free))
    pinned_wants = {t.pin_device_id for t in heads if t.pin_device_id is not None}
    # Unpinned tasks go first to devices no pinned task waits for.
    anyone = [d for d in free if d not in pinned_wants] + [d for d in free if d in pinned_wants]
    taken: set[str] = set()
    picks: list[_Pick] = []
    for task in heads:
        if task.pin_device_id is not None:
            device_id: str | None = task.pin_device_id if task.pin_device_id not in taken else None
        else:
            device_id = next((d for d in anyone if d not in taken), None)
        if device_id is None:
            continue
        pick = await frames.pick(task, device_id, free[device_id])
        if pick is not None:
            taken.add(device_id)
            picks.append(pick)
    return picks


async def _planned(conn: Conn, free: dict[str, HostSession], frames: _Frames) -> list[_Pick]:
    """Give each free device its oldest planned sub-task, made a job task as it is given."""
    picks = []
    for device_id, session in free.items():
        planned = await oldest_planned_for(conn, device_id)
        task = None if planned is None else await materialise(conn, planned)
        if task is None:
            continue
        pick = await frames.pick(task, device_id, session)
        if pick is not None:
            picks.append(pick)
    return picks
