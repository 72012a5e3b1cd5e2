"""agent/runprint.py: each run event is one line, labelled with its task; payloads are cut."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

from agent.runprint import (
    MAX_VALUE_CHARS,
    DataDump,
    RunPrinter,
    Submission,
    TaskSeen,
    TaskState,
    Timed,
)
from agent.timeline import EntryKind, TimelineEntry

TASK = "0123456789abcdef0123456789abcdef"
CHILD = "fedcba9876543210fedcba9876543210"


def timed(kind: EntryKind, name: str, detail: str, **fields: object) -> Timed:
    entry = TimelineEntry.model_validate(
        {"seq": 0, "at": datetime.now(UTC), "kind": kind, "name": name, "detail": detail, **fields}
    )
    return Timed(TASK, entry)


def test_each_event_is_one_labelled_line_and_the_summary_lists_every_task() -> None:
    out = io.StringIO()
    ticks = iter([i / 2 for i in range(12)])
    printer = RunPrinter(out, clock=lambda: next(ticks))
    printer.event(TaskSeen(TASK, {"url": "http://x/"}))
    printer.event(TaskSeen(CHILD, {"n": 1}, parent=TASK))
    printer.event(TaskState(TASK, "running", "local-browser-1"))
    printer.event(timed("action", "tap", "x=1 y=2", duration_s=0.25, ok=True))
    printer.event(timed("action", "screenshot", "", duration_s=0.1, ok=False, error="boom"))
    printer.event(timed("log", "print", "hello"))
    printer.event(timed("log", "log.warning", "careful k='v'"))
    printer.event(Submission(TASK, 0, "success", True, {"big": "x" * 1000}))
    printer.event(DataDump(TASK, CHILD, "job-1", {"a": 1}))
    printer.event(TaskState(TASK, "failed", reason="script_error", error="KeyError: 'url'\ntb"))
    printer.note("wait")
    lines = out.getvalue().splitlines()
    assert lines[:7] == [
        '   0.50s [01234567] task added: input {"url": "http://x/"}',
        '   1.00s [fedcba98] sub-task added by 01234567: input {"n": 1}',
        "   1.50s [01234567] running on local-browser-1",
        "   2.00s [01234567] tap(x=1 y=2) ok (0.25 s)",
        "   2.50s [01234567] screenshot() failed: boom (0.10 s)",
        "   3.00s [01234567] print: hello",
        "   3.50s [01234567] log warning: careful k='v'",
    ]
    assert lines[7].startswith('   4.00s [01234567] submitted #0 success, final: {"big": "xxx')
    assert len(lines[7]) < MAX_VALUE_CHARS + 60 and lines[7].endswith("…")
    assert lines[8] == f'   4.50s [01234567] data dump {CHILD} to job job-1: {{"a": 1}}'
    assert lines[9] == "   5.00s [01234567] failed (script_error): KeyError: 'url'"
    assert lines[10].endswith(" note: wait")

    out.truncate(0)
    out.seek(0)
    tasks = [
        {"id": TASK, "state": "timeout", "failure_reason": "timeout", "error": "ran\nlong"},
        {"id": CHILD, "state": "success", "parent_task_id": TASK, "result": {"ok": True}},
    ]
    printer.summary(tasks, [], [Path("out/result.json")])
    assert out.getvalue().splitlines() == [
        "",
        "tasks:",
        f"  {TASK} timeout",
        "    error: ran",
        "      long",
        "    result: null",
        f"  {CHILD} success, sub-task of 01234567",
        '    result: {"ok": true}',
        "saved: out/result.json",
    ]
