"""The daemon's one websocket to the coordinator: connect, authenticate, heartbeat, reconnect.

`Link.run()` never returns while the daemon lives. Each connection attempt (a refused token
included) is retried with jittered exponential backoff; a session that ends is followed by a
new attempt. Replies are matched to their requests here, acknowledgements go to the outbox,
and every other coordinator frame goes to the daemon's handler.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity.wait import wait_exponential_jitter
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from agent import protocol as p
from agent.config import CoordinatorSettings

FrameHandler = Callable[[p.CoordinatorFrame], Awaitable[None]]
SessionHook = Callable[[], Awaitable[None]]
AckHandler = Callable[[p.SubmitAck], None]
CLOSE_TIMEOUT_S = 5.0
ALIVE_SLACK_S = 5.0
"""Added to every promise of `alive_until`: a busy event loop runs the link's next step late."""


class LinkDown(Exception):
    """No session with the coordinator right now (or it ended while waiting)."""


class RequestFailed(Exception):
    """The coordinator answered a request with ok=false, or did not answer in time."""


class HandshakeFailed(Exception):
    """The connection opened but no session was established; retried with backoff."""


def _describe(exc: BaseException, url: str = "") -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the coordinator's TLS certificate: certificate verify failed: {exc.verify_message} "
            "(coordinator.ca_file names the CA that verifies it)"
        )
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status == 401:
            return f"coordinator refused the host token (HTTP {status})"
        if status in (403, 404):
            # A websocket to a path with no route is refused 403 by Starlette: not the token.
            path = urlsplit(url).path or "/"
            return (
                f"coordinator answered HTTP {status}: no host websocket at {path} "
                "(coordinator.url; the reference coordinator's is /ws/host)"
            )
        return f"coordinator answered HTTP {status}"
    if isinstance(exc, ConnectionClosed) and exc.rcvd is not None:
        if exc.rcvd.code == p.CLOSE_SERVICE_RESTART:
            return f"the coordinator is restarting ({exc.rcvd.code} {exc.rcvd.reason})"
        return f"coordinator closed the connection ({exc.rcvd.code} {exc.rcvd.reason})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Link:
    def __init__(
        self,
        settings: CoordinatorSettings,
        token: str,
        make_hello: Callable[[], p.Hello],
        on_frame: FrameHandler,
        on_session: SessionHook,
        on_ack: AckHandler,
        log: logging.Logger,
        make_heartbeat: Callable[[], p.Heartbeat] | None = None,
    ) -> None:
        self._settings = settings
        self._token = token
        self._make_hello = make_hello
        self._on_frame = on_frame
        self._on_session = on_session
        self._on_ack = on_ack
        self._log = log
        self._make_heartbeat = make_heartbeat or (lambda: p.Heartbeat(sent_at=datetime.now(UTC)))
        self._ssl = settings.ssl_context()
        self._urls = settings.urls
        self._at = 0
        """The index in `_urls` of the coordinator tried next: kept while it answers, moved on
        after a failed attempt or a lost session."""
        self._ws: ClientConnection | None = None
        self._replies: dict[str, asyncio.Future[p.Reply]] = {}
        self._last_rx = 0.0
        self.connected = asyncio.Event()
        self.alive_until = 0.0
        """The monotonic time by which the link's loop promises its next step (the watchdog
        stops pinging systemd once it is past: the loop is wedged)."""
        self._alive_for(2 * settings.connect_timeout_s)
        self.retry_at: float | None = None
        """When the next connection attempt starts (monotonic), while waiting for it."""
        self.sessions = 0
        """Sessions established so far (the first, then each reconnect): a metric."""

    def _alive_for(self, seconds: float) -> None:
        self.alive_until = time.monotonic() + seconds + ALIVE_SLACK_S

    async def run(self) -> None:
        while True:
            ws, welcome = await self._connect_with_backoff()
            try:
                await self._serve(ws, welcome)
            finally:
                self._alive_for(CLOSE_TIMEOUT_S + self._settings.backoff_initial_s)
                self._end_session()
                await ws.close()
            self._log.warning("lost the coordinator at %s; reconnecting", self._url)
            self._move_on()
            await asyncio.sleep(random.uniform(0, self._settings.backoff_initial_s))

    @property
    def _url(self) -> str:
        return self._urls[self._at]

    def _move_on(self) -> None:
        self._at = (self._at + 1) % len(self._urls)

    async def send(self, frame: p.Frame) -> None:
        await self.send_text(p.encode(frame))

    async def send_text(self, raw: str) -> None:
        """Send an already encoded frame (the outbox stores frames as sent)."""
        ws = self._ws
        if ws is None:
            raise LinkDown("not connected to the coordinator")
        try:
            async with asyncio.timeout(self._settings.request_timeout_s):
                await ws.send(raw)
        except (ConnectionClosed, TimeoutError) as exc:
            raise LinkDown(_describe(exc)) from None

    async def request(self, task_id: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """One request/reply round trip, waiting at most request_timeout_s for link and reply."""
        try:
            async with asyncio.timeout(self._settings.request_timeout_s):
                await self.connected.wait()
                frame = p.Request(
                    id=uuid.uuid4().hex, task_id=task_id, method=method, params=params
                )
                future: asyncio.Future[p.Reply] = asyncio.get_running_loop().create_future()
                self._replies[frame.id] = future
                try:
                    await self.send(frame)
                    reply = await future
                finally:
                    self._replies.pop(frame.id, None)
        except TimeoutError:
            raise RequestFailed(
                f"no answer from the coordinator within {self._settings.request_timeout_s:g} s"
            ) from None
        except LinkDown as exc:
            raise RequestFailed(f"lost the coordinator during the call: {exc}") from None
        if not reply.ok:
            raise RequestFailed(reply.error or "the coordinator refused the call")
        return reply.result or {}

    async def _connect_with_backoff(self) -> tuple[ClientConnection, p.Welcome]:
        retrying = AsyncRetrying(
            wait=wait_exponential_jitter(
                multiplier=self._settings.backoff_initial_s,
                max=self._settings.backoff_max_s,
                jitter=self._settings.backoff_initial_s,
            ),
            retry=retry_if_exception_type((OSError, WebSocketException, HandshakeFailed)),
            before_sleep=self._log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._handshake()
        raise AssertionError("unreachable: tenacity retries forever")

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        self.retry_at = time.monotonic() + delay
        self._alive_for(delay)
        reason = _describe(exc, self._url) if exc else "unknown error"
        self._log.warning(
            "cannot connect to the coordinator at %s: %s; retrying in %.1f s",
            self._url,
            reason,
            delay,
        )
        self._move_on()

    async def _handshake(self) -> tuple[ClientConnection, p.Welcome]:
        url = self._url
        self.retry_at = None
        # Opening the connection, then the hello and the welcome: each within connect_timeout_s.
        self._alive_for(2 * self._settings.connect_timeout_s)
        if self._settings.insecure(url):
            self._log.warning(
                "connecting to %s without TLS (coordinator.allow_insecure): the host token "
                "and every frame travel in clear",
                url,
            )
        ws = await connect(
            url,
            ssl=self._ssl if url.startswith("wss://") else None,
            additional_headers={p.AUTH_HEADER: f"Bearer {self._token}"},
            open_timeout=self._settings.connect_timeout_s,
            max_size=p.MAX_FRAME_BYTES + 1024 * 1024,
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT_S,
        )
        try:
            async with asyncio.timeout(self._settings.connect_timeout_s):
                await ws.send(p.encode(self._make_hello()))
                raw = await ws.recv()
            frame = p.parse_coordinator_frame(raw)
        except ConnectionClosed as exc:
            await ws.close()
            raise HandshakeFailed(_describe(exc)) from None
        except (TimeoutError, p.FrameError) as exc:
            await ws.close()
            raise HandshakeFailed(f"no valid welcome from the coordinator: {exc}") from None
        if not isinstance(frame, p.Welcome):
            await ws.close()
            raise HandshakeFailed(f"expected welcome, got {frame.type}")
        return ws, frame

    async def _serve(self, ws: ClientConnection, welcome: p.Welcome) -> None:
        self._ws = ws
        self._last_rx = time.monotonic()
        self.sessions += 1
        self.connected.set()
        self._log.info("connected to the coordinator (session %s)", welcome.session_id)
        reader = asyncio.create_task(self._read(ws))
        heart = asyncio.create_task(self._heartbeat(ws, welcome.heartbeat_interval_s))
        try:
            await self._on_session()
            await asyncio.wait({reader, heart}, return_when=asyncio.FIRST_COMPLETED)
        except LinkDown:
            pass
        finally:
            for task in (reader, heart):
                task.cancel()
            await asyncio.gather(reader, heart, return_exceptions=True)

    def _end_session(self) -> None:
        self._ws = None
        self.connected.clear()
        for future in self._replies.values():
            if not future.done():
                future.set_exception(LinkDown("the session ended"))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self._last_rx = time.monotonic()
                try:
                    frame = p.parse_coordinator_frame(raw)
                except p.FrameError as exc:
                    self._log.warning("refused a frame from the coordinator: %s", exc.message)
                    await self.send(p.Error(code=exc.code, message=exc.message))
                    continue
                await self._dispatch(frame)
        except ConnectionClosed as exc:
            self._log.warning("%s", _describe(exc))

    async def _dispatch(self, frame: p.CoordinatorFrame) -> None:
        if isinstance(frame, p.Reply):
            reply = self._replies.get(frame.id)
            if reply is not None and not reply.done():
                reply.set_result(frame)
        elif isinstance(frame, p.SubmitAck):
            self._on_ack(frame)
        elif isinstance(frame, p.Error):
            self._log.warning("coordinator error %s: %s", frame.code, frame.message)
        elif not isinstance(frame, p.Heartbeat | p.Welcome):
            await self._on_frame(frame)

    async def _heartbeat(self, ws: ClientConnection, interval: float) -> None:
        next_beat = 0.0
        while True:
            now = time.monotonic()
            if now - self._last_rx > 2 * interval:
                self._log.warning(
                    "no frame from the coordinator for %.0f s; reconnecting", now - self._last_rx
                )
                await ws.close(p.CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout")
                return
            if now >= next_beat:
                self._alive_for(self._settings.request_timeout_s)
                await self.send(self._make_heartbeat())
                next_beat = now + interval
            pause = min(interval / 4, 1.0)
            self._alive_for(pause)
            await asyncio.sleep(pause)
