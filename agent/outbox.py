"""The durable outbox: what the host owes the coordinator, kept in SQLite until acknowledged.

Semantics, stated up front:
- `put` returns only after the frame (a `submit`, `dump`, `timeline` or `finished`, files
  included) is committed. Concurrent puts share one transaction and one fsync (group commit).
- Items are sent oldest first; after every reconnect all unacknowledged items are sent again,
  in order. Items of one task therefore reach the coordinator in the order they were made.
  Delivery is at-least-once on the wire; the coordinator makes it exactly-once in effect by key.
- An item leaves the outbox only when acknowledged: `ok` deletes it, a refusal moves it to
  `dead_letter` (never retried, never dropped).
- Near the limit (over the high-water mark) a task's queued progress updates (status running,
  finish false) coalesce to the latest one. Final submissions and `finished` are never dropped.
- The `running` table lists the tasks whose scripts this host runs, so that after a crash the
  next daemon can report them (`agent_restarted`) and kill what they left.
- Disk-full mode (agent/outbox_disk.py): when a commit finds no space, the reserve file is
  released and the task ends and acknowledgements in it are committed with that space; while
  the disk is short, other items and new tasks are refused, task ends and acknowledgements that
  still do not fit are retried until they do, and the host takes work again once it has room.

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from agent import outbox_store as store
from agent import protocol as p
from agent.outbox_disk import DiskReserve, is_disk_full

OutboxFrame = p.Submit | p.Dump | p.Finished | p.TimelineBatch
T = TypeVar("T")


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
    disk_reserve_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=256 * 1024,
        description="Space kept beside the state file for task ends and acknowledgements.",
    )
    disk_check_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How often free space is checked (and ends that did not fit are retried).",
    )


class OutboxError(Exception):
    """The item could not be stored (disk full, I/O error); the message says so."""


class _DiskFull(Exception):
    """A commit found no space; `released` when the reserve was freed for a retry."""

    def __init__(self, cause: BaseException, released: bool) -> None:
        super().__init__(str(cause))
        self.released = released


@dataclass(slots=True)
class _Put:
    frame: OutboxFrame
    raw: str
    future: asyncio.Future[None]
    ends_task: bool

    @property
    def essential(self) -> bool:
        """A task's end: kept and retried through a full disk, never refused for space."""
        return self.ends_task or isinstance(self.frame, p.Finished)


@dataclass(slots=True)
class _Ack:
    ack: p.SubmitAck
    row_id: int


@dataclass(slots=True)
class _Started:
    task_id: str
    remote_device_id: str
    future: asyncio.Future[None]


_Op = _Put | _Ack | _Started


def _essential(op: _Op) -> bool:
    return isinstance(op, _Ack) or (isinstance(op, _Put) and op.essential)


@dataclass(slots=True)
class _Commit:
    ops: list[_Op]
    batch: store.Batch
    inserted: list[tuple[int, store.Held]]
    done: asyncio.Future[None]


def _is_progress(frame: OutboxFrame) -> bool:
    return isinstance(frame, p.Submit) and not frame.finish


