"""The coordinator side of the farm bench: credentials, the bench's own coordinator, HTTP reads.

Host tokens and the API key are made with the coordinator's own functions (those behind
`device-coordinator token create` and `apikey create`) in one transaction: a hundred CLI runs
would take a minute of interpreter starts.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any, get_args

import httpx

from agent.protocol import WS_PATH, TaskState
from coordinator.db import Database
from coordinator.store_hosts import digest, set_api_key, set_host_token
from scripts.devstack import Coordinator

API_KEY_NAME = "farm-bench"
TASK_BATCH = 1000
"""Tasks per `POST /api/jobs/{id}/tasks`: the most the API takes (coordinator/api/models.py)."""
NOOP_SCRIPT = "async def main(agent):\n    return {}\n"
"""The job's script; the fake hosts never run it."""


def host_ids(count: int) -> list[str]:
    return [f"farm-{i:03d}" for i in range(count)]


async def create_credentials(data_dir: Path, hosts: list[str]) -> tuple[dict[str, str], str]:
    """A new token for each host (replacing any older one) and a new API key, written to the
    coordinator's database in `data_dir`; returns (host id -> token, API key)."""
    tokens = {host: secrets.token_urlsafe(32) for host in hosts}
    api_key = secrets.token_urlsafe(32)
    db = await Database.open(data_dir)
    try:
        async with db.transaction() as conn:
            for host, token in tokens.items():
                await set_host_token(conn, host, digest(token))
            await set_api_key(conn, API_KEY_NAME, digest(api_key))
    finally:
        await db.close()
    return tokens, api_key


def own_coordinator(data_dir: Path, port: int, api_key: str) -> Coordinator:
    """`device-coordinator serve` on `data_dir` with the production defaults for heartbeats
    (10 s) and grace (30 s); started and stopped with `start` and `stop` (both blocking)."""
    return Coordinator(
        data_dir=data_dir, port=port, grace_s=30.0, heartbeat_s=10.0, api_key=api_key
    )


async def restart(coordinator: Coordinator) -> tuple[float, float]:
    """SIGTERM the coordinator, start it again on the same data dir and port; the seconds the
    stop and the start (until /healthz answers) took. The loop keeps serving the hosts."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.to_thread(coordinator.stop)
    stopped = loop.time()
    await asyncio.to_thread(coordinator.start)
    return stopped - began, loop.time() - stopped


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid`, all its threads (/proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


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
    response = await http.post("/api/jobs", json={"name": "farm bench", "script": NOOP_SCRIPT})
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
            "/api/tasks", params={"job_id": job_id, "state": state, "limit": 1}
        )
        response.raise_for_status()
        total: int = response.json()["total"]
        if total:
            counts[state] = total
    return counts
