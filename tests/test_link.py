"""The daemon's link against a scripted coordinator speaking the real protocol over a websocket."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from agent import protocol as p
from agent.config import CoordinatorSettings
from agent.link import Link
from scripts.devstack import poll_until

Handler = Callable[[ServerConnection], Awaitable[None]]


async def welcome(ws: ServerConnection, heartbeat_s: float = 30.0) -> p.Hello:
    hello = p.parse_host_frame(await ws.recv())
    assert isinstance(hello, p.Hello)
    assert ws.request is not None
    assert ws.request.headers[p.AUTH_HEADER] == "Bearer secret-token"
    await ws.send(
        p.encode(
            p.Welcome(
                protocol_version=1,
                session_id="s1",
                heartbeat_interval_s=heartbeat_s,
                max_frame_bytes=p.MAX_FRAME_BYTES,
            )
        )
    )
    return hello


async def next_frame(ws: ServerConnection) -> p.HostFrame:
    """The next frame from the host that is not a heartbeat."""
    while True:
        frame = p.parse_host_frame(await asyncio.wait_for(ws.recv(), 30))
        if not isinstance(frame, p.Heartbeat):
            return frame


@pytest.fixture
async def coordinator_at() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[Server] = []

    async def start(handler: Handler) -> str:
        server = await serve(handler, "127.0.0.1", 0)
        servers.append(server)
        port = next(iter(server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/ws/host"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def make_link(
    url: str,
    frames: asyncio.Queue[p.CoordinatorFrame],
    on_ack: Callable[[p.SubmitAck], None] = lambda ack: None,
    on_session: Callable[[], Awaitable[None]] | None = None,
    **overrides: Any,
) -> Link:
    settings = CoordinatorSettings(
        **{"url": url, "backoff_initial_s": 0.05, "backoff_max_s": 0.2, **overrides}
    )

    async def on_frame(frame: p.CoordinatorFrame) -> None:
        await frames.put(frame)

    async def nothing() -> None:
        return None

    def hello() -> p.Hello:
        return p.Hello(protocol_version=1, host_id="h1", agent_version="t", devices=[])

    return Link(
        settings,
        "secret-token",
        hello,
        on_frame,
        on_session or nothing,
        on_ack,
        logging.getLogger("t"),
    )


ASSIGNMENT = p.Assignment(
    task_id="t1",
    job_id="j1",
    remote_device_id="d1",
    script_sha256="0" * 64,
    script_source="def main(agent): pass",
    timeout_s=10,
)


async def test_malformed_frames_get_error_frames_and_the_link_stays(
    coordinator_at: Callable[[Handler], Awaitable[str]],
) -> None:
    errors: list[p.HostFrame] = []

    async def coordinator(ws: ServerConnection) -> None:
        await welcome(ws)
        for bad in ("{not json", '{"type": "launch_missiles"}', '{"type": "assign", "task": 5}'):
            await ws.send(bad)
            errors.append(await next_frame(ws))
        await ws.send(p.encode(p.Assign(task=ASSIGNMENT)))
        await ws.wait_closed()

    frames: asyncio.Queue[p.CoordinatorFrame] = asyncio.Queue()
    link = make_link(await coordinator_at(coordinator), frames)
    running = asyncio.create_task(link.run())
    try:
        frame = await asyncio.wait_for(frames.get(), 30)
    finally:
        running.cancel()
    assert frame == p.Assign(task=ASSIGNMENT)
    assert [(e.type, getattr(e, "code", None)) for e in errors] == [
        ("error", "bad_json"),
        ("error", "unknown_type"),
        ("error", "invalid_frame"),
    ]


async def test_silent_coordinator_is_noticed_and_the_link_reconnects(
    coordinator_at: Callable[[Handler], Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    sessions: list[int] = []

    async def coordinator(ws: ServerConnection) -> None:
        await welcome(ws, heartbeat_s=0.2)
        sessions.append(1)
        if len(sessions) == 1:
            await ws.wait_closed()  # says nothing more: a half-open link as the host sees it
            return
        await ws.send(p.encode(p.Assign(task=ASSIGNMENT)))
        await ws.wait_closed()

    frames: asyncio.Queue[p.CoordinatorFrame] = asyncio.Queue()
    link = make_link(await coordinator_at(coordinator), frames)
    caplog.set_level(logging.INFO)
    running = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(frames.get(), 30)
    finally:
        running.cancel()
    assert len(sessions) == 2
    assert "no frame from the coordinator for" in caplog.text


async def test_allowed_insecure_link_warns_at_every_connect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 192.0.2.1 (TEST-NET-1) never answers: every attempt fails and the link tries again.
    link = make_link(
        "ws://192.0.2.1:8765/ws/host",
        asyncio.Queue(),
        allow_insecure=True,
        connect_timeout_s=0.2,
        backoff_max_s=0.1,
    )
    caplog.set_level(logging.INFO)
    running = asyncio.create_task(link.run())
    try:
        await poll_until(
            lambda: caplog.text.count("without TLS (coordinator.allow_insecure)") >= 2,
            "a warning at each of two connects",
        )
    finally:
        running.cancel()
    assert "secret-token" not in caplog.text
