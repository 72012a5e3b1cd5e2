"""SQLite runs on the coordinator's event loop: another process's write lock must not stall it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coordinator.db_location import DB_FILE_NAME
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
