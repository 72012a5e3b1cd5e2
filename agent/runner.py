"""Run one task's user script in its own process and supervise it (daemon side).

`run_task` writes the script into a fresh private work dir, starts `python -m agent.scripthost`
for it in its sandbox and cgroup (agent/sandbox) with an environment built from scratch, serves
the script's calls over a private socketpair (agent/scriptrpc.py framing, agent/hostapi
handlers), logs the child's stdout/stderr line by line within the task's output budget
(agent/taskoutput.py), enforces the task's timeout, and turns what happened into a `TaskOutcome`.

How the outcome is decided, first rule that applies:
1. a final submission (`submit_task(..., finish=True)`) that the backend accepted wins: its
   status and data are the outcome, whatever the script does afterwards (returns, raises, crashes
   or runs past its timeout): the coordinator already holds the task as final. What went wrong
   afterwards (by the rules below) is kept as the outcome's `error`, "after its final
   submission: ...", which the coordinator records with the task;
2. the driver reported the device lost during the task: failed, reason `device_lost`;
3. the script host reported that `main` returned (success, data = the dict, `{"result": v}` for
   another JSON value, None for None) or called `stop_current_automation()` (success, no data);
4. the kernel enforced the task's memory or process limit: failed, `memory_limit` or
   `pids_limit`;
5. the script host reported that `main` raised (`script_error`), could not load
   (`script_load_error`) or returned a non-JSON value (`bad_return_value`);
6. the task ran past `timeout_s`: `timeout`;
7. the child broke the channel protocol or died without reporting: failed, `script_crashed`.
Whatever happens, every process of the task is ended (SIGTERM, `kill_grace_s`, SIGKILL) and the
work dir removed before `run_task` returns or re-raises its cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent.hostapi import BackendError, CallFailed, JobBackend, TaskContext, dispatch
from agent.protocol import Assignment, FinalState
from agent.sandbox import Isolation, ScriptProcess, start_script_host
from agent.sandbox.bwrap import WORKDIR
from agent.script_settings import ScriptSettings
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
from agent.taskoutput import OutputBudget, pump
from drivers.base import DeviceSession

__all__ = ["BackendError", "JobBackend", "ScriptSettings", "TaskOutcome", "run_task"]

SCRIPT_NAME = "script.py"
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PIPE_BUFFER_BYTES = 256 * 1024


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
    isolation: Isolation,
    log: logging.Logger,
) -> TaskOutcome:
    """Run the assignment's script to its end; see the module docstring for the outcome rules.

    Cancelling the asyncio task that awaits this ends the script's process group, cleans up and
    re-raises CancelledError. Any other failure of the daemon's own is returned as
    `failed`/`agent_error`, never raised.
    """
    try:
        return await _run(assignment, session, device_info, backend, isolation, log)
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
    isolation: Isolation,
    log: logging.Logger,
) -> TaskOutcome:
    settings = isolation.settings
    if settings.work_root is not None:
        settings.work_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", assignment.task_id)[:40]
    # mkdtemp makes it 0700; as root it is handed to the scripts' account, and only its sandbox
    # sees it (at /task).
    task_dir = Path(tempfile.mkdtemp(prefix=f"task-{safe_id}-", dir=settings.work_root))
    try:
        script_file = task_dir / SCRIPT_NAME
        script_file.write_text(assignment.script_source, encoding="utf-8")
        if isolation.bwrap is not None and isolation.as_root:
            for path in (task_dir, script_file):
                os.chown(path, isolation.uid, isolation.gid)
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
        return await _supervise(ctx, task_dir, isolation)
    finally:
        shutil.rmtree(task_dir, ignore_errors=True)


async def _supervise(ctx: TaskContext, task_dir: Path, isolation: Isolation) -> TaskOutcome:
    settings = isolation.settings
    sandboxed = isolation.bwrap is not None
    if not Path(settings.python).is_file():  # noqa: ASYNC240 (one stat)
        raise FileNotFoundError(f"key `scripts.python`: no interpreter at {settings.python}")
    parent_sock, child_sock = socket.socketpair()
    try:
        try:
            script = await start_script_host(
                isolation,
                ctx.task_id,
                task_dir,
                [settings.python, "-m", "agent.scripthost", "--fd", str(child_sock.fileno())],
                _child_env(
                    Path(WORKDIR) if sandboxed else task_dir,
                    Path("/tmp") if sandboxed else task_dir,
                    settings.python,
                    ctx.task_id,
                ),
                child_sock.fileno(),
                _PIPE_BUFFER_BYTES,
            )
        finally:
            child_sock.close()
        proc = script.proc
        channel = _Channel(ctx, lambda: script.kill())
        budget = OutputBudget(settings.output_max_bytes, settings.output_lines_per_s)
        pumps: list[asyncio.Task[None]] = []
        serving: asyncio.Task[None] | None = None
        try:
            assert proc.stdout is not None and proc.stderr is not None
            pumps = [
                asyncio.create_task(pump(proc.stdout, _emitter(ctx, "stdout"), budget)),
                asyncio.create_task(pump(proc.stderr, _emitter(ctx, "stderr"), budget)),
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
            else:
                if channel.report is None:  # a crash: its exit status is the diagnosis
                    await script.settle(settings.kill_grace_s)
        finally:
            try:
                await script.end(settings.kill_grace_s)
            finally:
                await channel.close(serving)
                await _finish_pumps(pumps, settings.kill_grace_s)
                dropped = budget.dropped_summary()
                if dropped is not None:
                    ctx.log.warning("task %s: %s", ctx.task_id, dropped)
        return _decide(ctx, channel, timed_out, script, settings)
    finally:
        parent_sock.close()


def _emitter(ctx: TaskContext, source: str) -> Callable[[str], None]:
    """Log a line of the script's output, so `print` in a script lands in the task's log."""
    level = logging.INFO if source == "stdout" else logging.WARNING

    def emit(text: str) -> None:
        ctx.log.log(
            level,
            "task %s %s: %s",
            ctx.task_id,
            source,
            text,
            extra={"task_id": ctx.task_id, "source": source},
        )

    return emit


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
    ctx: TaskContext,
    channel: _Channel,
    timed_out: bool,
    script: ScriptProcess,
    settings: ScriptSettings,
) -> TaskOutcome:
    if ctx.final is not None:
        later = _ended(ctx, channel, timed_out, script, settings)
        error = None if later.state == "success" else f"after its final submission: {later.error}"
        return TaskOutcome(state=ctx.final.state, data=ctx.final.data, error=error)
    return _ended(ctx, channel, timed_out, script, settings)


def _ended(
    ctx: TaskContext,
    channel: _Channel,
    timed_out: bool,
    script: ScriptProcess,
    settings: ScriptSettings,
) -> TaskOutcome:
    """How the script's run ended, whatever it submitted (rules 2 to 7)."""
    if ctx.device_lost is not None:
        return TaskOutcome(state="failed", reason="device_lost", error=ctx.device_lost)
    report = channel.report
    if report is not None and report.kind == "returned":
        return TaskOutcome(state="success", data=report.data)
    if report is not None and report.kind == "stopped":
        return TaskOutcome(state="success")
    if script.limit_hit == "memory_limit":
        error = f"the task's processes reached its memory limit of {settings.memory_max_mb} MiB"
        return TaskOutcome(state="failed", reason="memory_limit", error=error)
    if script.limit_hit == "pids_limit":
        error = f"the task's processes reached its limit of {settings.pids_max} processes"
        return TaskOutcome(state="failed", reason="pids_limit", error=error)
    if report is not None:
        return TaskOutcome(state="failed", reason=report.kind, error=report.error)
    if timed_out:
        return TaskOutcome(
            state="timeout",
            reason="timeout",
            error=f"script ran past its timeout of {ctx.assignment.timeout_s:g} s",
        )
    return TaskOutcome(state="failed", reason="script_crashed", error=_crash(channel, script))


