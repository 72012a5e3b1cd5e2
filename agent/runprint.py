"""How `device-agent script run` prints a run as it happens: one line per event, then a summary.

The events are what a script author follows: tasks appearing (given, added as sub-tasks, written
as data dumps) and changing state, each submission with its data, the run's timeline as the
daemon records it (each action, `print`/stderr and `agent.log` line, kept artifact and the
daemon's notes: agent/timeline.py, the same entries `GET /api/tasks/{id}/timeline` serves), and
hints about a run that waits. `RunPrinter` only formats them: agent/localrun.py gathers them
(from the daemon's records and timelines, and the coordinator).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from agent.timeline import TimelineEntry

MAX_VALUE_CHARS = 300
"""A value (a submission's data, an action's argument) is cut past this in a timeline line."""
MAX_RESULT_CHARS = 4000
"""The summary shows a result up to this; result.json holds all of it."""


@dataclass(frozen=True)
class TaskSeen:
    """A task of the run appeared: given (`--input`), added by `parent` as a sub-task."""

    task_id: str
    input: dict[str, Any]
    parent: str | None = None


@dataclass(frozen=True)
class TaskState:
    task_id: str
    state: str
    device: str | None = None
    reason: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Timed:
    """An entry of a run's timeline (agent/timeline.py): an action, a log line, a kept
    artifact or a note of the daemon's, as the daemon records it."""

    task_id: str
    entry: TimelineEntry


@dataclass(frozen=True)
class Submission:
    task_id: str
    seq: int
    status: str
    finish: bool
    data: Any


@dataclass(frozen=True)
class DataDump:
    """A record task `task_id` wrote with submit_task_to_another_job (never run)."""

    task_id: str
    dump_id: str
    job_id: str
    data: Any


@dataclass(frozen=True)
class Note:
    text: str


RunEvent = TaskSeen | TaskState | Timed | Submission | DataDump | Note


def short_id(task_id: str) -> str:
    return task_id[:8]


def clip(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """`value` as compact JSON (or str), cut to `limit` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RunPrinter:
    """Writes each event as one line, `  1.23s [task-id] what`, to `out` (thread-safe: log
    records may come from any thread)."""

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._out = out
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()

    def event(self, event: RunEvent) -> None:
        self._line(_task_of(event), _describe(event))

    def _line(self, task_id: str | None, text: str) -> None:
        label = f"[{short_id(task_id)}] " if task_id else ""
        with self._lock:
            self._out.write(f"{self._clock() - self._start:7.2f}s {label}{text}\n")
            self._out.flush()

    def summary(
        self,
        tasks: Sequence[Mapping[str, Any]],
        dumps: Sequence[Mapping[str, Any]],
        saved: Sequence[Path],
    ) -> None:
        """The final state of each task (in the order they appeared), and where files went."""
        lines = ["", "tasks:"]
        for task in tasks:
            line = f"  {task['id']} {task['state']}"
            if task.get("failure_reason") not in (None, task["state"]):
                line += f" ({task['failure_reason']})"
            if task.get("parent_task_id"):
                line += f", sub-task of {short_id(task['parent_task_id'])}"
            lines.append(line)
            if task.get("error"):
                first, *rest = str(task["error"]).splitlines()
                lines += [f"    error: {first}", *(f"      {row}" for row in rest)]
            lines.append(f"    result: {clip(task.get('result'), MAX_RESULT_CHARS)}")
        for dump in dumps:
            lines.append(
                f"  data dump {dump['id']} in job {dump['job_id']}: {dump['state']}: "
                f"{clip(dump.get('result'), MAX_RESULT_CHARS)}"
            )
        lines += [f"saved: {path}" for path in saved]
        with self._lock:
            self._out.write("\n".join(lines) + "\n")
            self._out.flush()

    def note(self, text: str) -> None:
        self.event(Note(text))


def _task_of(event: RunEvent) -> str | None:
    return None if isinstance(event, Note) else event.task_id


def _describe(event: RunEvent) -> str:
    match event:
        case TaskSeen(input=task_input, parent=None):
            return f"task added: input {clip(task_input)}"
        case TaskSeen(input=task_input, parent=parent):
            return f"sub-task added by {short_id(parent or '')}: input {clip(task_input)}"
        case TaskState(state=state, device=device, reason=reason, error=error):
            text = state + (f" on {device}" if device else "")
            text += f" ({reason})" if reason and reason != state else ""
            return text + (f": {error.splitlines()[0]}" if error else "")
        case Timed(entry=entry):
            return _timed(entry)
        case Submission(seq=seq, status=status, finish=finish, data=data):
            final = ", final" if finish else ""
            return f"submitted #{seq} {status}{final}: {clip(data)}"
        case DataDump(dump_id=dump_id, job_id=job_id, data=data):
            return f"data dump {dump_id} to job {job_id}: {clip(data)}"
        case Note(text=text):
            return f"note: {text}"
    raise TypeError(f"not a run event: {event!r}")


def _timed(entry: TimelineEntry) -> str:
    match entry.kind:
        case "action":
            outcome = f"failed: {entry.error}" if entry.ok is False else "ok"
            return f"{entry.name}({entry.detail}) {outcome} ({entry.duration_s or 0:.2f} s)"
        case "log" if entry.name.startswith("log."):
            return f"log {entry.name.removeprefix('log.')}: {entry.detail}"
        case "log":
            return f"{entry.name}: {entry.detail}"
        case "artifact":
            return f"kept {entry.detail} ({entry.size} bytes)"
    return f"note {entry.name}: {entry.detail}"
