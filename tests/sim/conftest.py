"""Test harness for the simulated phone, through the real adb server.

Reusable by the Android driver tests (`from tests.sim.conftest import ...` or
`pytest_plugins = ["tests.sim.conftest"]`):
- `AdbServer`: a private adb server (own port, own HOME with its own keys), with time-bounded
  `run(...)`, `client()`, `devices()` and `wait_state(...)`.
- `SimHandle`: a `SimPhone` on its own event loop in a background thread, so blocking adbutils
  and uiautomator2 code can drive it; `do(fn)` runs `fn(phone)` on the phone's loop.
- `bounded(fn, ...)`: run a blocking call (e.g. uiautomator2) with a hard deadline.
- fixtures `adb_server` (session) and `sim_phone` (started, `adb connect`ed, state `device`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import adbutils  # type: ignore[import-untyped,unused-ignore]
import pytest
from adbutils._utils import adb_path  # type: ignore[import-untyped,unused-ignore]

from drivers.sim import SimPhone, SimPhoneError, free_port
from scripts.devstack import wait_until

T = TypeVar("T")

ADB_TIMEOUT = 15.0
STATE_TIMEOUT = 30.0
CALL_TIMEOUT = 60.0


def bounded(fn: Callable[..., T], *args: Any, timeout: float = CALL_TIMEOUT, **kwargs: Any) -> T:
    """Run a blocking call in a worker thread; TimeoutError if it takes longer than `timeout`."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(fn, *args, **kwargs).result(timeout=timeout)
    finally:
        pool.shutdown(wait=False)


def poll(condition: Callable[[], T], timeout: float = STATE_TIMEOUT, interval: float = 0.1) -> T:
    """Call `condition` until it returns something truthy; AssertionError at the deadline."""
    return wait_until(condition, "the condition", timeout, interval)


@dataclass
class AdbServer:
    port: int
    env: dict[str, str]
    adb: str

    def run(self, *args: str, timeout: float = ADB_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.adb, "-P", str(self.port), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def client(self, socket_timeout: float = 10.0) -> adbutils.AdbClient:
        return adbutils.AdbClient(host="127.0.0.1", port=self.port, socket_timeout=socket_timeout)

    def devices(self) -> dict[str, str]:
        """serial -> state, as `adb devices` lists them."""
        out = self.run("devices").stdout
        rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
        return {row[0]: row[1] for row in rows if len(row) >= 2}

    def wait_state(
        self, serial: str, *states: str | None, timeout: float = STATE_TIMEOUT
    ) -> str | None:
        """Poll `adb devices` until the serial is in one of `states` (None: not listed)."""
        reached: list[str | None] = []

        def in_state() -> bool:
            state = self.devices().get(serial)
            reached[:] = [state]
            return state in states

        wait_until(in_state, f"{serial} to be one of {states}", timeout, 0.1)
        return reached[0]

    def connect(self, serial: str) -> None:
        """`adb disconnect` (clearing a stale entry) then `adb connect`, until it is `device`."""
        self.run("disconnect", serial)
        result = self.run("connect", serial)
        assert "connected to" in result.stdout, result.stdout + result.stderr
        self.wait_state(serial, "device")


class SimHandle:
    """A SimPhone running on its own event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="sim-phone", daemon=True)
        self._thread.start()
        self.phone = SimPhone()

    @property
    def serial(self) -> str:
        return self.phone.serial

    def do(self, fn: Callable[[SimPhone], Any], timeout: float = CALL_TIMEOUT) -> Any:
        """Run fn(phone) on the phone's loop (awaiting it if it is a coroutine) and return it."""

        async def runner() -> Any:
            result = fn(self.phone)
            if inspect.isawaitable(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout)

    def start(self, port: int = 0) -> None:
        self.do(lambda phone: phone.start(port))

    def close(self) -> None:
        try:
            self.do(lambda phone: phone.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()


@pytest.fixture(scope="session")
def adb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdbServer]:
    home = tmp_path_factory.mktemp("adb-home")
    port = free_port()
    env = {**os.environ, "HOME": str(home), "ANDROID_ADB_SERVER_PORT": str(port)}
    server = AdbServer(port=port, env=env, adb=adb_path())
    # adbutils runs `adb start-server` (on the env's port) when it cannot reach the server:
    # point this process at our server too so a stray default server is never started.
    saved = {key: os.environ.get(key) for key in ("ANDROID_ADB_SERVER_PORT", "HOME")}
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(port)
    os.environ["HOME"] = str(home)
    result = server.run("start-server", timeout=30)
    assert result.returncode == 0, result.stderr
    try:
        yield server
    finally:
        server.run("kill-server", timeout=30)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def sim_phone(adb_server: AdbServer) -> Iterator[SimHandle]:
    handle = SimHandle()
    try:
        handle.start()
        adb_server.connect(handle.serial)
        yield handle
    finally:
        with contextlib.suppress(SimPhoneError):
            adb_server.run("disconnect", handle.serial)
        handle.close()
