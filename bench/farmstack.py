"""The coordinator side of the farm bench: credentials, the bench's own coordinator, HTTP reads.

Host tokens and the API key are made with the coordinator's own functions (those behind
`device-coordinator token create` and `apikey create`) in one transaction: a hundred CLI runs
would take a minute of interpreter starts.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import httpx

from agent.protocol import WS_PATH, TaskState
from coordinator.db import Database
from coordinator.db_location import postgresql_location, sqlite_location
from coordinator.store_hosts import digest, set_api_key, set_host_token
from scripts.devstack import Coordinator

API_KEY_NAME = "farm-bench"
TASK_BATCH = 1000
"""Tasks per `POST /api/jobs/{id}/tasks`: the most the API takes (coordinator/api/models.py)."""
NOOP_SCRIPT = "async def main(agent):\n    return {}\n"
"""The job's script; the fake hosts never run it."""


def host_ids(count: int) -> list[str]:
    return [f"farm-{i:03d}" for i in range(count)]


async def create_credentials(
    data_dir: Path, hosts: list[str], database: str | None = None
) -> tuple[dict[str, str], str]:
    """A new token for each host (replacing any older one) and a new API key, written to the
    coordinator's database (PostgreSQL URL `database`, else SQLite in `data_dir`); returns
    (host id -> token, API key)."""
    tokens = {host: secrets.token_urlsafe(32) for host in hosts}
    api_key = secrets.token_urlsafe(32)
    location = sqlite_location(data_dir) if database is None else postgresql_location(database)
    db = await Database.open(location)
    try:
        async with db.transaction() as conn:
            for host, token in tokens.items():
                await set_host_token(conn, host, digest(token))
            await set_api_key(conn, API_KEY_NAME, digest(api_key))
    finally:
        await db.close()
    return tokens, api_key


class OwnCoordinator:
    """A `device-coordinator serve` the bench starts (devstack's `Coordinator`), driven from the
    loop. Its blocking start and stop run in a thread that is never abandoned midway: a run cut
    short by its deadline waits for a start in progress before it stops, so no coordinator
    process outlives the bench."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        api_key: str,
        heartbeat_s: float = 10.0,
        grace_s: float = 30.0,
        database: str | None = None,
    ) -> None:
        # The defaults are `serve`'s own (production) ones.
        self.process = Coordinator(
            data_dir=data_dir,
            port=port,
            grace_s=grace_s,
            heartbeat_s=heartbeat_s,
            api_key=api_key,
            database=database,
        )
        self._in_thread: asyncio.Future[None] | None = None

    @property
    def base_url(self) -> str:
        return self.process.base_url

    @property
    def ws_url(self) -> str:
        return self.process.ws_url

    @property
    def pid(self) -> int | None:
        proc = self.process.proc
        return proc.popen.pid if proc is not None and proc.popen is not None else None

    def log_tail(self, lines: int) -> list[str]:
        proc = self.process.proc
        return proc.log().splitlines()[-lines:] if proc is not None else []

    async def _run(self, step: Callable[[], None]) -> None:
        await self._settled()
        self._in_thread = asyncio.ensure_future(asyncio.to_thread(step))
        await asyncio.shield(self._in_thread)

    async def _settled(self) -> None:
        """Wait for a start or stop that a cancelled caller left running in its thread."""
        if self._in_thread is not None:
            await asyncio.gather(self._in_thread, return_exceptions=True)

    async def start(self) -> None:
        """Start it; returns once /healthz answers."""
        await self._run(self.process.start)

    async def stop(self) -> None:
        """SIGTERM, wait for the exit (SIGKILL after 30 s)."""
        await self._settled()
        await asyncio.to_thread(self.process.stop)

    async def restart(self) -> tuple[float, float]:
        """Stop it and start it again on the same data dir and port; the seconds the stop and
        the start (until /healthz answers) took."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        await self._run(self.process.stop)
        stopped = loop.time()
        await self._run(self.process.start)
        return stopped - began, loop.time() - stopped


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid`, all its threads (/proc/PID/stat)."""
    fields = _stat_fields(pid)
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name, which is in parentheses and may hold spaces.
    return stat.rsplit(")", 1)[1].split()


def server_cpu_seconds(pid: int) -> float:
    """CPU time of a server that forks a process per connection (PostgreSQL's postmaster at
    `pid`): its own and its reaped children's (user, system, children's user and system), plus
    that of its children still alive, from /proc."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry.name))
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile: its parent has reaped it, or will
        if entry.name == str(pid) or fields[1] == str(pid):
            total += sum(int(f) for f in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def ws_url(base_url: str) -> str:
    """The host websocket of a coordinator at `base_url` (http -> ws, https -> wss)."""
    scheme, rest = base_url.rstrip("/").split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{WS_PATH}"


def api_client(base_url: str, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60
    )


async def free_devices(http: httpx.AsyncClient, hosts: set[str]) -> int:
    """How many devices of `hosts` the coordinator offers for work now (`free` in its API)."""
    response = await http.get("/api/devices")
    response.raise_for_status()
    devices: list[dict[str, Any]] = response.json()
    return sum(1 for d in devices if d["host_id"] in hosts and d["free"])


async def create_job(http: httpx.AsyncClient) -> str:
    # The bench's one job holds every task of the run: more than the default max_tasks.
    body = {"name": "farm bench", "script": NOOP_SCRIPT, "max_tasks": 1_000_000}
    response = await http.post("/api/jobs", json=body)
    response.raise_for_status()
    job_id: str = response.json()["id"]
    return job_id


async def add_tasks(http: httpx.AsyncClient, job_id: str, first: int, count: int) -> list[str]:
    """Create `count` tasks numbered from `first` in one request; their ids, in order."""
    body = {"tasks": [{"input": {"n": n}} for n in range(first, first + count)]}
    response = await http.post(f"/api/jobs/{job_id}/tasks", json=body)
    response.raise_for_status()
    return [task["id"] for task in response.json()["tasks"]]


async def state_counts(http: httpx.AsyncClient, job_id: str) -> dict[str, int]:
    """The job's tasks by state (states with none left out), from the API's totals."""
    counts = {}
    for state in get_args(TaskState):
        response = await http.get(
            "/api/tasks", params={"job_id": job_id, "state": state, "limit": 1, "with_total": True}
        )
        response.raise_for_status()
        total: int = response.json()["total"]
        if total:
            counts[state] = total
    return counts
