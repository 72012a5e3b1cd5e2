"""The outbox on a real SQLite file: durability, order, acknowledgements, limits, redelivery."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection

from agent import protocol as p
from agent.cli.outbox import read_outbox
from agent.outbox import Outbox, OutboxError, OutboxSettings
from scripts.devstack import poll_until
from tests.test_link import coordinator_at, make_link, next_frame, welcome

__all__ = ["coordinator_at"]
log = logging.getLogger("test.outbox")


def progress(task_id: str, seq: int) -> p.Submit:
    return p.Submit(
        key=f"{task_id}-{seq}",
        task_id=task_id,
        seq=seq,
        status="running",
        data={"n": seq},
        finish=False,
    )


def final(task_id: str, seq: int) -> p.Submit:
    return p.Submit(
        key=f"{task_id}-final", task_id=task_id, seq=seq, status="success", data={}, finish=True
    )


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    box = await Outbox.open(tmp_path / "state.db", OutboxSettings(), log)
    yield box
    await box.close()


def rows(path: Path, table: str = "outbox") -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return [(str(r[0]), str(r[1])) for r in db.execute(f"SELECT key, task_id FROM {table}")]


async def test_put_is_committed_before_it_returns(outbox: Outbox, tmp_path: Path) -> None:
    await asyncio.gather(*(outbox.put(progress("t1", i)) for i in range(50)))
    # Another connection (another process, after a crash) sees all of them.
    assert len(rows(tmp_path / "state.db")) == 50
    assert outbox.items == 50 and outbox.per_task["t1"] == 50


async def test_close_commits_what_callers_wait_for(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "state.db", OutboxSettings(), log)
    puts = [asyncio.create_task(box.put(progress("t1", i))) for i in range(10)]
    await asyncio.sleep(0)  # a yield, not a wait: the puts queue, their commit is not begun
    await box.close()
    await asyncio.gather(*puts)  # every caller was answered: committed
    assert len(rows(tmp_path / "state.db")) == 10
    with pytest.raises(OutboxError, match="outbox is closed"):
        await box.put(progress("t1", 10))


async def test_items_survive_a_reopen_and_running_tasks_are_remembered(tmp_path: Path) -> None:
    box = await Outbox.open(tmp_path / "state.db", OutboxSettings(), log)
    await box.task_started("t1", "dev-1")
    await box.put(final("t1", 0))
    await box.close()
    again = await Outbox.open(tmp_path / "state.db", OutboxSettings(), log)
    try:
        assert again.held_tasks() == {"t1"} and again.items == 1
        assert await again.orphaned_tasks() == [("t1", "dev-1")]
        finished = p.Finished(key="f1", task_id="t1", state="failed", finished_at=datetime.now(UTC))
        await again.put(finished, ends_task=True)
        assert await again.orphaned_tasks() == []
    finally:
        await again.close()


async def test_ack_deletes_and_refusal_moves_to_dead_letter(
    outbox: Outbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sent: list[str] = []

    async def send(raw: str) -> None:
        sent.append(raw)

    connected = asyncio.Event()
    connected.set()
    delivery = asyncio.create_task(outbox.deliver(send, connected))
    try:
        await outbox.put(progress("t1", 0))
        await outbox.put(final("t1", 1))
        await poll(lambda: len(sent) == 2)
        outbox.on_ack(p.SubmitAck(key="t1-0", ok=True))
        outbox.on_ack(p.SubmitAck(key="t1-final", ok=False, error="task already finished"))
        outbox.on_ack(p.SubmitAck(key="nobody", ok=True))
        await poll(lambda: outbox.items == 0)
    finally:
        delivery.cancel()
    assert [p.parse_host_frame(raw).key for raw in sent] == ["t1-0", "t1-final"]  # type: ignore[union-attr]
    assert rows(tmp_path / "state.db", "dead_letter") == [("t1-final", "t1")]
    assert "ignored an acknowledgement for unknown key nobody" in caplog.text
    report = read_outbox(tmp_path / "state.db")
    assert report["items"] == 0
    assert [(d["key"], d["error"]) for d in report["dead_letter"]] == [
        ("t1-final", "task already finished")
    ]


async def test_row_ids_only_grow_even_once_the_outbox_empties_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    sent: list[str] = []

    async def send(raw: str) -> None:
        sent.append(raw)

    connected = asyncio.Event()
    connected.set()
    box = await Outbox.open(path, OutboxSettings(), log)
    delivery = asyncio.create_task(box.deliver(send, connected))
    try:
        await box.put(progress("t1", 0))
        await box.put(progress("t1", 1))
        await poll(lambda: len(sent) == 2)
        with sqlite3.connect(path) as db:
            first_ids = [int(r[0]) for r in db.execute("SELECT id FROM outbox")]
        box.on_ack(p.SubmitAck(key="t1-0", ok=True))
        box.on_ack(p.SubmitAck(key="t1-1", ok=True))
        await poll(lambda: box.items == 0)
    finally:
        delivery.cancel()
        await box.close()
    again = await Outbox.open(path, OutboxSettings(), log)
    try:
        assert again.items == 0
        await again.put(progress("t1", 2))
    finally:
        await again.close()
    with sqlite3.connect(path) as db:
        [(later,)] = list(db.execute("SELECT id FROM outbox"))
    assert len(first_ids) == 2 and later > max(first_ids)


async def test_over_high_water_progress_coalesces_and_finals_stay(tmp_path: Path) -> None:
    settings = OutboxSettings(max_items=10, high_water=0.5)
    box = await Outbox.open(tmp_path / "state.db", settings, log)
    changes: list[bool] = []
    box.on_pressure_change = lambda: changes.append(box.over_high_water())
    try:
        for i in range(5):
            await box.put(progress("t1", i))
        assert box.over_high_water() and changes == [True]
        for i in range(5, 30):
            await box.put(progress("t1", i))
        await box.put(final("t1", 30))
        for i in range(40):
            await box.put(final(f"other-{i}", 0))
        keys = [k for k, t in rows(tmp_path / "state.db") if t == "t1"]
        # Progress never piles up past the mark: older updates gave way to newer ones.
        assert keys[-2:] == ["t1-29", "t1-final"] and len(keys) <= 6
        assert [int(k.split("-")[1]) for k in keys[:-1]] == sorted(
            int(k.split("-")[1]) for k in keys[:-1]
        )
        assert sum(1 for k, t in rows(tmp_path / "state.db") if t.startswith("other-")) == 40
    finally:
        await box.close()


async def test_unacknowledged_items_are_resent_in_order_after_a_reconnect(
    coordinator_at: Callable[[Callable[[ServerConnection], Awaitable[None]]], Awaitable[str]],
    tmp_path: Path,
) -> None:
    sessions: list[list[str]] = []

    async def coordinator(ws: ServerConnection) -> None:
        await welcome(ws)
        keys: list[str] = []
        sessions.append(keys)
        for _ in range(3):
            frame = await next_frame(ws)
            assert isinstance(frame, p.Submit)
            keys.append(frame.key)
        if len(sessions) == 1:
            return  # drops the link before acknowledging anything
        for key in keys:
            await ws.send(p.encode(p.SubmitAck(key=key, ok=True)))
        await ws.wait_closed()

    box = await Outbox.open(tmp_path / "state.db", OutboxSettings(), log)

    async def on_session() -> None:
        box.restart_delivery()

    link = make_link(await coordinator_at(coordinator), asyncio.Queue(), box.on_ack, on_session)
    running = [
        asyncio.create_task(link.run()),
        asyncio.create_task(box.deliver(link.send_text, link.connected)),
    ]
    try:
        for i in range(3):
            await box.put(progress("t1", i))
        await poll(lambda: box.items == 0)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await box.close()
    assert sessions == [["t1-0", "t1-1", "t1-2"]] * 2


async def poll(condition: Callable[[], bool]) -> None:
    await poll_until(condition, "the outbox to get there")
