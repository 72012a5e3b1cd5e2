"""The durable outbox: what the host owes the coordinator, kept in SQLite until acknowledged.

Semantics, stated up front:
- `put` returns only after the frame (a `submit`, `dump` or `finished`, files included) is
  committed. Concurrent puts share one transaction and one fsync (group commit).
- Items are sent oldest first; after every reconnect all unacknowledged items are sent again,
  in order. Items of one task therefore reach the coordinator in the order they were made.
  Delivery is at-least-once on the wire; the coordinator makes it exactly-once in effect by key.
- An item leaves the outbox only when acknowledged: `ok` deletes it, a refusal moves it to
  `dead_letter` (never retried, never dropped).
- Near the limit (over the high-water mark) a task's queued progress updates (status running,
  finish false) coalesce to the latest one. Final submissions and `finished` are never dropped.
- The `running` table lists the tasks whose scripts this host runs, so that after a crash the
  next daemon can report them (`agent_restarted`) and kill what they left.

Durability: WAL with `synchronous=FULL`: a committed item survives a power loss, not only a
killed process. Group commit pays one fsync per batch, not per item (docs/outbox.md).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiosqlite
from pydantic import BaseModel, ConfigDict, Field

from agent import protocol as p

OutboxFrame = p.Submit | p.Dump | p.Finished
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    progress INTEGER NOT NULL,
    frame TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_task ON outbox(task_id, progress);
CREATE TABLE IF NOT EXISTS dead_letter (
    key TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    frame TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    error TEXT NOT NULL,
    created_at REAL NOT NULL,
    dead_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS running (
    task_id TEXT PRIMARY KEY,
    remote_device_id TEXT NOT NULL,
    started_at REAL NOT NULL
);
"""


class OutboxSettings(BaseModel):
    """The `[outbox]` section of the daemon's configuration."""

    model_config = ConfigDict(extra="forbid")

    max_items: int = Field(default=100_000, ge=10, description="Soft limit on queued items.")
    max_bytes: int = Field(
        default=1024 * 1024 * 1024, ge=1024 * 1024, description="Soft limit on queued bytes."
    )
    high_water: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Fraction of a limit past which progress coalesces and no task is taken.",
    )
    ack_wait_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="How long a durable call waits for the coordinator before answering queued.",
    )
    send_window: int = Field(default=256, ge=1, le=10_000, description="Items sent unacked.")


class OutboxError(Exception):
    """The item could not be stored (disk full, I/O error); the message says so."""


@dataclass
class _Put:
    frame: OutboxFrame
    raw: str
    future: asyncio.Future[None]
    ends_task: bool


@dataclass
class _Ack:
    ack: p.SubmitAck


@dataclass
class _Started:
    task_id: str
    remote_device_id: str
    future: asyncio.Future[None]


_Op = _Put | _Ack | _Started


def _kind(frame: OutboxFrame) -> Literal["submit", "dump", "finished"]:
    return frame.type


def _is_progress(frame: OutboxFrame) -> bool:
    return isinstance(frame, p.Submit) and not frame.finish


