"""Run one task's user script in its own process and supervise it (daemon side).

`run_task` takes a script host (agent/hoststart.py: sandboxed, in its own cgroup and fresh work
dir, started ahead of the task or now), writes the script into its work dir, sends `init`, serves
the script's calls over the host's private socketpair (agent/scriptrpc.py framing, agent/hostapi
handlers), enforces the task's timeout, and turns what happened into a `TaskOutcome`.

How the outcome is decided, first rule that applies:
0. browser settings (`Assignment.browser`) on a device that is not a browser: failed,
   `unsupported_settings`, and the script does not run (the coordinator refuses them at creation
   only when it knows the device's kind: a task pinned to a phone);
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
import base64
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import BaseModel

from agent.hostapi import BackendError, CallFailed, JobBackend, TaskContext, dispatch
from agent.hoststart import StartedHost, start_host
from agent.protocol import Assignment, FinalState
from agent.sandbox import HostProcess, Isolation, ScriptProcess
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
from agent.timeline import Timeline, record_call
from drivers.base import DeviceSession

__all__ = ["BackendError", "JobBackend", "ScriptSettings", "TaskOutcome", "run_task"]

SCRIPT_NAME = "script.py"
FAILURE_SCREENSHOT = {"max_width": 1280, "max_height": 1280, "quality": 70}
FAILURE_SCREENSHOT_S = 20.0
"""How long the screenshot of a failed run may take (a phone's capture takes a second or two)."""


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
    host: StartedHost | None = None,
    on_call: Callable[[str, float], None] | None = None,
    timeline: Timeline | None = None,
) -> TaskOutcome:
    """Run the assignment's script to its end; see the module docstring for the outcome rules.

    `timeline` records the run's calls, output and notes (agent/timeline.py); when the run fails
    or times out and the assignment asks for it, a screenshot is kept there too, taken while
    the device is still the task's.

    `host` is a script host started ahead of the task (agent/ahead.py); without one, one is
    started now. Either way the host is ended before this returns. `on_call` is told each of
    the script's calls (method, seconds).

    Cancelling the asyncio task that awaits this ends the script's processes, cleans up and
    re-raises CancelledError. Any other failure of the daemon's own is returned as
    `failed`/`agent_error`, never raised.
    """
    try:
        if assignment.browser is not None and device_info.get("kind") != "browser":
            if host is not None:
                await host.end(isolation.settings.kill_grace_s)
            kind = device_info.get("kind")
            return TaskOutcome(
                state="failed",
                reason="unsupported_settings",
                error=f"the task has browser settings, which only a browser can honour "
                f"(this device is {kind})",
            )
        if host is None:
            host = await start_host(isolation, log, assignment.task_id)
        host.bind(assignment.task_id)
        if timeline is not None:
            host.on_output = partial(_output_line, timeline)
        try:
            outcome = await _run(
                assignment, session, device_info, backend, host, isolation, log, on_call, timeline
            )
            if (
                timeline is not None
                and assignment.screenshot_on_failure
                and outcome.state in ("failed", "timeout")
                and outcome.reason != "device_lost"
            ):
                await _failure_screenshot(session, timeline)
            return outcome
        finally:
            await host.end(isolation.settings.kill_grace_s)
            dropped = host.budget.dropped_summary()
            if timeline is not None and dropped is not None:
                timeline.note("output_dropped", dropped)
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
    host: StartedHost,
    isolation: Isolation,
    log: logging.Logger,
    on_call: Callable[[str, float], None] | None,
    timeline: Timeline | None,
) -> TaskOutcome:
    settings = isolation.settings
    script_file = host.task_dir / SCRIPT_NAME
    script_file.write_text(assignment.script_source, encoding="utf-8")
    if isolation.bwrap is not None and isolation.as_root:
        os.chown(script_file, isolation.uid, isolation.gid)
    # What the device side saves for the script (a browser's save_file) goes where it can open it.
    scripts_own = isolation.bwrap is not None and isolation.as_root
    session.keep_files_in(host.task_dir, (isolation.uid, isolation.gid) if scripts_own else None)
    ctx = TaskContext(
        assignment=assignment,
        session=session,
        device_info=device_info,
        backend=backend,
        log=log,
        max_file_bytes=settings.max_file_bytes,
        request_timeout_s=settings.request_timeout_s,
        started_at=datetime.now(UTC),
        on_call=on_call,
        timeline=timeline,
    )
    script = host.script
    channel = _Channel(ctx, host.writer, lambda: script.kill())
    serving = asyncio.create_task(channel.serve(host.reader))
    try:
        await channel.send(
            Init(
                task_id=assignment.task_id,
                script=SCRIPT_NAME,
                script_name=assignment.script_name or SCRIPT_NAME,
                job_variables=assignment.input,
                automation_parameters=assignment.parameters,
                max_file_bytes=settings.max_file_bytes,
            )
        )
        timed_out = False
        try:
            async with asyncio.timeout(assignment.timeout_s):
                await _script_ended(script.proc, serving)
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
    return _decide(ctx, channel, timed_out, script, settings)


