"""agent/timeline.py on its own: caps, the dropped note, artifacts, summaries, the printed line;
and where the daemon records a script's call (after its reply)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import struct
from datetime import UTC, datetime

from agent import protocol as p
from agent.hostapi import TaskContext
from agent.runner import _Channel
from agent.scriptrpc import Call, encode
from agent.timeline import ArtifactBlob, Timeline, TimelineEntry, format_entry, summarize
from tests.scripthost.conftest import DEVICE_INFO, RecordingBackend, RecordingSession, assignment


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


def test_a_call_is_recorded_after_its_reply_has_gone_to_the_script() -> None:
    """The timeline stays off a call's round trip: when the entry is made, the script can
    already read its reply (it works on it meanwhile); calls are still recorded in order."""
    log = logging.getLogger("test")
    daemon_end, script_end = socket.socketpair()
    seen: list[tuple[str, list[int]]] = []
    recorded = asyncio.Event()

    def on_entry(entry: TimelineEntry) -> None:
        # Non-blocking: the replies the script's end holds at this moment, not what comes later.
        try:
            waiting = script_end.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            waiting = b""
        replies = []
        while waiting:
            (length,) = struct.unpack(">I", waiting[:4])
            replies.append(json.loads(waiting[4 : 4 + length])["id"])
            waiting = waiting[4 + length :]
        seen.append((entry.detail, replies))
        recorded.set()

    async def run() -> None:
        reader, writer = await asyncio.open_unix_connection(sock=daemon_end)
        ctx = TaskContext(
            assignment=assignment("async def main(agent): pass"),
            session=RecordingSession(),
            device_info=dict(DEVICE_INFO),
            backend=RecordingBackend(),
            log=log,
            max_file_bytes=1024,
            request_timeout_s=5,
            started_at=datetime.now(UTC),
            timeline=Timeline(None, 100, 0, log, on_entry=on_entry),
        )
        channel = _Channel(ctx, writer, lambda: None)
        serving = asyncio.create_task(channel.serve(reader))
        for i in range(3):
            call = Call(id=i, method="actions.tap", params={"x": i, "y": i})
            recorded.clear()
            script_end.sendall(encode(call))
            await asyncio.wait_for(recorded.wait(), 30)
        await channel.close(serving)
        writer.close()

    try:
        asyncio.run(run())
    finally:
        script_end.close()
    assert seen == [("x=0 y=0", [0]), ("x=1 y=1", [1]), ("x=2 y=2", [2])]
