"""The outbox on a full disk: its state file on a small tmpfs the test fills with a big file.

Task ends and deletes of acknowledged items go on in the reserve's space; other items are
refused without using anything; an end that does not fit even there is retried until it does;
once the big file is deleted the outbox takes everything again, by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent import protocol as p
from agent.outbox import Outbox, OutboxError, OutboxSettings
from scripts.devstack import poll_until
from tests.smalldisk import fill, free_bytes, small_disk
from tests.test_outbox import progress, rows

log = logging.getLogger("test.outbox.diskfull")
RESERVE = 1024 * 1024
SETTINGS = OutboxSettings(disk_reserve_bytes=RESERVE, disk_check_s=0.1)


def finished(task_id: str) -> p.Finished:
    return p.Finished(
        key=f"{task_id}-end", task_id=task_id, state="success", finished_at=datetime.now(UTC)
    )


@pytest.fixture
def disk(tmp_path: Path) -> AsyncIterator[Path]:
    with small_disk(tmp_path / "disk", 16) as mounted:
        yield mounted


@pytest.fixture
async def outbox(disk: Path) -> AsyncIterator[Outbox]:
    box = await Outbox.open(disk / "state.db", SETTINGS, log)
    yield box
    await box.close()


async def test_a_full_disk_keeps_task_ends_and_acks_and_refuses_the_rest(
    outbox: Outbox, disk: Path
) -> None:
    changes: list[str | None] = []
    outbox.on_pressure_change = lambda: changes.append(outbox.pause_reason())
    assert (disk / "state.db.reserve").stat().st_size == RESERVE
    sent: list[str] = []

    async def send(raw: str) -> None:
        sent.append(raw)

    connected = asyncio.Event()
    connected.set()
    delivery = asyncio.create_task(outbox.deliver(send, connected))
    await outbox.task_started("t1", "dev-1")
    acks = [outbox.expect_ack(f"t1-{i}") for i in range(20)]
    for i in range(20):
        await outbox.put(progress("t1", i))
    await poll_until(lambda: len(sent) == 20, "the items sent")
    filler = fill(disk)
    # Proactively (free space under the reserve's size) or at its first failed commit.
    await poll_until(lambda: outbox.disk_short, "the outbox to see the disk short")
    with pytest.raises(OutboxError, match="disk"):
        await outbox.put(progress("t1", 20))
    with pytest.raises(OutboxError, match="disk"):
        await outbox.task_started("t2", "dev-2")
    await outbox.put(finished("t1"), ends_task=True)  # in the reserve's space
    assert not (disk / "state.db.reserve").exists()
    assert await outbox.orphaned_tasks() == []
    for i in range(20):
        outbox.on_ack(p.SubmitAck(key=f"t1-{i}", ok=True))
    await poll_until(lambda: outbox.items == 1, "acknowledged items deleted on the full disk")
    assert [a.result().ok for a in acks] == [True] * 20
    assert rows(disk / "state.db") == [("t1-end", "t1")]
    assert outbox.pause_reason() == "disk_full" and changes == ["disk_full"]

    filler.unlink()
    await poll_until(lambda: not outbox.disk_short, "the outbox to take items again")
    assert (disk / "state.db.reserve").stat().st_size == RESERVE
    assert changes == ["disk_full", None]
    await outbox.put(progress("t3", 0))
    await outbox.task_started("t3", "dev-1")
    delivery.cancel()


async def test_a_task_end_that_finds_no_space_waits_for_it(
    outbox: Outbox, disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fill(disk)
    with pytest.raises(OutboxError, match="disk"):
        # Bigger than anything free: it fails even before the disk check sees the disk short.
        await outbox.put(progress("t1", 0).model_copy(update={"data": {"x": "y" * 100_000}}))
    await poll_until(lambda: not (disk / "state.db.reserve").exists(), "the reserve released")
    second = fill(disk, "second")  # the reserve's space is taken too: nothing left at all
    assert free_bytes(disk) == 0
    caplog.clear()
    end = asyncio.ensure_future(outbox.put(finished("t1"), ends_task=True))
    await poll_until(
        lambda: end.done() or "disk is full" in caplog.text, "the end tried on the full disk"
    )
    second.unlink()
    await end  # stored, the moment there was room: never refused
    assert rows(disk / "state.db") == [("t1-end", "t1")]