def _crash(channel: _Channel, script: ScriptProcess) -> str:
    returncode = script.proc.returncode
    if channel.broken is not None:
        return f"script host broke the channel protocol: {channel.broken}"
    if returncode is not None and returncode < 0:
        return f"script process was killed by {_signal_name(-returncode)}"
    if returncode is not None and returncode > 128 and script.sandboxed:
        # bubblewrap reports its child's death by a signal as 128 + the signal's number.
        return f"script process was killed by {_signal_name(returncode - 128)}"
    return f"script process exited with code {returncode} without reporting an outcome"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class _Channel:
    """The daemon's end of one script's socketpair: serves calls, keeps the report."""

    def __init__(self, ctx: TaskContext, kill: Callable[[], None]) -> None:
        self.ctx = ctx
        self.kill = kill
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
            self.kill()
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


async def _finish_pumps(pumps: list[asyncio.Task[None]], grace: float) -> None:
    """Let the pumps drain what the dead group wrote; a process that escaped the group and still
    holds a pipe must not keep us waiting."""
    if not pumps:
        return
    _, pending = await asyncio.wait(pumps, timeout=grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pumps, return_exceptions=True)


def _child_env(home: Path, tmp: Path, python: str, task_id: str) -> dict[str, str]:
    """The child's whole environment, built from scratch: nothing of the daemon's leaks in.

    TASK_ENV tags the script and what it starts, so a restarted daemon can find and kill what
    an earlier one left behind (agent/sweep.py).
    """
    return {
        TASK_ENV: task_id,
        "PATH": f"{Path(python).parent}:{_SYSTEM_PATH}",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