class Outbox:
    def __init__(
        self,
        thread: ThreadPoolExecutor,
        db: sqlite3.Connection,
        held: dict[int, store.Held],
        next_id: int,
        reserve: DiskReserve,
        settings: OutboxSettings,
        log: logging.Logger,
    ) -> None:
        self._thread = thread
        self._db = db
        self._reserve = reserve
        self.disk_short = False
        self._deferred: list[_Op] = []
        """Task ends and acknowledgements that found no space: retried at each disk check."""
        self._retry_ends = True
        self._watcher: asyncio.Task[None] | None = None
        self._settings = settings
        self._log = log
        self._pending: list[_Op] = []
        self._committing: _Commit | None = None
        self._begin_soon: asyncio.Handle | None = None
        self._closed = False
        self._held: dict[int, store.Held] = {}
        self._next_id = next_id
        self._queued_progress: dict[str, set[int]] = {}
        self._waiters: dict[str, asyncio.Future[p.SubmitAck]] = {}
        self._in_flight: dict[str, int] = {}
        self._acked: set[int] = set()
        self._sent_upto = 0
        self._generation = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._emptied = asyncio.Event()
        self.items = 0
        self.bytes = 0
        self.per_task: Counter[str] = Counter()
        self._over = False
        self.on_pressure_change: Callable[[], None] | None = None
        """Called when the high-water mark is crossed or the disk gets short, either way."""
        for row_id, row in held.items():
            self._add(row_id, row)

    @classmethod
    async def open(cls, path: Path, settings: OutboxSettings, log: logging.Logger) -> Outbox:
        """Open the outbox in the (already checked) state file."""
        # One thread owns the connection; every statement runs there, a whole commit per hop.
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        loop = asyncio.get_running_loop()
        reserve = DiskReserve(path, settings.disk_reserve_bytes)
        try:
            db, held, next_id = await loop.run_in_executor(thread, store.connect, path)
            short = await loop.run_in_executor(thread, reserve.short, False)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        outbox = cls(thread, db, held, next_id, reserve, settings, log)
        outbox._set_disk_short(short)
        outbox._wake.set()
        outbox._watcher = asyncio.create_task(outbox._watch_disk())
        return outbox

    async def close(self) -> None:
        """Commit what callers wait for, then close the file."""
        self.stop_retrying()
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        while True:
            if self._begin_soon is not None:
                self._begin_soon.cancel()
                self._begin()
            if self._committing is None:
                break
            await asyncio.wait([self._committing.done])
        self._closed = True
        await self._call(sqlite3.Connection.close)
        self._thread.shutdown(wait=False)

    # ---- what the daemon calls -----------------------------------------------------------

    async def put(
        self, frame: OutboxFrame, ends_task: bool = False, ahead: OutboxFrame | None = None
    ) -> None:
        """Commit one item; `ends_task` also drops the task from `running` (same commit).

        `ahead` is queued just before it, in the same commit (a run's last timeline batch with
        its `finished`); if it alone cannot be stored, that is logged, not raised."""
        loop = asyncio.get_running_loop()
        if ahead is not None:
            before: asyncio.Future[None] = loop.create_future()
            before.add_done_callback(self._log_lost)
            try:
                self._submit(_Put(ahead, p.encode(ahead), before, False))
            except OutboxError as exc:  # a short disk refuses it: the task's end goes on
                before.set_exception(exc)
        future = loop.create_future()
        self._submit(_Put(frame, p.encode(frame), future, ends_task))
        await future

    def _log_lost(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self._log.warning("an item queued ahead was not stored: %s", future.exception())

    async def task_started(self, task_id: str, remote_device_id: str) -> None:
        future = asyncio.get_running_loop().create_future()
        self._submit(_Started(task_id, remote_device_id, future))
        await future

    def expect_ack(self, key: str) -> asyncio.Future[p.SubmitAck]:
        """A future resolved by the acknowledgement of `key` (register before `put`)."""
        future: asyncio.Future[p.SubmitAck] = asyncio.get_running_loop().create_future()
        self._waiters[key] = future
        return future

    def forget_ack(self, key: str) -> None:
        self._waiters.pop(key, None)

    def on_ack(self, ack: p.SubmitAck) -> None:
        if self._closed:
            return  # the next daemon sends the item again and gets a new acknowledgement
        waiter = self._waiters.pop(ack.key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(ack)
        row_id = self._in_flight.pop(ack.key, None)
        if row_id is None:
            self._log.info("ignored an acknowledgement for unknown key %s", ack.key)
            return
        self._acked.add(row_id)
        self._room.set()
        self._submit(_Ack(ack, row_id))

    def restart_delivery(self) -> None:
        """A new session: everything unacknowledged goes out again, oldest first."""
        self._in_flight.clear()
        self._sent_upto = 0
        self._generation += 1
        self._room.set()
        self._wake.set()

    def stop_retrying(self) -> None:
        """The daemon stops: task ends that wait for space fail now (the next start reports
        their tasks `agent_restarted`); acknowledgements not stored are simply sent again."""
        self._retry_ends = False
        error = OutboxError("the host's disk is full and the daemon is stopping")
        for op in self._deferred:
            if isinstance(op, _Put) and not op.future.done():
                op.future.set_exception(error)
        self._deferred.clear()

    async def wait_empty(self) -> None:
        """Return once nothing is queued: every item acknowledged (or dead-lettered)."""
        while self.items:
            self._emptied.clear()
            await self._emptied.wait()

    def oldest_age_s(self) -> float:
        """Seconds since the oldest item still queued was queued; 0 when empty. Rows are kept
        in id order, and ids only grow: the first is the oldest."""
        oldest = next(iter(self._held.values()), None)
        return 0.0 if oldest is None else max(0.0, time.time() - oldest.created_at)

    def held_tasks(self) -> set[str]:
        return set(self.per_task)

    def pause_reason(self) -> str | None:
        """Why the host must take no new task now, or None."""
        if self.disk_short:
            return "disk_full"
        if self.over_high_water():
            return "outbox_high_water"
        return None

    def over_high_water(self) -> bool:
        s = self._settings
        return self.items >= s.max_items * s.high_water or self.bytes >= s.max_bytes * s.high_water

    async def orphaned_tasks(self) -> list[tuple[str, str]]:
        """Tasks a previous daemon was running when it stopped: (task_id, remote_device_id)."""
        return await self._call(store.running)

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

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, self._db)

    async def _next_rows(self, limit: int) -> list[tuple[int, str, str]]:
        while True:
            rows = await self._call(
                partial(store.rows_after, after_id=self._sent_upto, limit=limit + len(self._acked))
            )
            fresh = [r for r in rows if r[0] not in self._acked]
            if fresh or not rows:
                return fresh[:limit]
            self._sent_upto = rows[-1][0]

    def _submit(self, op: _Op) -> None:
        """Group commit: ops gather while a batch commits on the thread, then go in one batch.

        A commit starts on the loop's next turn, not at once: callers woken by the previous
        commit run first and add their next ops, so N busy writers share N-row commits.
        """
        if self._closed:
            raise OutboxError("the host's outbox is closed: the daemon is stopping")
        if self.disk_short and not _essential(op):
            # What is left of the disk is kept for task ends and acknowledgements.
            raise OutboxError(
                f"the host's outbox cannot store the item: the disk of its state file is full "
                f"({self._reserve.free_bytes()} bytes free)"
            )
        self._pending.append(op)
        self._schedule()

    def _schedule(self) -> None:
        if self._committing is None and self._begin_soon is None:
            self._begin_soon = asyncio.get_running_loop().call_soon(self._begin)

    def _begin(self) -> None:
        self._begin_soon = None
        ops, self._pending = self._pending, []
        batch, inserted = self._plan(ops)
        done = asyncio.get_running_loop().run_in_executor(
            self._thread, partial(self._commit_on_thread, batch)
        )
        commit = _Commit(ops, batch, inserted, done)
        self._committing = commit
        done.add_done_callback(lambda _: self._committed(commit))

    def _committed(self, commit: _Commit) -> None:
        self._committing = None
        self._settle(commit)
        if self._pending:
            self._schedule()

    def _commit_on_thread(self, batch: store.Batch) -> None:
        try:
            store.commit(self._db, batch)
        except (sqlite3.Error, OSError) as exc:
            if not is_disk_full(exc, self._reserve):
                raise
            raise _DiskFull(exc, self._reserve.release()) from exc

    def _settle(self, commit: _Commit) -> None:
        """Apply a finished commit to the counts, and answer its callers."""
        exc = commit.done.exception()
        if isinstance(exc, _DiskFull):
            self._on_disk_full(commit.ops, exc)
            return
        if exc is not None:
            if isinstance(exc, sqlite3.Error | OSError):
                error: Exception = OutboxError(f"the host's outbox cannot store the item: {exc}")
                self._log.error("%s", error)
            else:
                error = OutboxError(f"the host's outbox failed: {exc!r}")
                self._log.error("%s", error, exc_info=exc)
            for op in commit.ops:
                if isinstance(op, _Put | _Started) and not op.future.done():
                    op.future.set_exception(error)
            # Acknowledged rows that could not be deleted go out again on the next session.
            self._acked.difference_update(op.row_id for op in commit.ops if isinstance(op, _Ack))
            return
        self._next_id += len(commit.batch.inserts)
        for row_id in commit.batch.deletes:
            self._drop(row_id)
        if not self.items:
            self._emptied.set()
        for row_id, row in commit.inserted:
            self._add(row_id, row)
        for op in commit.ops:
            if isinstance(op, _Ack):
                self._acked.discard(op.row_id)
            elif not op.future.done():
                op.future.set_result(None)
        if commit.inserted:
            self._wake.set()
        self._check_high_water()

    def _on_disk_full(self, ops: list[_Op], exc: _DiskFull) -> None:
        """No space for a commit: task ends and acknowledgements are kept, the rest refused."""
        self._log.error(
            "the state file's disk is full (%s)%s",
            exc,
            "; released the reserve for task ends and acknowledgements" if exc.released else "",
        )
        error = OutboxError(f"the host's outbox cannot store the item: {exc}")
        keep = exc.released or self._retry_ends  # a stopping daemon still uses the reserve
        kept: list[_Op] = []
        for op in ops:
            if _essential(op) and keep:
                kept.append(op)
            elif isinstance(op, _Ack):
                self._acked.discard(op.row_id)  # the row goes out again on the next session
            elif not op.future.done():
                op.future.set_exception(error)
        if exc.released:
            self._pending[:0] = kept  # at once, in the space the reserve held
        else:
            self._deferred += kept  # at the next disk check
        self._set_disk_short(True)

    async def _watch_disk(self) -> None:
        """Check free space every `disk_check_s`; retry what found no space; leave the mode."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._settings.disk_check_s)
            short = await loop.run_in_executor(self._thread, self._reserve.short, self.disk_short)
            if self._deferred:
                self._pending += self._deferred
                self._deferred = []
                self._schedule()
            self._set_disk_short(short)

    def _set_disk_short(self, short: bool) -> None:
        if short == self.disk_short:
            return
        self.disk_short = short
        if short:
            self._log.warning(
                "the state file's disk is short of space (%d bytes free, reserve %s): no new "
                "task is taken; task ends and acknowledgements are kept and retried",
                self._reserve.free_bytes(),
                "held" if self._reserve.held() else "released",
            )
        else:
            self._log.info("the state file's disk has room again: taking tasks again")
        if self.on_pressure_change is not None:
            self.on_pressure_change()

    def _plan(self, ops: list[_Op]) -> tuple[store.Batch, list[tuple[int, store.Held]]]:
        """The batch's statements, and the rows it adds; nothing changes until it commits."""
        batch = store.Batch()
        inserted: list[tuple[int, store.Held]] = []
        now = time.time()
        for op in ops:
            if isinstance(op, _Put):
                frame, row_id = op.frame, self._next_id + len(batch.inserts)
                row = store.Held(frame.task_id, len(op.raw), _is_progress(frame), now)
                batch.inserts.append(
                    (
                        row_id,
                        frame.key,
                        frame.task_id,
                        frame.type,
                        int(row.progress),
                        op.raw,
                        row.size,
                        now,
                    )
                )
                inserted.append((row_id, row))
                if op.ends_task:
                    batch.ended.append((frame.task_id,))
            elif isinstance(op, _Ack):
                batch.deletes.append(op.row_id)
                if not op.ack.ok:
                    self._log.error("item %s refused for good: %s", op.ack.key, op.ack.error)
                    batch.dead.append((op.ack.error or "refused", now, op.row_id))
            else:
                batch.started.append((op.task_id, op.remote_device_id, now))
        if self._over:
            # Near the limit a task's new progress update replaces the ones it has queued.
            updating = {row.task_id for _, row in inserted if row.progress}
            for task_id in updating:
                batch.deletes += self._queued_progress.get(task_id, ())
        return batch, inserted

    def _add(self, row_id: int, row: store.Held) -> None:
        self._held[row_id] = row
        self.items += 1
        self.bytes += row.size
        self.per_task[row.task_id] += 1
        if row.progress:
            self._queued_progress.setdefault(row.task_id, set()).add(row_id)

    def _drop(self, row_id: int) -> None:
        row = self._held.pop(row_id, None)
        if row is None:
            return  # already gone: an ack for a row that coalescing removed
        self.items -= 1
        self.bytes -= row.size
        self.per_task[row.task_id] -= 1
        if not self.per_task[row.task_id]:
            del self.per_task[row.task_id]
        if row.progress:
            queued = self._queued_progress[row.task_id]
            queued.discard(row_id)
            if not queued:
                del self._queued_progress[row.task_id]

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
