"""agent/timeline.py on its own: caps, the dropped note, artifacts, summaries, the printed line."""

from __future__ import annotations

import asyncio
import base64
import logging

from agent import protocol as p
from agent.timeline import ArtifactBlob, Timeline, TimelineEntry, format_entry, summarize


def test_past_its_caps_a_run_counts_and_notes_what_it_drops() -> None:
    batches: list[tuple[list[TimelineEntry], list[ArtifactBlob]]] = []

    async def sink(entries: list[TimelineEntry], artifacts: list[ArtifactBlob]) -> None:
        batches.append((entries, artifacts))

    async def run() -> None:
        timeline = Timeline(sink, 4, 10, logging.getLogger("test"))
        timeline.keep("big", "jpg", b"x" * 11)  # over the byte cap: noted, not kept
        timeline.keep("shot", "jpg", b"\xff\xd8jpeg")
        for i in range(5):
            timeline.add("log", "print", f"line {i}")
        await timeline.close()

    asyncio.run(run())
    entries = [e for batch, _ in batches for e in batch]
    blobs = [b for _, batch in batches for b in batch]
    assert [e.seq for e in entries] == [0, 1, 2, 3, 4]
    assert entries[0].kind == "note" and entries[0].name == "artifact_dropped"
    assert entries[1].kind == "artifact" and entries[1].size == 6
    assert [e.detail for e in entries[2:4]] == ["line 0", "line 1"]
    assert entries[4].name == "entries_dropped" and entries[4].detail.startswith("3 entries")
    assert [(b.seq, base64.b64decode(b.data_b64)) for b in blobs] == [(1, b"\xff\xd8jpeg")]
    # The frame that carries them validates where it is received.
    frame = p.TimelineBatch(key="k", task_id="t", attempt=1, entries=entries, artifacts=blobs)
    parsed = p.parse_host_frame(p.encode(frame))
    assert isinstance(parsed, p.TimelineBatch) and parsed.entries == entries


def test_summaries_leave_secrets_out() -> None:
    assert summarize("write_text", {"text": "hunter2"}) == "text=<7 chars>"
    node_typing = summarize("node_action", {"action": "set_text", "data": "hunter2"})
    assert node_typing == "action='set_text' data=<7 chars>"
    assert summarize("browse", {"url": "https://x", "api_key": "s3"}) == (
        "url='https://x' api_key=<hidden>"
    )
    assert "..." in summarize("evaluate", {"js": "a" * 500})
    entry = TimelineEntry(
        seq=0,
        at="2026-01-01T12:00:01.25Z",
        kind="action",
        name="tap",
        detail="x=1",
        duration_s=0.031,
        ok=False,
        error="gone",
    )
    assert format_entry(entry) == "12:00:01.250 action   tap x=1 (0.031 s) FAILED: gone"
