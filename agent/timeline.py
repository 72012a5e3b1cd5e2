"""A run's timeline: what its script did and what happened to it, entry by entry, in order.

One `Timeline` per run (task attempt), made by the scheduler: the runner and the call handlers
`add` entries (each action call with a short summary of its arguments, each submission, each
log line, `print` and stderr, the daemon's own notes) and `keep` artifacts (screenshots). Entries
are batched into `timeline` frames (agent/protocol.py) and committed to the outbox like
submissions: a batch every `FLUSH_ENTRIES` entries or `FLUSH_S` seconds, at once when it holds
an artifact, and the rest when the run ends (before its `finished`). Past the per-run caps
(`scripts.timeline_max_entries`, `scripts.artifacts_max_bytes`) entries and artifacts are only
counted; the run's last batch ends with a note saying how many were dropped.

Arguments are summarised, never copied whole: typed text (`write_text`) shows only its length
(it may be a password), values under keys that name a secret are hidden, other strings are cut
(docs/timeline.md). `format_entry` renders an entry as one line (`device-agent script run`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EntryKind = Literal["action", "submit", "log", "note", "artifact"]
FLUSH_ENTRIES = 500
"""A batch goes out once this many entries wait (a few commits for 1,000 actions)."""
FLUSH_S = 1.0
"""...or once the oldest waiting entry is this old: the timeline follows a slow run closely."""
MAX_TEXT = 2000
"""A log line or error longer than this is cut."""
MAX_VALUE = 60
"""A string argument longer than this is cut in an action's summary."""
SECRET_WORDS = ("password", "passwd", "secret", "token", "auth", "cookie", "key")
"""An argument whose name holds one of these is hidden in summaries."""
TYPED_TEXT = frozenset({("write_text", "text"), ("paste", "text"), ("node_action", "data")})
"""Arguments typed into the device (a node's `set_text` takes its `data`): only their length
is recorded."""


class TimelineEntry(BaseModel):
    """One entry; `seq` orders a run's entries (0, 1, ...), `at` is when it began (UTC)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(ge=0, le=10_000_000)
    at: datetime
    kind: EntryKind
    name: str = Field(max_length=200)
    """The action or job call (`tap`, `submit_task`), the log's source (`print`, `stderr`,
    `log.info`), the note's code (`outcome`, `output_dropped`, ...), or the artifact's name."""
    detail: str = Field(default="", max_length=MAX_TEXT + 20)
    duration_s: float | None = Field(default=None, ge=0)
    ok: bool | None = None
    error: str | None = Field(default=None, max_length=MAX_TEXT + 20)
    size: int | None = Field(default=None, ge=0)
    """An artifact's bytes."""


class ArtifactBlob(BaseModel):
    """A kept artifact's bytes travelling in a `timeline` frame, named by its entry's seq."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(ge=0)
    name: str = Field(min_length=1, max_length=200)
    extension: str = Field(max_length=20)
    data_b64: str


Sink = Callable[[list[TimelineEntry], list[ArtifactBlob]], Awaitable[None]]
"""Commits one batch durably (the scheduler's: an outbox `put` of a `timeline` frame)."""


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text)} chars]"


@functools.lru_cache(maxsize=1024)
def _secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def _value(name: str, value: Any) -> str:
    if _secret(name):
        return "<hidden>"
    if type(value) is int or type(value) is float or type(value) is bool:
        return str(value)
    if isinstance(value, str):
        return repr(_cut(value, MAX_VALUE))
    if isinstance(value, dict | list) and len(str(value)) > MAX_VALUE:
        return f"<{type(value).__name__} of {len(value)}>"
    return repr(value)


def summarize(action: str, params: dict[str, Any]) -> str:
    """A short, secret-free summary of a call's arguments: `x=10 y=20`, `text=<8 chars>`."""
    parts = []
    for name, value in params.items():
        if value is None:
            continue
        if (action, name) in TYPED_TEXT and isinstance(value, str):
            parts.append(f"{name}=<{len(value)} chars>")
        else:
            parts.append(f"{name}={_value(name, value)}")
    return _cut(" ".join(parts), 300)


def _submission(params: dict[str, Any]) -> str:
    """What a submission was, not what it carried: its data's keys, its files' names."""
    data = params.get("data")
    files = params.get("files") or []
    parts = [
        f"{k}={params[k]!r}"
        for k in ("automation_status", "status", "finish", "job_id")
        if k in params
    ]
    if isinstance(data, dict):
        parts.append(f"data_keys={sorted(data)[:20]!r}")
    if isinstance(files, list) and files:
        names = [f.get("name") for f in files if isinstance(f, dict)]
        parts.append(f"files={names[:20]!r}")
    return _cut(" ".join(parts), 300)


def record_call(
    timeline: Timeline,
    method: str,
    params: dict[str, Any],
    at: datetime,
    duration_s: float,
    value: Any,
    error: str | None,
) -> None:
    """Record one script call: an action, a submission or a log line (reads of what the daemon
    holds, `info.*` and `get_current_task`, are not recorded)."""
    group, _, name = method.rpartition(".")
    if method == "log":
        fields = params.get("fields")
        extra = (
            "".join(f" {k}={v!r}" for k, v in fields.items()) if isinstance(fields, dict) else ""
        )
        level = str(params.get("level") or "info")
        timeline.add("log", f"log.{level}", f"{params.get('message', '')}{extra}", at=at)
        return
    if group == "actions":
        kind: EntryKind = "action"
        detail = summarize(name, params)
    elif method in ("job.submit_task", "job.submit_task_to_another_job"):
        kind = "submit"
        detail = _submission(params)
        if error is None and isinstance(value, dict) and value.get("success") is False:
            error = str(value.get("error") or "refused")
    else:
        return
    timeline.add(kind, name, detail, at=at, duration_s=duration_s, ok=error is None, error=error)


