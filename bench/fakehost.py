"""Fake hosts for the farm bench: many hosts speaking docs/protocol.md in one asyncio loop.

On the wire a `FakeHost` is the daemon (agent/link.py, agent/scheduler.py, agent/outbox.py)
with devices that finish a task the moment it is assigned, so that only the coordinator is
measured: `hello` (its devices, the tasks it still holds), `welcome`, `credits`; on `assign`:
`accept`, `started`, a final `submit` whose `submit_ack` it waits for, then `finished` and
fresh `credits` (no device list: a task changes no device's own state, docs/protocol.md).
It sends a heartbeat every interval and closes with 4003 after two silent ones.
Unacknowledged `submit` and `finished` frames are kept (in memory, where the daemon has
SQLite) and resent, oldest first, after every reconnect.

Each host connects to its coordinator URLs round-robin: after a lost session or a failed
attempt it tries the next one, after a short jittered backoff.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import TypeAdapter, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from agent import protocol as p

OPEN_TIMEOUT_S = 30.0
"""Connecting and the hello/welcome exchange. The daemon's default is 10 s; this is generous
because 100 hosts connect at once, and timeouts would add a reconnect storm of the bench's own."""
CLOSE_TIMEOUT_S = 5.0
SEND_TIMEOUT_S = 10.0
"""A send stuck this long (the coordinator reads nothing) ends the session, as in the daemon."""
AGENT_VERSION = "farm-bench"

# Trusted input: pydantic-core parses and validates in one call, without agent.boundedjson's
# checks against hostile frames (the daemon's parse_coordinator_frame), which cost more here.
_coordinator_frames: TypeAdapter[p.CoordinatorFrame] = TypeAdapter(p.CoordinatorFrame)


class HandshakeFailed(Exception):
    """The websocket opened but no `welcome` came back."""


@dataclass(frozen=True)
class Backoff:
    """Waits between connection attempts: jittered, doubling from `initial_s` up to `max_s`."""

    initial_s: float = 0.1
    max_s: float = 1.0

    def after_failures(self, failures: int) -> float:
        return min(self.max_s, self.initial_s * 2.0 ** (failures - 1)) * random.uniform(0.5, 1.0)

    def after_session(self) -> float:
        return random.uniform(0, self.initial_s)


@dataclass
class FarmStats:
    """What every host of a farm saw, for the bench's figures and the test's checks."""

    assigns: dict[str, list[float]] = field(default_factory=dict)
    """Task id -> when (time.monotonic) each `assign` of it arrived."""
    finished: set[str] = field(default_factory=set)
    """Tasks whose `finished` was acknowledged ok."""
    welcomes: int = 0
    failed_connects: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    """Sessions that ended without the bench asking, by why."""
    expected_closes: int = 0
    """Sessions ended while `expect_closes` was set (a restart the bench made)."""
    expect_closes: bool = False
    refused: Counter[str] = field(default_factory=Counter)
    """`submit_ack` ok=false, `error` frames, rejects and cancels: none in a healthy run."""

    def record_assign(self, task_id: str) -> None:
        self.assigns.setdefault(task_id, []).append(time.monotonic())


@dataclass
class _Outboxed:
    raw: str
    ends_task: str | None
    """The task whose `finished` this is: held (listed in `hello`) until acknowledged."""


