"""Run one task's user script in its own process and supervise it (daemon side).

`run_task` writes the script into a fresh temp dir, starts `python -m agent.scripthost` there in
its own process group with a scrubbed environment, serves the script's calls over a private
socketpair (agent/scriptrpc.py framing, agent/hostapi handlers), logs the child's stdout/stderr
line by line, enforces the task's timeout, and turns what happened into a `TaskOutcome`.

How the outcome is decided, first rule that applies:
1. a final submission (`submit_task(..., finish=True)`) that the backend accepted wins: its
   status and data are the outcome, whatever the script does afterwards (returns, raises, crashes
   or runs past its timeout): the coordinator already holds the task as final;
2. the driver reported the device lost during the task: failed, reason `device_lost`;
3. the script host reported how `main` ended: returned (success, data = the dict, `{"result": v}`
   for another JSON value, None for None), `stop_current_automation()` (success, no data), raised
   (`script_error`), could not load (`script_load_error`), returned a non-JSON value
   (`bad_return_value`);
4. the task ran past `timeout_s`: `timeout`;
5. the child broke the channel protocol or died without reporting: failed, `script_crashed`.
Whatever happens, the whole process group is ended (SIGTERM, `kill_grace_s`, SIGKILL) and the
temp dir removed before `run_task` returns or re-raises its cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.hostapi import BackendError, CallFailed, JobBackend, TaskContext, dispatch
from agent.protocol import MAX_FILE_BYTES, Assignment, FinalState
from agent.scriptrpc import (
    Call,
    CallError,
    ChannelError,
    Init,
    Reply,
    Report,
    encode,
    parse_child_message,
    read_frame,
)
from agent.sweep import TASK_ENV
from drivers.base import DeviceSession

__all__ = ["BackendError", "JobBackend", "ScriptSettings", "TaskOutcome", "run_task"]

SCRIPT_NAME = "script.py"
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_OUTPUT_LINE_LIMIT = 1024 * 1024
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


class ScriptSettings(BaseModel):
    """The `[scripts]` section of the daemon config: how script hosts are run."""

    model_config = ConfigDict(extra="forbid")

    python: str = Field(
        default=sys.executable,
        description="Interpreter for script hosts; it must be able to import the agent package.",
    )
    kill_grace_s: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between SIGTERM and SIGKILL when a script's process group is ended.",
    )
    max_file_bytes: int = Field(
        default=MAX_FILE_BYTES,
        gt=0,
        le=MAX_FILE_BYTES,
        description="Largest file (decoded) a script may attach to submit_task.",
    )
    work_root: Path | None = Field(
        default=None,
        description="Parent of the per-task temp dirs (created if missing); unset: system temp.",
    )
    request_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a script call waits on the coordinator link before it fails.",
    )


class TaskOutcome(BaseModel):
    """How a task ended, as the daemon reports it in its `finished` frame."""

    state: FinalState
    reason: str | None = None
    error: str | None = None
    data: dict[str, Any] | None = None


async def run_task(
    assignment: Assignment,
    session: DeviceSession,
    device_info: dict[str, Any],
    backend: JobBackend,
    settings: ScriptSettings,
    log: logging.Logger,
) -> TaskOutcome:
    """Run the assignment's script to its end; see the module docstring for the outcome rules.

    Cancelling the asyncio task that awaits this ends the script's process group, cleans up and
    re-raises CancelledError. Any other failure of the daemon's own is returned as
    `failed`/`agent_error`, never raised.
    """
    try:
        return await _run(assignment, session, device_info, backend, settings, log)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("task %s: the script host failed", assignment.task_id)
        return TaskOutcome(
            state="failed", reason="agent_error", error=f"{type(exc).__name__}: {exc}"
        )


async def _run(
    assignment: Assignment,
    session: DeviceSession,
    device_info: dict[str, Any],
    backend: JobBackend,
    settings: ScriptSettings,
    log: logging.Logger,
) -> TaskOutcome:
    if settings.work_root is not None:
        settings.work_root.mkdir(parents=True, exist_ok=True)
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", assignment.task_id)[:40]
    task_dir = Path(tempfile.mkdtemp(prefix=f"task-{safe_id}-", dir=settings.work_root))
    try:
        (task_dir / SCRIPT_NAME).write_text(assignment.script_source, encoding="utf-8")
        ctx = TaskContext(
            assignment=assignment,
            session=session,
            device_info=device_info,
            backend=backend,
            log=log,
            max_file_bytes=settings.max_file_bytes,
            request_timeout_s=settings.request_timeout_s,
            started_at=datetime.now(UTC),
        )
        return await _supervise(ctx, task_dir, settings)
    finally:
        shutil.rmtree(task_dir, ignore_errors=True)


async def _supervise(ctx: TaskContext, task_dir: Path, settings: ScriptSettings) -> TaskOutcome:
    parent_sock, child_sock = socket.socketpair()
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                settings.python,
                "-m",
                "agent.scripthost",
                "--fd",
                str(child_sock.fileno()),
                cwd=task_dir,
                env=_child_env(task_dir, settings.python, ctx.task_id),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(child_sock.fileno(),),
                start_new_session=True,
                preexec_fn=_die_with_parent,
                limit=_OUTPUT_LINE_LIMIT,
            )
        finally:
            child_sock.close()
        channel = _Channel(ctx, proc.pid)
        pumps: list[asyncio.Task[None]] = []
        serving: asyncio.Task[None] | None = None
        try:
            assert proc.stdout is not None and proc.stderr is not None
            pumps = [
                asyncio.create_task(_pump(proc.stdout, "stdout", logging.INFO, ctx)),
                asyncio.create_task(_pump(proc.stderr, "stderr", logging.WARNING, ctx)),
            ]
            reader, writer = await asyncio.open_connection(sock=parent_sock)
            channel.writer = writer
            serving = asyncio.create_task(channel.serve(reader))
            await channel.send(
                Init(
                    script=SCRIPT_NAME,
                    job_variables=ctx.assignment.input,
                    automation_parameters=ctx.assignment.parameters,
                    max_file_bytes=settings.max_file_bytes,
                )
            )
            timed_out = False
            try:
                async with asyncio.timeout(ctx.assignment.timeout_s):
                    await _script_ended(proc, serving)
            except TimeoutError:
                timed_out = True
        finally:
            try:
                await _end_group(proc, settings.kill_grace_s)
            finally:
                await channel.close(serving)
                await _finish_pumps(pumps, settings.kill_grace_s)
        return _decide(ctx, channel, timed_out, proc.returncode)
    finally:
        parent_sock.close()


async def _script_ended(proc: asyncio.subprocess.Process, serving: asyncio.Task[None]) -> None:
    """Until the script host exits or its channel ends (the child's end of the socketpair is not
    inherited, so the channel ends when the child does). `proc.wait()` alone is not enough: it
    also waits for the output pipes, which processes the script left behind still hold."""
    exited = asyncio.create_task(proc.wait())
    try:
        await asyncio.wait([exited, serving], return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()


def _decide(
    ctx: TaskContext, channel: _Channel, timed_out: bool, returncode: int | None
) -> TaskOutcome:
    if ctx.final is not None:
        return TaskOutcome(state=ctx.final.state, data=ctx.final.data)
    if ctx.device_lost is not None:
        return TaskOutcome(state="failed", reason="device_lost", error=ctx.device_lost)
    report = channel.report
    if report is not None:
        if report.kind == "returned":
            return TaskOutcome(state="success", data=report.data)
        if report.kind == "stopped":
            return TaskOutcome(state="success")
        return TaskOutcome(state="failed", reason=report.kind, error=report.error)
    if timed_out:
        return TaskOutcome(
            state="timeout",
            reason="timeout",
            error=f"script ran past its timeout of {ctx.assignment.timeout_s:g} s",
        )
    if channel.broken is not None:
        error = f"script host broke the channel protocol: {channel.broken}"
    elif returncode is not None and returncode < 0:
        error = f"script process was killed by {_signal_name(-returncode)}"
    else:
        error = f"script process exited with code {returncode} without reporting an outcome"
    return TaskOutcome(state="failed", reason="script_crashed", error=error)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class _Channel:
    """The daemon's end of one script's socketpair: serves calls, keeps the report."""

    def __init__(self, ctx: TaskContext, pgid: int) -> None:
        self.ctx = ctx
        self.pgid = pgid
        self.writer: asyncio.StreamWriter | None = None
        self.report: Report | None = None
        self.broken: str | None = None
        self._calls: set[asyncio.Task[None]] = set()

    async def serve(self, reader: asyncio.StreamReader) -> None:
        try:
            while (obj := await read_frame(reader)) is not None:
                message = parse_child_message(obj)
                if isinstance(message, Report):
                    if self.report is None:
                        self.report = message
                    await self.send(Reply(id=message.id, ok=True))
                elif message.id is None:
                    await self._handle(message)
                else:
                    call = asyncio.create_task(self._handle(message))
                    self._calls.add(call)
                    call.add_done_callback(self._calls.discard)
        except ChannelError as exc:
            self.broken = str(exc)
            self.ctx.log.warning("task %s: %s; killing the script", self.ctx.task_id, exc)
            _signal_group(self.pgid, signal.SIGKILL)
        except ConnectionError:
            return

    async def _handle(self, call: Call) -> None:
        started = time.monotonic()
        value: Any = None
        error: CallError | None = None
        try:
            value = await dispatch(self.ctx, call.method, call.params)
        except CallFailed as exc:
            error = exc.error
        self.ctx.log.debug(
            "task %s: %s %s in %.3f s",
            self.ctx.task_id,
            call.method,
            "failed" if error else "ok",
            time.monotonic() - started,
        )
        if call.id is not None:
            await self.send(Reply(id=call.id, ok=error is None, value=value, error=error))

    async def send(self, message: Init | Reply) -> None:
        assert self.writer is not None
        try:
            frame = encode(message)
        except ValueError as exc:  # too big, or a driver result that is not JSON
            if not isinstance(message, Reply):
                raise
            error = CallError(kind="failed", message=f"the result could not be sent: {exc}")
            frame = encode(Reply(id=message.id, ok=False, error=error))
        try:
            self.writer.write(frame)
            await self.writer.drain()
        except ConnectionError:
            return

    async def close(self, serving: asyncio.Task[None] | None) -> None:
        tasks = [*self._calls, *([serving] if serving is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()


async def _pump(stream: asyncio.StreamReader, name: str, level: int, ctx: TaskContext) -> None:
    """Log the child's output line by line, so `print` in a script lands in the task's log."""
    while True:
        try:
            line = await stream.readline()
        except ValueError:
            ctx.log.warning(
                "task %s %s: a line over %d bytes was dropped",
                ctx.task_id,
                name,
                _OUTPUT_LINE_LIMIT,
            )
            continue
        if not line:
            return
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        ctx.log.log(
            level,
            "task %s %s: %s",
            ctx.task_id,
            name,
            text,
            extra={"task_id": ctx.task_id, "source": name},
        )


async def _finish_pumps(pumps: list[asyncio.Task[None]], grace: float) -> None:
    """Let the pumps drain what the dead group wrote; a process that escaped the group and still
    holds a pipe must not keep us waiting."""
    if not pumps:
        return
    _, pending = await asyncio.wait(pumps, timeout=grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pumps, return_exceptions=True)


def _child_env(task_dir: Path, python: str, task_id: str) -> dict[str, str]:
    """The child's whole environment, built from scratch: nothing of the daemon's leaks in.

    TASK_ENV tags the script and what it starts, so a restarted daemon can find and kill what
    an earlier one left behind (agent/sweep.py).
    """
    return {
        TASK_ENV: task_id,
        "PATH": f"{Path(python).parent}:{_SYSTEM_PATH}",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(task_dir),
        "TMPDIR": str(task_dir),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _die_with_parent() -> None:
    """Runs in the forked child before exec: SIGKILL it when the daemon dies."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal every process of the group; False when none is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _group_alive(pgid: int) -> bool:
    """Whether a live process (not a zombie waiting for its reaper) is left in the group."""
    if not _signal_group(pgid, 0):
        return False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # the process went away while we looked
        if int(group) == pgid and state != "Z":
            return True
    return False


async def _group_gone(pgid: int) -> None:
    # No event tells when the last member of a process group is gone: poll.
    while True:
        if not _group_alive(pgid):
            return
        await asyncio.sleep(0.02)


async def _end_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the script's process group, wait up to `grace` for all of it to go, then SIGKILL.

    Also used after a normal exit: anything the script started and left running dies too.
    A second cancellation during the grace period goes straight to SIGKILL.
    """
    pgid = proc.pid  # start_new_session made the child its group's leader
    if _signal_group(pgid, signal.SIGTERM):
        try:
            async with asyncio.timeout(grace):
                await proc.wait()
                await _group_gone(pgid)
        except TimeoutError:
            pass
        finally:
            _signal_group(pgid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace):
            await proc.wait()
