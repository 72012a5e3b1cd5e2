"""Helpers to run a real coordinator subprocess and talk to it as an API user and as a host.

Nothing here is specific to one test module, so it can move to tests/conftest.py as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from agent.protocol import (
    AUTH_HEADER,
    PROTOCOL_VERSION,
    WS_PATH,
    CoordinatorFrame,
    Credits,
    DeviceInfo,
    Frame,
    Heartbeat,
    Hello,
    Welcome,
    encode,
    parse_coordinator_frame,
)
from coordinator import migrate
from coordinator.db_location import DATABASE_ENV
from scripts.devstack import create_secret, poll_until, wait_until
from tests.pg import dump, fresh_database

T = TypeVar("T")
DEADLINE_S = 30.0
START_DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_cli(
    *args: str, timeout_s: float = 60.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `device-coordinator ARGS` (as `python -m coordinator.cli.main`) and capture it, in
    `cli_environment(env)`."""
    return subprocess.run(
        [sys.executable, "-m", "coordinator.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env=cli_environment(env),
    )


def cli_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """Ours with `env`, but without DEVICE_COORDINATOR_DATABASE unless `env` sets it: tests
    name their coordinators' databases."""
    inherited = {k: v for k, v in os.environ.items() if k != DATABASE_ENV}
    return {**inherited, **(env or {})}


@dataclass
class Coordinator:
    """A running `device-coordinator serve` subprocess."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    port: int
    log_path: Path
    database: str | None
    """Its PostgreSQL URL; None: SQLite in `data_dir`."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{WS_PATH}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def database_args(self) -> list[str]:
        """The CLI's arguments naming this coordinator's database."""
        database = [] if self.database is None else ["--database", self.database]
        return ["--data-dir", str(self.data_dir), *database]

    def stored_bytes(self) -> bytes:
        """All the database holds: SQLite's file and WAL, or a dump of the PostgreSQL one."""
        if self.database is not None:
            return dump(self.database)
        path = self.data_dir / "coordinator.db"
        wal = path.with_name(path.name + "-wal")
        return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")

    def create_token(self, host_id: str) -> str:
        """As `device-coordinator token create` does (scripts/devstack.py's create_secret)."""
        return create_secret(self.data_dir, self.database, "token", host_id)

    def create_api_key(self, name: str) -> str:
        """As `device-coordinator apikey create` does."""
        return create_secret(self.data_dir, self.database, "apikey", name)


def start_coordinator(data_dir: Path, *extra: str, database: str | None = None) -> Coordinator:
    """Start `serve` on a free port (on PostgreSQL database `database`, if given) and return
    once /healthz answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = data_dir / "coordinator.log"
    database_args = [] if database is None else ["--database", database]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "coordinator.cli.main",
                "serve",
                "--data-dir",
                str(data_dir),
                *database_args,
                "--port",
                str(port),
                *extra,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=cli_environment(),
        )
    coordinator = Coordinator(process, data_dir, port, log_path, database)

    def healthy(client: httpx.Client) -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"coordinator exited at start:\n{coordinator.log_text()}")
        with contextlib.suppress(httpx.HTTPError):
            return client.get(f"{coordinator.base_url}/healthz").status_code == 200
        return False

    # One client for the whole wait: each new one loads the CA bundle (tens of ms of CPU),
    # which at one poll every 50 ms would take the CPU the coordinator needs to start.
    try:
        with httpx.Client(timeout=2) as client:
            wait_until(lambda: healthy(client), "the coordinator's /healthz", START_DEADLINE_S)
    except AssertionError:
        stop_coordinator(coordinator)
        raise
    return coordinator


def stop_coordinator(coordinator: Coordinator) -> int:
    """SIGTERM, then wait; returns the exit code."""
    if coordinator.process.poll() is None:
        coordinator.process.terminate()
        try:
            coordinator.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            coordinator.process.kill()
            coordinator.process.wait(timeout=30)
    return coordinator.process.returncode


@contextlib.contextmanager
def running_coordinator(
    data_dir: Path, *extra: str, database: str | None = None
) -> Iterator[Coordinator]:
    coordinator = start_coordinator(data_dir, *extra, database=database)
    try:
        yield coordinator
    finally:
        stop_coordinator(coordinator)


async def poll(
    check: Callable[[], Awaitable[T | None]], what: str, deadline_s: float = DEADLINE_S
) -> T:
    """Await `check` until it returns something other than None (or False); fail at the deadline."""
    value: T = await poll_until(check, what, deadline_s)
    return value


async def poll_log(coordinator: Coordinator, text: str) -> None:
    async def found() -> bool:
        return text in coordinator.log_text()

    await poll(found, f"log line containing {text!r}")


def api_client(coordinator: Coordinator, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=coordinator.base_url,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30,
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def device(remote_device_id: str, kind: str = "sim", state: str = "available") -> DeviceInfo:
    return DeviceInfo.model_validate(
        {"remote_device_id": remote_device_id, "kind": kind, "state": state, "properties": {}}
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class FakeHost:
    """The host side of one websocket, speaking agent.protocol frames."""

    ws: ClientConnection
    welcome: Welcome | None = None
    seen: list[CoordinatorFrame] = field(default_factory=list)

    async def send(self, frame: Frame) -> None:
        await self.ws.send(encode(frame))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def next(self, frame_type: type[T], deadline_s: float = DEADLINE_S) -> T:
        """The next frame of `frame_type`, skipping heartbeats (other frames fail the test)."""
        async with asyncio.timeout(deadline_s):
            while True:
                frame = parse_coordinator_frame(await self.ws.recv())
                self.seen.append(frame)
                if isinstance(frame, Heartbeat) and frame_type is not Heartbeat:
                    continue
                assert isinstance(frame, frame_type), f"expected {frame_type.__name__}: {frame}"
                return frame

    async def hello(
        self,
        host_id: str,
        devices: list[DeviceInfo],
        running_tasks: list[str] | None = None,
    ) -> Welcome:
        await self.send(
            Hello(
                protocol_version=PROTOCOL_VERSION,
                host_id=host_id,
                agent_version="test",
                devices=devices,
                running_tasks=running_tasks or [],
            )
        )
        self.welcome = await self.next(Welcome)
        return self.welcome

    async def credits(self, *free: str) -> None:
        await self.send(Credits(free=list(free)))


@contextlib.asynccontextmanager
async def host_connection(coordinator: Coordinator, token: str) -> AsyncIterator[FakeHost]:
    """An open websocket to the coordinator (no hello sent yet)."""
    async with connect(
        coordinator.ws_url,
        additional_headers={AUTH_HEADER: f"Bearer {token}"},
        open_timeout=30,
        close_timeout=5,
        max_size=None,
    ) as ws:
        yield FakeHost(ws)


@contextlib.asynccontextmanager
async def welcomed_host(
    coordinator: Coordinator,
    token: str,
    host_id: str,
    devices: list[DeviceInfo],
    running_tasks: list[str] | None = None,
) -> AsyncIterator[FakeHost]:
    """A host that has said hello and been welcomed."""
    async with host_connection(coordinator, token) as host:
        await host.hello(host_id, devices, running_tasks)
        yield host


@dataclass
class Farm:
    """A coordinator plus an API key, and every helper a test needs (tests import nothing)."""

    coordinator: Coordinator
    api_key: str

    device = staticmethod(device)
    unique = staticmethod(unique)
    poll = staticmethod(poll)
    run_cli = staticmethod(run_cli)

    def client(self) -> httpx.AsyncClient:
        return api_client(self.coordinator, self.api_key)

    def token(self, host_id: str) -> str:
        return self.coordinator.create_token(host_id)

    def connect(self, token: str) -> contextlib.AbstractAsyncContextManager[FakeHost]:
        return host_connection(self.coordinator, token)

    def host(
        self,
        token: str,
        host_id: str,
        devices: list[DeviceInfo],
        running_tasks: list[str] | None = None,
    ) -> contextlib.AbstractAsyncContextManager[FakeHost]:
        return welcomed_host(self.coordinator, token, host_id, devices, running_tasks)

    async def poll_log(self, text: str) -> None:
        await poll_log(self.coordinator, text)

    def _failed(self, response: httpx.Response) -> str:
        """The answer, and for a server error the end of the coordinator's log (its traceback)."""
        if response.status_code < 500:
            return response.text
        tail = self.coordinator.log_text()[-4000:]
        return f"{response.text}\ncoordinator log, last lines:\n{tail}"

    async def make_job(self, client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
        body = {"name": "job", "script": "async def main(agent):\n    return {}\n", **fields}
        response = await client.post("/api/jobs", json=body)
        assert response.status_code == 201, self._failed(response)
        job: dict[str, Any] = response.json()
        return job

    async def make_tasks(
        self, client: httpx.AsyncClient, job_id: str, *tasks: dict[str, Any]
    ) -> list[dict[str, Any]]:
        response = await client.post(f"/api/jobs/{job_id}/tasks", json={"tasks": list(tasks)})
        assert response.status_code == 201, self._failed(response)
        created: list[dict[str, Any]] = response.json()["tasks"]
        return created

    async def task(self, client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
        response = await client.get(f"/api/tasks/{task_id}")
        assert response.status_code == 200, response.text
        task: dict[str, Any] = response.json()
        return task

    async def wait_state(
        self, client: httpx.AsyncClient, task_id: str, state: str
    ) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            task = await self.task(client, task_id)
            return task if task["state"] == state else None

        return await poll(reached, f"task {task_id} to become {state}")


@pytest.fixture
def add_failing_migration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], str]:
    """Call it to make the coordinator's migrations (in this process) end with a revision of
    the test's own that adds a column, fills it, then fails; it returns that revision's id."""

    def add() -> str:
        migrations = tmp_path / "migrations"
        shutil.copytree(
            migrate.MIGRATIONS_DIR, migrations, ignore=shutil.ignore_patterns("__pycache__")
        )
        (migrations / "versions" / "r9000_fails.py").write_text(
            "import sqlalchemy as sa\n"
            "from alembic import op\n\n"
            f"revision = '9000'\ndown_revision = '{migrate.head()}'\n\n\n"
            "def upgrade():\n"
            "    op.add_column('jobs', sa.Column('half', sa.Text))\n"
            "    op.execute(\"UPDATE jobs SET half = 'done'\")\n"
            "    raise RuntimeError('interrupted half-way')\n"
        )
        monkeypatch.setattr(migrate, "MIGRATIONS_DIR", migrations)
        return "9000"

    return add


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    """One coordinator per test module (grace 1 s so timeout tests stay short)."""
    with running_coordinator(
        tmp_path_factory.mktemp("coordinator"), "--grace-s", "1", database=fresh_database()
    ) as coord:
        yield Farm(coord, coord.create_api_key("tests"))


@pytest.fixture
def start_farm(tmp_path: Path) -> Iterator[Callable[..., Farm]]:
    """Start a coordinator of this test's own with extra `serve` arguments; stopped after it."""
    started: list[Coordinator] = []

    def start(*extra: str) -> Farm:
        coord = start_coordinator(
            tmp_path / f"coordinator{len(started)}", *extra, database=fresh_database()
        )
        started.append(coord)
        return Farm(coord, coord.create_api_key("tests"))

    yield start
    for coord in started:
        stop_coordinator(coord)