def _output_line(timeline: Timeline, source: str, text: str) -> None:
    timeline.add("log", "print" if source == "stdout" else source, text)


async def _failure_screenshot(session: DeviceSession, timeline: Timeline) -> None:
    """Keep what the screen showed when the run failed; a device that cannot is noted."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(FAILURE_SCREENSHOT_S):
            result = await session.call("screenshot", dict(FAILURE_SCREENSHOT))
        data = base64.b64decode(result["screenshot"])
    except Exception as exc:  # any device, any failure: the run's outcome stands
        timeline.note("failure_screenshot", f"no screenshot of the failure: {exc}")
        return
    timeline.add(
        "action", "screenshot", "taken on failure", duration_s=time.monotonic() - started, ok=True
    )
    timeline.keep("failure", "jpg", data)


async def _script_ended(proc: HostProcess, serving: asyncio.Task[None]) -> None:
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

    def __init__(
        self, ctx: TaskContext, writer: asyncio.StreamWriter, kill: Callable[[], None]
    ) -> None:
        self.ctx = ctx
        self.kill = kill
        self.writer = writer
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
        at = datetime.now(UTC)
        value: Any = None
        error: CallError | None = None
        try:
            value = await dispatch(self.ctx, call.method, call.params)
        except CallFailed as exc:
            error = exc.error
        took = time.monotonic() - started
        # The reply goes out before the bookkeeping: the script works on it (on another core)
        # while the call is recorded, so the timeline stays off the call's round trip.
        if call.id is not None:
            self._write(Reply(id=call.id, ok=error is None, value=value, error=error))
        if self.ctx.timeline is not None:
            message = None if error is None else error.message
            record_call(self.ctx.timeline, call.method, call.params, at, took, value, message)
        if self.ctx.on_call is not None:
            self.ctx.on_call(call.method, took)
        self.ctx.log.debug(
            "task %s: %s %s in %.3f s",
            self.ctx.task_id,
            call.method,
            "failed" if error else "ok",
            took,
        )
        if call.id is not None:
            await self._drain()

    async def send(self, message: Init | Reply) -> None:
        self._write(message)
        await self._drain()

    def _write(self, message: Init | Reply) -> None:
        """Hand one message to the socket (sent at once unless the socket's buffer is full)."""
        try:
            frame = encode(message)
        except ValueError as exc:  # too big, or a driver result that is not JSON
            if not isinstance(message, Reply):
                raise
            error = CallError(kind="failed", message=f"the result could not be sent: {exc}")
            frame = encode(Reply(id=message.id, ok=False, error=error))
        with contextlib.suppress(ConnectionError):
            self.writer.write(frame)

    async def _drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def close(self, serving: asyncio.Task[None]) -> None:
        """Stop serving; the channel itself is the host's to close."""
        tasks = [*self._calls, serving]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
