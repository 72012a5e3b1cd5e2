"""Run one script against a local device with the whole stack in this process: for script authors.

`run_local` starts the real coordinator app (coordinator.app.create_app) on uvicorn on a free
127.0.0.1 port with a temp data dir, the real daemon (`agent.daemon.run_daemon`) with one device
of the chosen kind, makes a job of the script and one task with the given input, waits until
that task ends, and reports: every submission in order, the data dumps it wrote, the sub-tasks it
added, and the final state. Files (the task's, and those of its data dumps) are saved into the
output folder with `result.json`, under safe names (agent/filenames.py) and never outside it.
Sub-tasks are listed but not waited for (they would run on the same device after the task).
Nothing of it outlives the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from agent.config import AgentConfig, AgentSettings, CoordinatorSettings
from agent.daemon import run_daemon
from agent.filenames import file_name
from agent.localdevices import DEVICE_KINDS
from agent.protocol import MAX_FRAME_BYTES, TERMINAL_STATES
from agent.sandbox import log_isolation, probe, refuse_unsandboxed
from agent.script_settings import ScriptSettings
from agent.stopping import StopRequest
from coordinator.app import create_app
from coordinator.context import Context
from coordinator.db_location import sqlite_location
from coordinator.settings import Settings
from coordinator.store_hosts import digest, set_api_key, set_host_token
from coordinator.store_submissions import submissions_of
from coordinator.store_tasks import child_task_ids

HOST_ID = "local"
OWNER = "local"
START_TIMEOUT_S = 60.0
POLL_S = 0.1


class LocalRunError(Exception):
    """The local stack could not be started, the task did not end in time, or one of its files
    would have been written outside the output folder."""


@dataclass(frozen=True)
class LocalRun:
    """What happened to the task; `report()` is the printable summary."""

    task: dict[str, Any]
    submissions: list[dict[str, Any]]
    dumps: list[dict[str, Any]]
    sub_tasks: list[dict[str, Any]]
    saved: list[Path]

    def report(self) -> str:
        lines = ["submissions:"]
        for s in self.submissions:
            finish = " (final)" if s["finish"] else ""
            lines.append(f"  #{s['seq']} {s['status']}{finish}: {json.dumps(s['data'])}")
        if not self.submissions:
            lines.append("  (none)")
        for d in self.dumps:
            lines.append(
                f"data dump to job {d['job_id']}: task {d['id']} {d['state']}: "
                f"{json.dumps(d['result'])}"
            )
        for t in self.sub_tasks:
            lines.append(
                f"sub-task {t['id']} ({t['state']}, not run here): {json.dumps(t['input'])}"
            )
        t = self.task
        lines.append(f"final state: {t['state']}")
        if t["failure_reason"]:
            lines.append(f"reason: {t['failure_reason']}")
        if t["error"]:
            lines.append(f"error: {t['error']}")
        lines.append(f"result: {json.dumps(t['result'])}")
        lines += [f"saved: {p}" for p in self.saved]
        return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def _coordinator(data_dir: Path) -> AsyncIterator[tuple[Context, int]]:
    port = _free_port()
    app = create_app(
        Settings(
            data_dir=data_dir, database=sqlite_location(data_dir), grace_s=5.0, heartbeat_s=5.0
        )
    )
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        log_config=None,
        access_log=False,
        ws_max_size=MAX_FRAME_BYTES + 1024 * 1024,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while not server.started:
                if serving.done():
                    raise LocalRunError(f"the coordinator did not start: {serving.exception()}")
                await asyncio.sleep(POLL_S)
        ctx: Context = app.state.ctx
        yield ctx, port
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 10)


async def _wait_task(http: httpx.AsyncClient, task_id: str, deadline_s: float) -> dict[str, Any]:
    async with asyncio.timeout(deadline_s):
        while True:
            task: dict[str, Any] = (await http.get(f"/api/tasks/{task_id}")).json()
            if task["state"] in TERMINAL_STATES:
                return task
            await asyncio.sleep(POLL_S)


async def _submissions(ctx: Context, task_id: str) -> list[dict[str, Any]]:
    async with ctx.db.transaction() as conn:
        return await submissions_of(conn, task_id)


async def _children(http: httpx.AsyncClient, ctx: Context, task_id: str) -> list[dict[str, Any]]:
    async with ctx.db.transaction() as conn:
        ids = await child_task_ids(conn, task_id)
    return [(await http.get(f"/api/tasks/{i}")).json() for i in ids]


def _target(output_dir: Path, name: str) -> Path:
    """Where a file named `name` (already safe) goes: never outside `output_dir`, even through
    a symbolic link left in it (the resolved path is checked)."""
    target = output_dir / name
    if not target.resolve().is_relative_to(output_dir.resolve()):
        raise LocalRunError(f"refusing to write {target}: it resolves outside {output_dir}")
    return target


async def _save_files(
    http: httpx.AsyncClient, tasks: list[dict[str, Any]], output_dir: Path
) -> list[Path]:
    saved = []
    for task in tasks:
        for f in task["files"]:
            data = (await http.get(f["url"])).content
            # Reduced here too: the names come from a script, through a coordinator.
            name = file_name(f["name"], f["extension"])
            if task["origin"] == "dump":
                name = f"dump-{task['id'][:8]}-{name}"
            target = _target(output_dir, name)
            await asyncio.to_thread(target.write_bytes, data)
            saved.append(target)
    return saved


async def run_local(
    script: Path,
    *,
    device: str = "browser",
    task_input: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    timeout_s: float = 300.0,
    output_dir: Path = Path("script-run-output"),
) -> LocalRun:
    """Run `script` once on a local device of kind `device`; see the module docstring."""
    if device not in DEVICE_KINDS:
        raise LocalRunError(f"unknown device kind {device!r} (known: {', '.join(DEVICE_KINDS)})")
    source = await asyncio.to_thread(script.read_text)
    with tempfile.TemporaryDirectory(prefix="device-agent-run-") as tmp:
        root = Path(tmp)
        async with _coordinator(root / "coordinator") as (ctx, port):
            token, api_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            async with ctx.db.transaction() as conn:
                await set_host_token(conn, HOST_ID, digest(token))
                await set_api_key(conn, OWNER, digest(api_key))
            config = AgentConfig(
                # The run is over when the daemon stops: there is no task to let finish.
                agent=AgentSettings(
                    host_id=HOST_ID, state_file=root / "state.db", drain_timeout_s=0
                ),
                coordinator=CoordinatorSettings(
                    url=f"ws://127.0.0.1:{port}/ws/host",
                    backoff_initial_s=0.2,
                    backoff_max_s=2.0,
                    request_timeout_s=30.0,
                ),
                scripts=ScriptSettings(work_root=root / "work"),
                devices=DEVICE_KINDS[device](),
            )
            isolation = await asyncio.to_thread(probe, config.scripts)
            refusal = refuse_unsandboxed(isolation)
            if refusal is not None:
                raise LocalRunError(refusal)
            log_isolation(isolation, logging.getLogger("device_agent"))
            stop = StopRequest(logging.getLogger("device_agent"))
            daemon = asyncio.create_task(run_daemon(config, token, isolation, stop))
            try:
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}",
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=30,
                ) as http:
                    job = _Job(script.name, source, task_input or {}, parameters or {}, timeout_s)
                    run = await _run(http, ctx, job, output_dir, daemon)
            finally:
                stop.request("the local run ended")
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(daemon, 30)
    return run


@dataclass(frozen=True)
class _Job:
    name: str
    source: str
    task_input: dict[str, Any]
    parameters: dict[str, Any]
    timeout_s: float


async def _run(
    http: httpx.AsyncClient,
    ctx: Context,
    job: _Job,
    output_dir: Path,
    daemon: asyncio.Task[None],
) -> LocalRun:
    timeout_s = job.timeout_s
    r = await http.post(
        "/api/jobs",
        json={
            "name": job.name,
            "script": job.source,
            "parameters": job.parameters,
            "timeout_s": timeout_s,
            "automation_id": "local",
            "allow_sub_tasks": True,
        },
    )
    if r.status_code != 201:
        raise LocalRunError(f"the coordinator refused the job: {r.text}")
    job_id = r.json()["id"]
    r = await http.post(f"/api/jobs/{job_id}/tasks", json={"tasks": [{"input": job.task_input}]})
    if r.status_code != 201:
        raise LocalRunError(f"the coordinator refused the task: {r.text}")
    task_id = r.json()["tasks"][0]["id"]
    waiting = asyncio.create_task(_wait_task(http, task_id, timeout_s + START_TIMEOUT_S))
    await asyncio.wait({waiting, daemon}, return_when=asyncio.FIRST_COMPLETED)
    if not waiting.done():
        waiting.cancel()
        raise LocalRunError(f"the daemon stopped before the task ended: {daemon.exception()!r}")
    try:
        task = waiting.result()
    except TimeoutError:
        raise LocalRunError(f"task {task_id} did not end within {timeout_s:g} s") from None
    children = await _children(http, ctx, task_id)
    dumps = [c for c in children if c["origin"] == "dump"]
    sub_tasks = [c for c in children if c["origin"] == "run"]
    await asyncio.to_thread(output_dir.mkdir, parents=True, exist_ok=True)
    saved = await _save_files(http, [task, *dumps], output_dir)
    submissions = await _submissions(ctx, task_id)
    result_path = output_dir / "result.json"
    summary = {"task": task, "submissions": submissions, "dumps": dumps, "sub_tasks": sub_tasks}
    await asyncio.to_thread(result_path.write_text, json.dumps(summary, indent=2) + "\n")
    return LocalRun(task, submissions, dumps, sub_tasks, [*saved, result_path])