class FakeHost:
    """One host with `device_ids`, serving until `stop()`."""

    def __init__(
        self,
        host_id: str,
        token: str,
        device_ids: list[str],
        urls: list[str],
        stats: FarmStats,
        first_url: int = 0,
        backoff: Backoff | None = None,
    ) -> None:
        self.host_id = host_id
        self.device_ids = device_ids
        self._token = token
        self._urls = urls
        self._next_url = first_url
        self._stats = stats
        self._backoff = backoff or Backoff()
        # Every device is always `available`: its own state, which no task changes.
        self._device_list = [
            p.DeviceInfo(remote_device_id=d, kind="sim", state="available") for d in device_ids
        ]
        self._busy: dict[str, str] = {}
        """Device -> the task it runs: from `assign` until the task's end is queued."""
        self._awaiting: dict[str, p.Assignment] = {}
        """Final submit key -> its task, until the submit is acknowledged or the link is lost."""
        self._outbox: dict[str, _Outboxed] = {}
        self._ws: ClientConnection | None = None
        self._last_rx = 0.0
        self._stopping = False
        self.welcomed_at: float | None = None
        """When (time.monotonic) the current session was welcomed; None between sessions."""
        self.url: str | None = None
        """The URL of the current session; None between sessions."""
        self.sessions = 0

    async def run(self) -> None:
        """Connect, serve, reconnect to the next URL; until `stop()`."""
        failures = 0
        while not self._stopping:
            url = self._urls[self._next_url % len(self._urls)]
            self._next_url += 1
            try:
                ws, welcome = await self._open(url)
            except (OSError, TimeoutError, WebSocketException, HandshakeFailed):
                self._stats.failed_connects += 1
                failures += 1
                await asyncio.sleep(self._backoff.after_failures(failures))
                continue
            failures = 0
            if self._stopping:  # stopped while connecting
                await ws.close()
                return
            why = await self._serve(ws, welcome, url)
            if self._stopping:
                return
            if self._stats.expect_closes:
                self._stats.expected_closes += 1
            else:
                self._stats.drops[why] += 1
            await asyncio.sleep(self._backoff.after_session())

    async def stop(self) -> None:
        """End the session (close code 1000); `run` then returns."""
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()

    def _hello(self) -> p.Hello:
        held = {item.ends_task for item in self._outbox.values() if item.ends_task is not None}
        return p.Hello(
            protocol_version=p.PROTOCOL_VERSION,
            host_id=self.host_id,
            agent_version=AGENT_VERSION,
            devices=self._device_list,
            running_tasks=sorted(held | set(self._busy.values())),
        )

    async def _open(self, url: str) -> tuple[ClientConnection, p.Welcome]:
        ws = await connect(
            url,
            additional_headers={p.AUTH_HEADER: f"Bearer {self._token}"},
            open_timeout=OPEN_TIMEOUT_S,
            close_timeout=CLOSE_TIMEOUT_S,
            max_size=p.MAX_FRAME_BYTES + 1024 * 1024,
            ping_interval=None,
        )
        try:
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                await ws.send(p.encode(self._hello()))
                frame = _coordinator_frames.validate_json(await ws.recv())
        except (TimeoutError, ConnectionClosed, ValidationError) as exc:
            await ws.close()
            raise HandshakeFailed(f"no welcome: {type(exc).__name__}") from None
        if not isinstance(frame, p.Welcome):
            await ws.close()
            raise HandshakeFailed(f"expected welcome, got {frame.type}")
        return ws, frame

    async def _serve(self, ws: ClientConnection, welcome: p.Welcome, url: str) -> str:
        """One session; returns why it ended."""
        self._ws = ws
        self.url = url
        self._last_rx = time.monotonic()
        self.welcomed_at = self._last_rx
        self.sessions += 1
        self._stats.welcomes += 1
        reader = asyncio.create_task(self._read(ws))
        heart = asyncio.create_task(self._heartbeat(ws, welcome.heartbeat_interval_s))
        try:
            # As the daemon: credits first, then the outbox, oldest first, beside new work.
            await self._send(ws, p.encode(p.Credits(free=self._free())))
            for item in list(self._outbox.values()):
                await self._send(ws, item.raw)
            done, _ = await asyncio.wait({reader, heart}, return_when=asyncio.FIRST_COMPLETED)
            why = next(iter(done)).result()
        except (ConnectionClosed, TimeoutError) as exc:
            why = _describe(exc)
        finally:
            for task in (reader, heart):
                task.cancel()
            await asyncio.gather(reader, heart, return_exceptions=True)
            self._ws = None
            self.welcomed_at = None
            self.url = None
            self._link_lost()
            await ws.close()
        return why

    def _link_lost(self) -> None:
        """A script waiting for its final submit's ack is told `queued` and ends: its
        `finished` waits in the outbox and its device is free (agent/backend.py)."""
        for task in self._awaiting.values():
            self._queue_finished(task)
        self._awaiting.clear()

    async def _send(self, ws: ClientConnection, raw: str) -> None:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await ws.send(raw)

    async def _read(self, ws: ClientConnection) -> str:
        try:
            async for raw in ws:
                self._last_rx = time.monotonic()
                try:
                    frame = _coordinator_frames.validate_json(raw)
                except ValidationError as exc:
                    self._stats.refused["invalid coordinator frame"] += 1
                    error = p.Error(code="invalid_frame", message=str(exc.errors()[0]["msg"]))
                    await self._send(ws, p.encode(error))
                    continue
                await self._handle(ws, frame)
        except (ConnectionClosed, TimeoutError) as exc:
            return _describe(exc)
        return f"close {ws.close_code} from the coordinator"

    async def _handle(self, ws: ClientConnection, frame: p.CoordinatorFrame) -> None:
        if isinstance(frame, p.Assign):
            await self._on_assign(ws, frame.task)
        elif isinstance(frame, p.SubmitAck):
            await self._on_ack(ws, frame)
        elif isinstance(frame, p.Cancel):
            # Tasks here end at once: a cancel finds nothing to kill, as in the daemon.
            self._stats.refused[f"cancel: {frame.reason}"] += 1
        elif isinstance(frame, p.Error):
            self._stats.refused[f"error {frame.code}"] += 1

    async def _on_assign(self, ws: ClientConnection, task: p.Assignment) -> None:
        self._stats.record_assign(task.task_id)
        device = task.remote_device_id
        reason = None
        if device not in self.device_ids:
            reason = "unknown_device"
        elif device in self._busy:
            reason = "device_busy"
        if reason is not None:
            self._stats.refused[f"rejected: {reason}"] += 1
            await self._send(ws, p.encode(p.Reject(task_id=task.task_id, reason=reason)))
            await self._send(ws, p.encode(p.Credits(free=self._free())))
            return
        # All recorded before the first send, as the daemon records the task in its outbox
        # before it accepts: a link lost in between still ends the task (`_link_lost`).
        submit = p.Submit(
            key=uuid.uuid4().hex,
            task_id=task.task_id,
            seq=0,
            status="success",
            data={},
            finish=True,
        )
        raw = p.encode(submit)
        self._busy[device] = task.task_id
        self._outbox[submit.key] = _Outboxed(raw, ends_task=None)
        self._awaiting[submit.key] = task
        await self._send(ws, p.encode(p.Accept(task_id=task.task_id)))
        started = p.Started(task_id=task.task_id, started_at=datetime.now(UTC))
        await self._send(ws, p.encode(started))
        await self._send(ws, raw)

    async def _on_ack(self, ws: ClientConnection, ack: p.SubmitAck) -> None:
        item = self._outbox.pop(ack.key, None)
        if not ack.ok:
            self._stats.refused[f"submit_ack refused: {ack.error}"] += 1
        if item is not None and item.ends_task is not None and ack.ok:
            self._stats.finished.add(item.ends_task)
        task = self._awaiting.pop(ack.key, None)
        if task is None:
            return
        raw = self._queue_finished(task)
        await self._send(ws, raw)
        await self._send(ws, p.encode(p.Credits(free=self._free())))

    def _queue_finished(self, task: p.Assignment) -> str:
        """The script returned: its `finished` goes to the outbox; the device is free."""
        finished = p.Finished(
            key=uuid.uuid4().hex,
            task_id=task.task_id,
            state="success",
            finished_at=datetime.now(UTC),
        )
        raw = p.encode(finished)
        self._outbox[finished.key] = _Outboxed(raw, ends_task=task.task_id)
        self._busy.pop(task.remote_device_id, None)
        return raw

    def _free(self) -> list[str]:
        return [d for d in self.device_ids if d not in self._busy]

    async def _heartbeat(self, ws: ClientConnection, interval_s: float) -> str:
        next_beat = 0.0
        while True:
            now = time.monotonic()
            if now - self._last_rx > 2 * interval_s:
                await ws.close(p.CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout")
                return f"close {p.CLOSE_HEARTBEAT_TIMEOUT} sent by the host"
            if now >= next_beat:
                beat = p.Heartbeat(sent_at=datetime.now(UTC), accepting=True, pause_reason=None)
                await self._send(ws, p.encode(beat))
                next_beat = now + interval_s
            await asyncio.sleep(min(interval_s / 4, 1.0))


def _describe(exc: BaseException) -> str:
    """Why a session ended, naming the side that closed first (the other only echoes)."""
    if isinstance(exc, ConnectionClosed):
        if exc.sent is not None and not exc.rcvd_then_sent:
            return f"close {exc.sent.code} sent by the host"
        if exc.rcvd is not None:
            return f"close {exc.rcvd.code} from the coordinator"
        return "connection lost (no close frame)"
    return "send timed out"


class Farm:
    """Many fake hosts sharing one `FarmStats`, served by tasks of the running loop."""

    def __init__(self, hosts: list[FakeHost], stats: FarmStats) -> None:
        self.hosts = hosts
        self.stats = stats
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def build(
        cls,
        tokens: dict[str, str],
        devices_per_host: int,
        ws_urls: list[str],
        backoff: Backoff | None = None,
    ) -> Farm:
        """One host per entry of `tokens` (host id -> token), each on `ws_urls` round-robin,
        starting at a different URL so the hosts spread over them."""
        stats = FarmStats()
        hosts = [
            FakeHost(
                host_id,
                token,
                device_ids(host_id, devices_per_host),
                ws_urls,
                stats,
                first_url=i,
                backoff=backoff,
            )
            for i, (host_id, token) in enumerate(tokens.items())
        ]
        return cls(hosts, stats)

    @property
    def device_count(self) -> int:
        return sum(len(h.device_ids) for h in self.hosts)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(h.run(), name=h.host_id) for h in self.hosts]

    def check(self) -> None:
        """Raise the error of a host that died of one: a bug here, not a coordinator's fault."""
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"fake host {task.get_name()} failed") from task.exception()

    def welcomed_since(self, moment: float) -> int:
        """How many hosts have a session welcomed at or after `moment` (time.monotonic)."""
        return sum(1 for h in self.hosts if h.welcomed_at is not None and h.welcomed_at >= moment)

    def connected(self) -> int:
        """How many hosts have a welcomed session now."""
        return sum(1 for h in self.hosts if h.welcomed_at is not None)

    async def stop(self) -> None:
        """Close every session at once (a busy coordinator answers each close slowly); a host
        between attempts or mid-connect is not waited for."""
        await asyncio.gather(*(host.stop() for host in self.hosts))
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def device_ids(host_id: str, count: int) -> list[str]:
    return [f"{host_id}-d{j:02d}" for j in range(count)]
