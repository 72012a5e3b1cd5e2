"""What the coordinator replicas on one PostgreSQL database tell each other (LISTEN/NOTIFY).

- `work`: tasks became pending. Tasks created through one replica (the HTTP API, a script's
  sub-tasks, tasks a host gave back) may be for devices whose hosts are connected to another.
- `cancel`: a task must be stopped on its host, which may be connected to another replica (an
  API cancel, a timeout).
- `session`: a host was welcomed; another replica that still holds an older session of it
  closes that one (the newest session wins, as within one replica).

The same connection holds the lock of the timeout duty (`has_duty()`): one replica at a time
ends overdue tasks (coordinator/timeouts.py). The lock is PostgreSQL's, held by the connection's
session, so when the replica dies or loses the connection another takes the duty at its next
check.

Each replica LISTENs on one channel on a connection of its own and hands every notice it gets
(its own too) to `on_notice`. `work` notices sent while one is being sent coalesce into the
next, so a burst costs a few notifications, not one per task; the others are sent in order. If
the connection is lost it is made again with a bounded backoff, and a `work` notice is handed
over once it is back (one may have been missed meanwhile). SQLite has no replicas: no herald.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

import asyncpg
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from tenacity import AsyncRetrying, wait_random_exponential

from coordinator.db_location import Location

log = logging.getLogger(__name__)

CHANNEL = "device_coordinator"
DUTY_LOCK = 0x64657669636562
"""The PostgreSQL advisory lock of the timeout duty."""
CONNECT_TIMEOUT_S = 10.0
NOTIFY_TIMEOUT_S = 10.0


class WorkNotice(BaseModel):
    kind: Literal["work"] = "work"


class CancelNotice(BaseModel):
    kind: Literal["cancel"] = "cancel"
    host_id: str
    task_id: str
    reason: str


class SessionNotice(BaseModel):
    kind: Literal["session"] = "session"
    host_id: str
    session_id: str


Notice = Annotated[WorkNotice | CancelNotice | SessionNotice, Field(discriminator="kind")]
_NOTICE: TypeAdapter[Notice] = TypeAdapter(Notice)


class Herald:
    def __init__(self, location: Location, on_notice: Callable[[Notice], None]) -> None:
        self._dsn = location.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._shown = str(location)
        self._on_notice = on_notice
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._ready = asyncio.Event()
        self._work = False
        self._queue: list[Notice] = []
        self._using = asyncio.Lock()
        """asyncpg runs one statement at a time on a connection."""
        self._duty = False
        self._wanted = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._keep_listening()),
            asyncio.create_task(self._send()),
        ]

    def tell(self, notice: Notice) -> None:
        """Send `notice` to every replica (this one too) after what is queued; returns at once."""
        if isinstance(notice, WorkNotice):
            self._work = True
        else:
            self._queue.append(notice)
        self._wanted.set()

    async def _keep_listening(self) -> None:
        while True:
            async for attempt in AsyncRetrying(wait=wait_random_exponential(0.1, max=5)):
                with attempt:
                    conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
            self._lost.clear()
            conn.add_termination_listener(lambda _conn: self._lost.set())
            await conn.add_listener(CHANNEL, self._notified)
            self._conn = conn
            self._ready.set()
            self._on_notice(WorkNotice())
            await self._lost.wait()
            self._ready.clear()
            self._conn = None
            if self._duty:
                self._duty = False
                log.warning("the timeout duty is given up with the connection")
            log.warning("the notification connection to %s was lost: connecting again", self._shown)
            with contextlib.suppress(Exception):
                conn.terminate()

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = _NOTICE.validate_json(payload)
        except ValidationError as exc:
            log.warning("a notice on %s was not understood (ignored): %s", CHANNEL, exc)
            return
        self._on_notice(notice)

    async def _send(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self._ready.wait()
            conn = self._conn
            assert conn is not None
            notices: list[Notice] = [*self._queue, *([WorkNotice()] if self._work else [])]
            self._queue.clear()
            self._work = False
            sent = 0
            try:
                for notice in notices:
                    payload = notice.model_dump_json()
                    async with self._using:
                        await conn.execute(
                            "SELECT pg_notify($1, $2)", CHANNEL, payload, timeout=NOTIFY_TIMEOUT_S
                        )
                    sent += 1
            except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
                log.warning("a notice to %s failed (sent again): %s", self._shown, exc)
                unsent = notices[sent:]
                self._work = self._work or any(isinstance(n, WorkNotice) for n in unsent)
                self._queue[:0] = [n for n in unsent if not isinstance(n, WorkNotice)]
                self._wanted.set()
                self._lost.set()

    async def has_duty(self) -> bool:
        """Whether this replica runs the timeout duty now (taking it if no replica has it)."""
        conn = self._conn
        if conn is None:
            return False
        if not self._duty:
            try:
                async with self._using:
                    taken = await conn.fetchval(
                        "SELECT pg_try_advisory_lock($1)", DUTY_LOCK, timeout=NOTIFY_TIMEOUT_S
                    )
            except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
                log.warning("taking the timeout duty on %s failed: %s", self._shown, exc)
                self._lost.set()
                return False
            if taken and conn is self._conn:
                self._duty = True
                log.info("this replica checks task timeouts now")
        return self._duty

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), timeout=NOTIFY_TIMEOUT_S)