def note_outcome(timeline: Timeline, state: str, reason: str | None, error: str | None) -> None:
    """The run's last note: how it ended, as reported in its `finished`."""
    detail = state + (f" ({reason})" if reason else "") + (f": {error}" if error else "")
    timeline.note("outcome", detail)


def format_entry(entry: TimelineEntry) -> str:
    """One line for a person: `12:00:01.250 action tap x=1 y=2 (0.031 s) ok`."""
    clock = entry.at.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]
    line = f"{clock} {entry.kind:<8} {entry.name}"
    if entry.detail:
        line += f" {entry.detail}"
    if entry.duration_s is not None:
        line += f" ({entry.duration_s:.3f} s)"
    if entry.ok is True:
        line += " ok"
    elif entry.ok is False:
        line += f" FAILED: {entry.error}" if entry.error else " FAILED"
    if entry.size is not None:
        line += f" [{entry.size} bytes]"
    return line


class Timeline:
    """The timeline of one run; `add` and `keep` never block nor raise (a bounded buffer)."""

    def __init__(
        self,
        sink: Sink | None,
        max_entries: int,
        max_artifact_bytes: int,
        log: logging.Logger,
        on_entry: Callable[[TimelineEntry], None] | None = None,
    ) -> None:
        self._sink = sink
        self._max_entries = max_entries
        self._max_artifact_bytes = max_artifact_bytes
        self._log = log
        self.on_entry = on_entry
        """Told each entry as it is made, kept or not (`device-agent script run` prints it)."""
        self._seq = 0
        self._pending: list[TimelineEntry] = []
        self._blobs: list[ArtifactBlob] = []
        self.dropped = 0
        self.dropped_artifacts = 0
        self.artifact_bytes = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._pump: asyncio.Task[None] | None = None
        if sink is not None:
            self._pump = asyncio.create_task(self._flush_regularly())

    def add(
        self,
        kind: EntryKind,
        name: str,
        detail: str = "",
        *,
        at: datetime | None = None,
        duration_s: float | None = None,
        ok: bool | None = None,
        error: str | None = None,
        size: int | None = None,
    ) -> TimelineEntry | None:
        """Record one entry; None when over the cap (it is counted instead)."""
        # Validated: pydantic-core builds it faster than `model_construct`'s Python does (5
        # against 8-10 us here), and every value made here is within the model's bounds.
        entry = TimelineEntry(
            seq=self._seq,
            at=at or datetime.now(UTC),
            kind=kind,
            name=name[:200],
            detail=_cut(detail),
            duration_s=duration_s,
            ok=ok,
            error=None if error is None else _cut(error),
            size=size,
        )
        if self.on_entry is not None:
            self.on_entry(entry)
        if self._seq >= self._max_entries:
            self.dropped += 1
            return None
        self._seq += 1
        self._pending.append(entry)
        if len(self._pending) >= FLUSH_ENTRIES:
            self._wake.set()
        return entry

    def note(self, code: str, detail: str) -> None:
        """The daemon's own note about the run (a limit hit, the device lost, its outcome)."""
        self.add("note", code, detail)

    def keep(self, name: str, extension: str, data: bytes) -> None:
        """Keep an artifact with the run, within the per-run byte cap (else counted, noted)."""
        if self.artifact_bytes + len(data) > self._max_artifact_bytes:
            self.dropped_artifacts += 1
            self.note(
                "artifact_dropped",
                f"{name}.{extension} ({len(data)} bytes) not kept: over the run's cap of "
                f"{self._max_artifact_bytes} bytes",
            )
            return
        entry = self.add("artifact", name, f"{name}.{extension}", size=len(data))
        if entry is None:
            return
        self.artifact_bytes += len(data)
        self._blobs.append(
            ArtifactBlob(
                seq=entry.seq,
                name=name,
                extension=extension,
                data_b64=base64.b64encode(data).decode("ascii"),
            )
        )
        self._wake.set()

    async def close(self) -> None:
        """Stop the regular flushes and commit what is left, with the dropped-entries note."""
        entries, blobs = self.last_batch()
        if self._sink is not None and (entries or blobs):
            await self._send(entries, blobs)

    def last_batch(self) -> tuple[list[TimelineEntry], list[ArtifactBlob]]:
        """Stop the regular flushes; what is left, with the dropped-entries note, for the
        caller to commit (with the run's `finished`, in one outbox commit). A batch being
        committed by the regular flush is in the outbox already: it stays ahead."""
        if self._pump is not None:
            self._pump.cancel()
        if self.dropped:
            # Past the cap: this one entry is kept whatever the cap, so the count is seen.
            dropped = self.dropped
            self._max_entries = self._seq + 1
            self.note("entries_dropped", f"{dropped} entries dropped: over the run's cap")
        entries, self._pending = self._pending, []
        blobs, self._blobs = self._blobs, []
        return entries, blobs

    async def flush(self) -> None:
        """Commit the waiting entries as one batch (a no-op without a sink)."""
        async with self._lock:
            entries, self._pending = self._pending, []
            blobs, self._blobs = self._blobs, []
            if self._sink is None or not (entries or blobs):
                return
            await self._send(entries, blobs)

    async def _send(self, entries: list[TimelineEntry], blobs: list[ArtifactBlob]) -> None:
        assert self._sink is not None
        try:
            await self._sink(entries, blobs)
        except Exception as exc:  # the outbox refused (its disk is full): the run goes on
            self._log.warning("a batch of %d timeline entries was lost: %s", len(entries), exc)

    async def _flush_regularly(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_S)
            self._wake.clear()
            await self.flush()
