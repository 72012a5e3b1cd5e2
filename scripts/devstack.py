"""Start a real coordinator and daemon on 127.0.0.1 with temp dirs: for the demo, benches and tests.

Nothing here sleeps to wait: `wait_until` polls a condition against a generous deadline.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from agent.protocol import TERMINAL_STATES
from coordinator.cli.common import store_secret
from coordinator.db_location import postgresql_location, sqlite_location
from coordinator.store_hosts import digest, set_api_key, set_host_token

T = TypeVar("T")
DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], T | None], what: str, deadline_s: float = DEADLINE_S, every_s: float = 0.05
) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s:g} s waiting for {what}")
        time.sleep(every_s)


async def poll_until(
    check: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S, every_s: float = 0.05
) -> Any:
    """`wait_until` for async code: `check` may return a value or an awaitable of one."""
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value is not None and value is not False:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s:g} s waiting for {what}")
        await asyncio.sleep(every_s)


def _cli(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


@dataclass
class Proc:
    """A child process whose combined output goes to a log file the test can read."""

    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, text: str, deadline_s: float = DEADLINE_S) -> None:
        wait_until(lambda: text in self.log(), f"log line {text!r} in {self.log_path}", deadline_s)

    def stop(self, sig: int = signal.SIGTERM, deadline_s: float = 30) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(deadline_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        return self.popen.returncode

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)


@dataclass(frozen=True)
class Tls:
    """PEM files for a coordinator served over TLS, and the CA that verifies it."""

    cert: Path
    key: Path
    ca: Path


@dataclass
class Coordinator:
    data_dir: Path
    port: int
    grace_s: float = 2.0
    heartbeat_s: float = 1.0
    tls: Tls | None = None
    database: str | None = None
    """A PostgreSQL URL (`serve --database`); None: SQLite in `data_dir`."""
    proc: Proc | None = None
    api_key: str = ""

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/ws/host"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What an HTTP client verifies the coordinator with (`verify=` of httpx)."""
        return ssl.create_default_context(cafile=self.tls.ca) if self.tls else True

    @property
    def database_args(self) -> list[str]:
        database = [] if self.database is None else ["--database", self.database]
        return ["--data-dir", str(self.data_dir), *database]

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            _cli("coordinator.cli.main", *args, *self.database_args),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout.strip()

    def start(self) -> None:
        if not self.api_key:
            self.api_key = create_secret(self.data_dir, self.database, "apikey", "tests")
        self.proc = Proc(
            _cli(
                "coordinator.cli.main",
                "serve",
                *self.database_args,
                "--port",
                str(self.port),
                "--grace-s",
                str(self.grace_s),
                "--heartbeat-s",
                str(self.heartbeat_s),
                *(
                    ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
                    if self.tls
                    else []
                ),
            ),
            self.data_dir / "coordinator.log",
        )
        self.proc.start()
        # One client for the whole wait: each new one loads the CA bundle (tens of ms of CPU),
        # which at one poll every 50 ms would take the CPU the coordinator needs to start.
        with httpx.Client(timeout=2, verify=self.verify) as client:
            wait_until(lambda: self._healthy(client), "the coordinator's /healthz")

    def _healthy(self, client: httpx.Client) -> bool:
        assert self.proc is not None and self.proc.popen is not None
        if self.proc.popen.poll() is not None:
            raise AssertionError(f"coordinator exited:\n{self.proc.log()}")
        try:
            return client.get(f"{self.base_url}/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=30,
            verify=self.verify,
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


@dataclass
class Daemon:
    dir: Path
    coordinator: Coordinator
    host_id: str = "host-1"
    browsers: list[dict[str, Any]] = field(default_factory=lambda: [{"name": "browser-1"}])
    token: str = ""
    extra: str = ""
    env: dict[str, str] = field(default_factory=dict)
    """Environment overrides (DEVICE_AGENT__SECTION__KEY) for the daemon process."""
    ca_file: Path | None = None
    """`coordinator.ca_file`: the CA that verifies a coordinator served over TLS."""
    argv_prefix: list[str] = field(default_factory=list)
    """A command the daemon runs under (e.g. setpriv to drop its capabilities)."""
    urls: list[str] = field(default_factory=list)
    """`coordinator.url` as a list (replicas); empty: the coordinator's one URL."""
    proc: Proc | None = None

    @property
    def config_path(self) -> Path:
        return self.dir / "agent.toml"

    def write_config(self) -> None:
        if not self.token:
            c = self.coordinator
            self.token = create_secret(c.data_dir, c.database, "token", self.host_id)
        (self.dir / "token").write_text(self.token)
        (self.dir / "token").chmod(0o600)  # the daemon refuses a token file others can read
        lines = [
            "[agent]",
            f'host_id = "{self.host_id}"',
            f'state_file = "{self.dir / "state.db"}"',
            'log_level = "debug"',
            "[coordinator]",
            f"url = {json.dumps(self.urls or self.coordinator.ws_url)}",
            f'token_file = "{self.dir / "token"}"',
            "backoff_initial_s = 0.2",
            "backoff_max_s = 2.0",
            "request_timeout_s = 20.0",
            f'ca_file = "{self.ca_file}"' if self.ca_file else "",
            "[scripts]",
            "kill_grace_s = 1.0",
            f'work_root = "{self.dir / "work"}"',
            self.extra,
        ]
        for browser in self.browsers:
            lines.append("[[devices.browser]]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in browser.items()]
        (self.dir / "work").mkdir(exist_ok=True)
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        self.write_config()
        self.proc = Proc(
            [*self.argv_prefix, *_cli("agent.cli.main", "run", "--config", str(self.config_path))],
            self.dir / "agent.log",
            env=self.env,
        )
        self.proc.start()

    def log(self) -> str:
        return self.proc.log() if self.proc else ""

    def stop(self) -> int | None:
        return self.proc.stop() if self.proc is not None else None


def script_run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`device-agent script run ARGS...` in `cwd` (with `env` over this environment), bounded;
    its output captured as text."""
    return subprocess.run(
        [*_cli("agent.cli.main", "script", "run"), *args],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=False,
    )


# ---- the coordinator's HTTP API ----


def create_job(http: httpx.Client, script: str, **fields: Any) -> dict[str, Any]:
    r = http.post("/api/jobs", json={"name": "test job", "script": script, **fields})
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()
    return job


def add_tasks(http: httpx.Client, job_id: str, *tasks: dict[str, Any]) -> list[dict[str, Any]]:
    r = http.post(f"/api/jobs/{job_id}/tasks", json={"tasks": list(tasks)})
    assert r.status_code == 201, r.text
    created: list[dict[str, Any]] = r.json()["tasks"]
    return created


def wait_terminal(http: httpx.Client, task_id: str, deadline_s: float = 90) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        task: dict[str, Any] = http.get(f"/api/tasks/{task_id}").json()
        return task if task["state"] in TERMINAL_STATES else None

    return wait_until(check, f"task {task_id} to end", deadline_s, every_s=0.1)


def devices_of(http: httpx.Client, host_id: str) -> list[dict[str, Any]]:
    return [d for d in http.get("/api/devices").json() if d["host_id"] == host_id]


def wait_devices(http: httpx.Client, host_id: str, count: int) -> list[dict[str, Any]]:
    """Wait until the host is connected with `count` devices; returns them."""

    def check() -> list[dict[str, Any]] | None:
        devices = [d for d in devices_of(http, host_id) if d["connected"]]
        return devices if len(devices) == count else None

    return wait_until(check, f"{count} connected device(s) of {host_id}")


# ---- Android (the simulated phone) ----

ANDROID_TEST_TIMINGS = {
    "call_timeout_s": 5.0,
    "health_interval_s": 0.5,
    "reconnect_interval_s": 0.3,
    "track_interval_s": 2.0,
    "debounce_s": 0.1,
    "quarantine_initial_s": 1.0,
}
"""Short intervals: a phone that vanishes or comes back is noticed well within a second."""


def android_config(adb_port: int, connect: list[str], **overrides: Any) -> str:
    """The `[android]` section for a Daemon's `extra`: its own adb server on `adb_port`,
    `adb connect` to each address of `connect`."""
    values: dict[str, Any] = {
        "enabled": True,
        "adb_port": adb_port,
        "connect": connect,
        **ANDROID_TEST_TIMINGS,
        **overrides,
    }
    return "\n".join(["[android]", *(f"{k} = {json.dumps(v)}" for k, v in values.items())])


def kill_adb_server(adb_port: int, env: dict[str, str] | None = None) -> None:
    """`adb kill-server` on that port (adbutils' bundled adb), bounded."""
    from drivers.android.adb import bundled_adb

    subprocess.run(
        [bundled_adb(), "-P", str(adb_port), "kill-server"],
        env={**os.environ, **(env or {})},
        capture_output=True,
        timeout=30,
        check=False,
    )


def wait_device(
    http: httpx.Client, host_id: str, state: str, remote_device_id: str | None = None
) -> dict[str, Any]:
    """Wait until a device of the host (that one, if given) is connected and in `state`."""

    def check() -> dict[str, Any] | None:
        for device in devices_of(http, host_id):
            if remote_device_id is not None and device["remote_device_id"] != remote_device_id:
                continue
            if device["connected"] and device["state"] == state:
                return device
        return None

    return wait_until(check, f"a device of {host_id} in state {state}")


# ---- secrets, made in this process ----


def create_secret(data_dir: Path, database: str | None, kind: str, name: str) -> str:
    """What `device-coordinator token create NAME` (`kind` "token") or `apikey create NAME`
    (`kind` "apikey") does, here: a command's start costs more than a second of CPU, and the
    tests make hundreds. Runs in a thread of its own, so an event loop running here is no
    obstacle."""
    secret = secrets.token_urlsafe(32)
    save = {"token": set_host_token, "apikey": set_api_key}[kind]
    where = sqlite_location(data_dir) if database is None else postgresql_location(database)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(store_secret, where, save, name, digest(secret)).result(timeout=60)
    return secret
