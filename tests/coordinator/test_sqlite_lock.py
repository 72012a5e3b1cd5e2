"""SQLite runs on the coordinator's event loop: another process's write lock must not stall it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from coordinator.db_location import DB_FILE_NAME
from coordinator.sqlite_conn import SqliteOnLoop
from tests.coordinator.conftest import Farm, running_coordinator

SCRIPT = "async def main(agent):\n    return {'ok': True}\n"


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    """A coordinator on SQLite whatever database the suite runs on: this is about SQLite's lock."""
    with running_coordinator(tmp_path / "coordinator") as coordinator:
        yield Farm(coordinator, coordinator.create_api_key("tests"))


async def test_a_write_waits_for_another_process_lock_while_the_loop_serves(farm: Farm) -> None:
    holder = sqlite3.connect(farm.coordinator.data_dir / DB_FILE_NAME, isolation_level=None)
    try:
        async with farm.client() as api:
            holder.execute("BEGIN IMMEDIATE")
            create = asyncio.create_task(
                api.post("/api/jobs", json={"name": farm.unique("locked"), "script": SCRIPT})
            )
            await farm.poll_log("the database is locked by another process")
            # While the job's transaction waits for the lock, the loop answers other requests.
            async with httpx.AsyncClient(base_url=farm.coordinator.base_url, timeout=30) as anon:
                for _ in range(5):
                    assert (await anon.get("/healthz")).json() == {"ok": True}
            assert not create.done(), "the write must wait for the other process's lock"
            holder.execute("COMMIT")
            response = await asyncio.wait_for(create, timeout=30)
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
        async with farm.client() as api:
            assert (await api.get(f"/api/jobs/{job_id}")).status_code == 200
    finally:
        holder.close()


async def test_opening_waits_while_another_process_holds_the_file(tmp_path: Path) -> None:
    """What a command's last close (a checkpoint, then the WAL removed) or another's first open
    (the WAL recovered) does for a moment: the file held to itself. Opening waits, then works."""
    path = tmp_path / DB_FILE_NAME
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("INSERT INTO t VALUES (0)")  # from here no other connection may read the file
    release = threading.Timer(1.0, holder.close)
    release.start()
    try:
        db = SqliteOnLoop(path)
        try:
            async with db.transaction() as conn:
                await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        finally:
            await db.close()
    finally:
        release.join(timeout=30)
    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT x FROM t").fetchall() == [(0,), (1,)]
    finally:
        check.close()