class Outbox:
    def __init__(
        self, db: aiosqlite.Connection, settings: OutboxSettings, log: logging.Logger
    ) -> None:
        self._db = db
        self._settings = settings
        self._log = log
        self._ops: asyncio.Queue[_Op] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._waiters: dict[str, asyncio.Future[p.SubmitAck]] = {}
        self._in_flight: dict[str, int] = {}
        self._acked: set[str] = set()
        self._sent_upto = 0
        self._generation = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self.items = 0
        self.bytes = 0
        self.per_task: Counter[str] = Counter()
        self._over = False
        self.on_pressure_change: Callable[[], None] | None = None
        """Called when the high-water mark is crossed, either way."""

    @classmethod
    async def open(cls, path: Path, settings: OutboxSettings, log: logging.Logger) -> Outbox:
        """Open the outbox in the (already checked) state file."""
        db = await aiosqlite.connect(path, timeout=30, isolation_level=None)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.executescript(SCHEMA)
            async with db.execute(
                "SELECT task_id, COUNT(*), SUM(bytes) FROM outbox GROUP BY task_id"
            ) as cur:
                rows = list(await cur.fetchall())
        except BaseException:
            await db.close()
            raise
        outbox = cls(db, settings, log)
        for task_id, count, size in rows:
            outbox.per_task[str(task_id)] = int(count)
            outbox.items += int(count)
            outbox.bytes += int(size)
        outbox._writer = asyncio.create_task(outbox._write_loop())
        outbox._wake.set()
        return outbox

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        await self._db.close()

    # ---- what the daemon calls -----------------------------------------------------------

    async def put(self, frame: OutboxFrame, ends_task: bool = False) -> None:
        """Commit one item; `ends_task` also drops the task from `running` (same commit)."""
        future = asyncio.get_running_loop().create_future()
        await self._ops.put(_Put(frame, p.encode(frame), future, ends_task))
        await future

    async def task_started(self, task_id: str, remote_device_id: str) -> None:
        future = asyncio.get_running_loop().create_future()
        await self._ops.put(_Started(task_id, remote_device_id, future))
        await future

    def expect_ack(self, key: str) -> asyncio.Future[p.SubmitAck]:
        """A future resolved by the acknowledgement of `key` (register before `put`)."""
        future: asyncio.Future[p.SubmitAck] = asyncio.get_running_loop().create_future()
        self._waiters[key] = future
        return future

    def forget_ack(self, key: str) -> None:
        self._waiters.pop(key, None)

    def on_ack(self, ack: p.SubmitAck) -> None:
        waiter = self._waiters.pop(ack.key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(ack)
        if self._in_flight.pop(ack.key, None) is None:
            self._log.info("ignored an acknowledgement for unknown key %s", ack.key)
            return
        self._acked.add(ack.key)
        self._room.set()
        self._ops.put_nowait(_Ack(ack))

    def restart_delivery(self) -> None:
        """A new session: everything unacknowledged goes out again, oldest first."""
        self._in_flight.clear()
        self._sent_upto = 0
        self._generation += 1
        self._room.set()
        self._wake.set()

    def held_tasks(self) -> set[str]:
        return set(self.per_task)

    def over_high_water(self) -> bool:
        s = self._settings
        return self.items >= s.max_items * s.high_water or self.bytes >= s.max_bytes * s.high_water

    async def orphaned_tasks(self) -> list[tuple[str, str]]:
        """Tasks a previous daemon was running when it stopped: (task_id, remote_device_id)."""
        async with self._db.execute("SELECT task_id, remote_device_id FROM running") as cur:
            return [(str(r[0]), str(r[1])) for r in await cur.fetchall()]

    async def deliver(
        self, send: Callable[[str], Awaitable[None]], connected: asyncio.Event
    ) -> None:
        """Send queued items forever: oldest first, at most `send_window` unacknowledged."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while connected.is_set():
                room = self._settings.send_window - len(self._in_flight)
                if room <= 0:
                    self._room.clear()
                    await self._room.wait()
                    continue
                generation = self._generation
                rows = await self._next_rows(room)
                if not rows:
                    break
                for row_id, key, raw in rows:
                    if generation != self._generation:
                        break  # a new session started over from the oldest item
                    self._in_flight[key] = row_id
                    self._sent_upto = row_id
                    try:
                        await send(raw)
                    except Exception as exc:
                        self._log.info("outbox delivery paused: %s", exc)
                        break

    # ---- internals -----------------------------------------------------------------------

    async def _next_rows(self, limit: int) -> list[tuple[int, str, str]]:
        async with self._db.execute(
            "SELECT id, key, frame FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (self._sent_upto, limit + len(self._acked)),
        ) as cur:
            rows = [(int(r[0]), str(r[1]), str(r[2])) for r in await cur.fetchall()]
        fresh = [r for r in rows if r[1] not in self._acked]
        if not fresh and rows:
            self._sent_upto = rows[-1][0]
            return await self._next_rows(limit)
        return fresh[:limit]

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._ops.get()]
            while not self._ops.empty() and len(batch) < 1000:
                batch.append(self._ops.get_nowait())
            try:
                await self._commit(batch)
            except (sqlite3.Error, OSError) as exc:
                error = OutboxError(f"the host's outbox cannot store the item: {exc}")
                self._log.error("%s", error)
                for op in batch:
                    if isinstance(op, _Put | _Started) and not op.future.done():
                        op.future.set_exception(error)
                continue
            for op in batch:
                if isinstance(op, _Put | _Started) and not op.future.done():
                    op.future.set_result(None)
            if any(isinstance(op, _Put) for op in batch):
                self._wake.set()
            self._check_high_water()

    async def _commit(self, batch: list[_Op]) -> None:
        """One transaction for the whole batch, in a handful of statements (not one per item)."""
        puts = [op for op in batch if isinstance(op, _Put)]
        acks = [op.ack for op in batch if isinstance(op, _Ack)]
        started = [op for op in batch if isinstance(op, _Started)]
        changes: list[tuple[str, int, int]] = []
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._over:
                await self._coalesce(puts, changes)
            if puts:
                await self._db.executemany(
                    "INSERT OR IGNORE INTO outbox (key, task_id, kind, progress, frame, bytes, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            op.frame.key,
                            op.frame.task_id,
                            _kind(op.frame),
                            int(_is_progress(op.frame)),
                            op.raw,
                            len(op.raw),
                            time.time(),
                        )
                        for op in puts
                    ],
                )
            changes += [(op.frame.task_id, 1, len(op.raw)) for op in puts]
            ended = [(op.frame.task_id,) for op in puts if op.ends_task]
            if ended:
                await self._db.executemany("DELETE FROM running WHERE task_id = ?", ended)
            if started:
                await self._db.executemany(
                    "INSERT OR REPLACE INTO running VALUES (?, ?, ?)",
                    [(op.task_id, op.remote_device_id, time.time()) for op in started],
                )
            if acks:
                await self._remove(acks, changes)
            await self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                await self._db.execute("ROLLBACK")
            raise
        for task_id, items, size in changes:
            self.per_task[task_id] += items
            if self.per_task[task_id] <= 0:
                del self.per_task[task_id]
            self.items += items
            self.bytes += size
        self._acked.difference_update(ack.key for ack in acks)

    async def _coalesce(self, puts: list[_Put], changes: list[tuple[str, int, int]]) -> None:
        """Over the high-water mark: a task's new progress update replaces its queued ones."""
        for task_id in {op.frame.task_id for op in puts if _is_progress(op.frame)}:
            async with self._db.execute(
                "DELETE FROM outbox WHERE task_id = ? AND progress = 1 RETURNING bytes",
                (task_id,),
            ) as cur:
                dropped = [int(r[0]) for r in await cur.fetchall()]
            if dropped:
                changes.append((task_id, -len(dropped), -sum(dropped)))

    async def _remove(self, acks: list[p.SubmitAck], changes: list[tuple[str, int, int]]) -> None:
        refused = [a for a in acks if not a.ok]
        for ack in refused:
            self._log.error("item %s refused for good: %s", ack.key, ack.error)
        await self._db.executemany(
            "INSERT OR REPLACE INTO dead_letter "
            "SELECT key, task_id, kind, frame, bytes, ?, created_at, ? FROM outbox WHERE key = ?",
            [(a.error or "refused", time.time(), a.key) for a in refused],
        )
        keys = [a.key for a in acks]
        for first in range(0, len(keys), 500):
            chunk = keys[first : first + 500]
            async with self._db.execute(
                f"DELETE FROM outbox WHERE key IN ({','.join('?' * len(chunk))}) "
                "RETURNING task_id, bytes",
                chunk,
            ) as cur:
                changes += [(str(r[0]), -1, -int(r[1])) for r in await cur.fetchall()]

    def _check_high_water(self) -> None:
        over = self.over_high_water()
        if over != self._over:
            self._over = over
            if over:
                self._log.warning(
                    "outbox over its high-water mark (%d items, %d bytes): "
                    "progress updates coalesce and no new task is taken",
                    self.items,
                    self.bytes,
                )
            else:
                self._log.info("outbox back under its high-water mark: taking tasks again")
            if self.on_pressure_change is not None:
                self.on_pressure_change()
