"""Outbox throughput: durable submits/s, and the flush of 10,000 queued items after a reconnect.

1. Durable submits/s: 1, 10 and 50 concurrent writers (as concurrent scripts are) each commit
   submissions through `Outbox.put` (committed before it returns), without and with a 200 KB
   file. Beside them, in the same run and on the same disk, the raw rate of batched SQLite
   inserts of the same rows into the same table with the same journal and synchronous
   settings: as many rows a transaction as there are writers (the bound for group commit: N
   writers that each wait for their commit never have more than N rows to share one), and
   1,000 rows a transaction (the ceiling no durable call can reach).
2. Flush: a script queues 10,000 progress updates while its coordinator is down (killed -9);
   the coordinator comes back and the time until the daemon's outbox is empty is measured.

    .venv/bin/python -m bench.outbox
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from agent import outbox_store as store
from agent import protocol as p
from agent.cli.outbox import read_outbox
from agent.outbox import Outbox, OutboxSettings
from scripts.devstack import (
    Coordinator,
    Daemon,
    add_tasks,
    create_job,
    free_port,
    wait_devices,
    wait_until,
)

FILE_200KB = base64.b64encode(bytes(range(256)) * 800).decode()
log = logging.getLogger("bench")


def frame(writer: int, n: int, with_file: bool) -> p.Submit:
    files = [p.FileBlob(name="shot", extension="jpg", data_b64=FILE_200KB)] if with_file else []
    return p.Submit(
        key=f"{writer}-{n}",
        task_id=f"task-{writer}",
        seq=n,
        status="success" if with_file else "running",
        data={"n": n},
        finish=with_file,
        files=files,
    )


PER_WRITER = {False: {1: 6000, 10: 4000, 50: 2000}, True: {1: 600, 10: 100, 50: 40}}
"""Submissions each writer makes: about two seconds of work at the rates measured."""


async def durable_rate(path: Path, writers: int, with_file: bool) -> float:
    """Submissions per second through `Outbox.put`, each committed before it returns.

    The frames are built (validated, as the daemon receives them from a script) before the
    clock starts, as the raw side's rows are; encoding, committing and answering are timed.
    """
    count = PER_WRITER[with_file][writers]
    frames = [[frame(w, n, with_file) for n in range(count)] for w in range(writers)]
    box = await Outbox.open(path, OutboxSettings(max_items=10**9, max_bytes=10**12), log)

    async def writer(mine: list[p.Submit]) -> None:
        for item in mine:
            await box.put(item)

    start = time.perf_counter()
    await asyncio.gather(*(writer(mine) for mine in frames))
    elapsed = time.perf_counter() - start
    await box.close()
    return writers * count / elapsed


def raw_rate(path: Path, with_file: bool, batch: int, rows: int = 20_000) -> float:
    """Raw SQLite: the rows the outbox writes, in its table, built before the clock starts."""
    payload = p.encode(frame(0, 0, with_file))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(store.SCHEMA)
    rows = min(rows, batch * 200)
    now = time.time()
    table = [
        (i, f"{i % batch}-{i}", f"task-{i % batch}", "submit", 1, payload, len(payload), now)
        for i in range(1, rows + 1)
    ]
    start = time.perf_counter()
    for first in range(0, rows, batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO outbox (id, key, task_id, kind, progress, frame, bytes, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            table[first : first + batch],
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return rows / elapsed


QUEUER = """
async def main(agent):
    for i in range(10000):
        await agent.utils.job.submit_task("running", {"i": i}, False)
    await agent.utils.job.submit_task("success", {"queued": 10000}, True)
"""


def flush_time(workdir: Path) -> tuple[float, float, int]:
    """Seconds from the reconnect to an empty outbox; seconds from the restart to the reconnect."""
    (workdir / "coordinator").mkdir(parents=True)
    (workdir / "daemon").mkdir()
    coordinator = Coordinator(data_dir=workdir / "coordinator", port=free_port(), grace_s=600)
    daemon = Daemon(dir=workdir / "daemon", coordinator=coordinator)
    coordinator.start()
    try:
        daemon.start()
        with coordinator.http() as http:
            wait_devices(http, "host-1", 1)
            job = create_job(http, QUEUER, timeout_s=600)
            (task,) = add_tasks(http, job["id"], {"input": {}})
            wait_until(lambda: http.get(f"/api/tasks/{task['id']}").json()["progress"], "start")
        assert coordinator.proc is not None
        coordinator.proc.kill()
        state = daemon.dir / "state.db"
        wait_until(
            lambda: (
                read_outbox(state)["items"] >= 9_000
                and any("finished" in t["kinds"] for t in read_outbox(state)["tasks"])
            ),
            "the script to queue its items and end",
            300,
        )
        queued = int(read_outbox(state)["items"])
        coordinator.start()
        back = time.perf_counter()
        wait_until(
            lambda: (
                coordinator.proc is not None
                and coordinator.proc.log().count("host host-1 connected") == 2
            ),
            "the reconnect",
            60,
            0.01,
        )
        start = time.perf_counter()
        wait_until(lambda: read_outbox(state)["items"] == 0, "the outbox to drain", 300, 0.02)
        return time.perf_counter() - start, start - back, queued
    finally:
        daemon.stop()
        coordinator.stop()


async def paired(root: Path, writers: int, with_file: bool, runs: int = 3) -> tuple[float, float]:
    """Median durable rate and median raw rate at `writers` rows a transaction, interleaved
    so that a noisy neighbour slows both sides alike."""
    durable, raw = [], []
    for run in range(runs):
        durable.append(
            await durable_rate(root / f"box-{writers}-{with_file}-{run}.db", writers, with_file)
        )
        raw.append(raw_rate(root / f"raw-{writers}-{with_file}-{run}.db", with_file, writers))
    return statistics.median(durable), statistics.median(raw)


async def main() -> None:
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        root = Path(tmp)
        for with_file in (False, True):
            label = "200 KB file" if with_file else "no file"
            ceiling = statistics.median(
                raw_rate(root / f"raw-{with_file}-{run}.db", with_file, 1000) for run in range(3)
            )
            print(f"raw SQLite inserts, 1000 a transaction ({label}): {ceiling:,.0f} rows/s")
            for writers in (1, 10, 50):
                rate, same = await paired(root, writers, with_file)
                print(
                    f"durable submits/s, {writers:>2} concurrent ({label}): {rate:,.0f}/s; "
                    f"raw at {writers} a transaction {same:,.0f}/s: ratio {rate / same:.0%}; "
                    f"of raw at 1000 a transaction: {rate / ceiling:.0%} "
                    f"(bound for any durable call: {same / ceiling:.0%})"
                )
        seconds, reconnect, queued = flush_time(root / "flush")
        print(
            f"flush of {queued:,} queued items after reconnect: {seconds:.2f} s "
            f"(the reconnect itself, after the coordinator was back: {reconnect:.2f} s)"
        )


if __name__ == "__main__":
    asyncio.run(main())
