"""Fuzzed coordinator frames against a real daemon process.

A fake coordinator (a real websocket server on 127.0.0.1) welcomes the daemon, then sends it
1,000 frames drawn from agent.protocol's coordinator frame models and mutated
(tests/fuzzframes.py). Every refused frame gets its `error` frame with the code the real parser
gives it, in order; the daemon keeps its one session, stays up, and logs no traceback.
"""

from __future__ import annotations

import queue
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import Phase, given, seed, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from agent.protocol import (
    MAX_FRAME_BYTES,
    Assign,
    Cancel,
    Error,
    FrameError,
    Heartbeat,
    Hello,
    Reply,
    SubmitAck,
    Welcome,
    encode,
    parse_coordinator_frame,
    parse_host_frame,
)
from scripts.devstack import Daemon
from tests.fuzzframes import Mutant, model_dicts, mutants

BATCHES = 40
FRAMES_PER_BATCH = 25  # 40 x 25 = 1,000 frames
RECV_S = 30.0

COORDINATOR_FRAMES = st.one_of(
    *(model_dicts(m) for m in (Welcome, Assign, Cancel, SubmitAck, Reply, Heartbeat, Error))
)
BATCH = st.lists(mutants(COORDINATOR_FRAMES), min_size=FRAMES_PER_BATCH, max_size=FRAMES_PER_BATCH)


@dataclass
class FakeCoordinator:
    """What scripts.devstack.Daemon needs of a coordinator to write its config."""

    ws_url: str


def expected_error(mutant: Mutant) -> str | None:
    try:
        parse_coordinator_frame(mutant.raw)
    except FrameError as exc:
        assert mutant.expect in (None, exc.code), (mutant.how, exc.code)
        return exc.code
    assert mutant.expect is None, (mutant.how, "parsed")
    return None


def refusals_until_probe(ws: ServerConnection) -> list[str]:
    """Send a frame of a type no protocol has, then read up to the daemon's error for it: the
    error codes that came before, in order (other frames the daemon sends are skipped)."""
    probe = f"probe-{uuid.uuid4().hex}"
    ws.send(f'{{"type": "{probe}"}}')
    codes = []
    while True:
        frame: Any = parse_host_frame(ws.recv(RECV_S))
        if isinstance(frame, Error):
            if probe in frame.message:
                return codes
            codes.append(frame.code)


def test_fuzzed_frames_never_take_the_daemon_down(tmp_path: Path) -> None:
    sessions: queue.Queue[ServerConnection] = queue.Queue()
    done = threading.Event()

    def handler(ws: ServerConnection) -> None:
        assert isinstance(parse_host_frame(ws.recv(RECV_S)), Hello)
        welcome = Welcome(
            protocol_version=1,
            session_id=uuid.uuid4().hex,
            heartbeat_interval_s=60,
            max_frame_bytes=MAX_FRAME_BYTES,
        )
        ws.send(encode(welcome))
        sessions.put(ws)
        done.wait(600)

    with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        fake: Any = FakeCoordinator(ws_url=f"ws://127.0.0.1:{port}/ws/host")
        (tmp_path / "daemon").mkdir()
        daemon = Daemon(dir=tmp_path / "daemon", coordinator=fake, browsers=[], token="t" * 32)
        daemon.start()
        try:
            ws = sessions.get(timeout=60)

            @seed(7)
            @settings(max_examples=BATCHES, deadline=None, database=None, phases=[Phase.generate])
            @given(BATCH)
            def fuzz(batch: list[Mutant]) -> None:
                expected = [code for m in batch if (code := expected_error(m)) is not None]
                for mutant in batch:
                    ws.send(mutant.raw)
                assert refusals_until_probe(ws) == expected

            try:
                fuzz()
            except ConnectionClosed as exc:
                raise AssertionError(f"the daemon dropped its session: {exc}") from None
            assert daemon.proc is not None and daemon.proc.popen is not None
            assert daemon.proc.popen.poll() is None, "the daemon exited"
            log = daemon.log()
            assert log.count("connected to the coordinator (session") == 1, log[-2000:]
            assert "Traceback" not in log, log[-4000:]
            assert "refused a frame from the coordinator" in log
        finally:
            done.set()
            daemon.stop()
