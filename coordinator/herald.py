"""Telling the other coordinator replicas on one PostgreSQL database that there is new work.

Tasks created through one replica (the HTTP API, a script's sub-tasks, tasks a host gave back)
may be for devices whose hosts are connected to another. Each replica LISTENs on one channel on
a connection of its own and, on a notification, wakes its dispatcher (coordinator/dispatch.py);
`announce()` NOTIFYs it after the work is committed. Announcements made while one is being sent
coalesce into the next, so a burst costs a few notifications, not one per task. If the listening
connection is lost it is made again with a bounded backoff, and the dispatcher is woken once it
is back (a notification may have been missed meanwhile). SQLite has no replicas: no herald.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from tenacity import AsyncRetrying, wait_random_exponential

from coordinator.db_location import Location

log = logging.getLogger(__name__)

CHANNEL = "device_coordinator_work"
CONNECT_TIMEOUT_S = 10.0
NOTIFY_TIMEOUT_S = 10.0


class Herald:
    def __init__(self, location: Location, on_work: Callable[[], None]) -> None:
        self._dsn = location.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._shown = str(location)
        self._on_work = on_work
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._ready = asyncio.Event()
        self._wanted = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._keep_listening()),
            asyncio.create_task(self._send_announcements()),
        ]

    def announce(self) -> None:
        """Tell every replica (this one too) that there is new work; returns at once."""
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
            self._on_work()
            await self._lost.wait()
            self._ready.clear()
            self._conn = None
            log.warning("the notification connection to %s was lost: connecting again", self._shown)
            with contextlib.suppress(Exception):
                conn.terminate()

    def _notified(self, *_: Any) -> None:
        self._on_work()

    async def _send_announcements(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self._ready.wait()
            conn = self._conn
            assert conn is not None
            try:
                await conn.execute(f"NOTIFY {CHANNEL}", timeout=NOTIFY_TIMEOUT_S)
            except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
                log.warning("NOTIFY on %s failed: %s", self._shown, exc)
                self._lost.set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), timeout=NOTIFY_TIMEOUT_S)
