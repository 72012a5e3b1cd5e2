"""Run a script against local devices with the whole stack in this process: for script authors.

`run_local` brings up the devices (agent/localdevices.py: browsers, a phone already attached to
adb, or simulated phones behind a private adb server), the real coordinator app
(coordinator.app.create_app) on uvicorn on a free 127.0.0.1 port with a temp data dir, and the
real daemon (`agent.daemon.run_daemon`) with those devices. It makes a job of the script with
one task per input, in order, and follows the run until every task of the job has ended: the
given ones, the sub-tasks they add (which run on the other local devices, as on a farm) and
their sub-tasks. Data dumps the script writes into its own job are records, not work: they are
reported, not waited for.

As it runs it prints (agent/runprint.py) each task as it appears and changes state, the
run's timeline as the daemon records it (agent/timeline.py: device actions, `print`/stderr and
`agent.log` lines, kept screenshots, the daemon's notes), and each submission (from the
coordinator). At the end: the final state of every task,
and the files saved into the output folder with `result.json`, under safe names
(agent/filenames.py), never outside it. Nothing of it outlives the call: the daemon, the
coordinator, simulated phones and their adb server are stopped on the way out, also on errors
and Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn

from agent.config import AgentConfig, AgentSettings, CoordinatorSettings
from agent.daemon import run_daemon
from agent.filenames import file_name
from agent.localdevices import BROWSER, DeviceChoice, LocalDeviceError, LocalDevices, local_devices
from agent.protocol import MAX_FRAME_BYTES, TERMINAL_STATES
from agent.runprint import (
    DataDump,
    RunPrinter,
    Submission,
    TaskSeen,
    TaskState,
    Timed,
    short_id,
)
from agent.sandbox import Isolation, log_isolation, probe, refuse_unsandboxed
from agent.script_settings import ScriptSettings
from agent.state import StateStore
from agent.stopping import StopRequest
from agent.timeline import TimelineEntry
from coordinator import schema
from coordinator.app import create_app
from coordinator.context import Context
from coordinator.db_location import sqlite_location
from coordinator.settings import Settings
from coordinator.store_hosts import digest, set_api_key, set_host_token
from coordinator.store_submissions import submissions_of

HOST_ID = "local"
OWNER = "local"
START_TIMEOUT_S = 60.0
IDLE_TIMEOUT_S = 90.0
"""A run where tasks wait and none has run for this long is stuck (no device takes them)."""
BUSY_NOTE_S = 5.0
"""Tasks that waited this long while every device was busy get a note saying why."""
POLL_S = 0.2
DAEMON_STOP_S = 30.0
LOG = "device_agent"
ACTIVE_STATES = frozenset({"assigned", "running"})
STARTED = "task %s started on %s"
"""The daemon's record of a task's start (agent/scheduler.py): printed at once, not a poll later."""
FINISHED = "task %s finished: %s%s%s"
"""The daemon's record of a run's end: its script is over (a final submission ends the task at
the coordinator before that)."""


class LocalRunError(Exception):
    """The local stack could not be started, the run was stuck, or one of its files would have
    been written outside the output folder."""


@dataclass(frozen=True)
class LocalRun:
    """What happened to the run's tasks (in the order they appeared) and where files went."""

    tasks: list[dict[str, Any]]
    dumps: list[dict[str, Any]]
    saved: list[Path]

    @property
    def succeeded(self) -> bool:
        return all(task["state"] == "success" for task in self.tasks)


@dataclass(frozen=True)
class _Job:
    name: str
    source: str
    inputs: list[dict[str, Any]]
    parameters: dict[str, Any]
    timeout_s: float


async def run_local(
    script: Path,
    printer: RunPrinter,
    *,
    device: DeviceChoice = BROWSER,
    devices: int = 1,
    inputs: list[dict[str, Any]] | None = None,
    parameters: dict[str, Any] | None = None,
    timeout_s: float = 300.0,
    output_dir: Path = Path("script-run-output"),
) -> LocalRun:
    """Run `script` with one task per input (one with `{}` when none) on `devices` local
    devices of the chosen kind; see the module docstring."""
    source = await asyncio.to_thread(script.read_text)
    job = _Job(script.name, source, inputs or [{}], parameters or {}, timeout_s)
    with tempfile.TemporaryDirectory(prefix="device-agent-run-") as tmp:
        root = Path(tmp)
        try:
            async with local_devices(device, devices, root) as local:
                return await _with_stack(job, local, root, output_dir, printer)
        except LocalDeviceError as exc:
            raise LocalRunError(str(exc)) from None


async def _with_stack(
    job: _Job, local: LocalDevices, root: Path, output_dir: Path, printer: RunPrinter
) -> LocalRun:
    scripts = ScriptSettings(work_root=root / "work")
    # The sandbox probe (a trial sandboxed interpreter) runs while the coordinator starts.
    probing = asyncio.ensure_future(asyncio.to_thread(probe, scripts))
    try:
        return await _with_coordinator(job, local, root, output_dir, printer, scripts, probing)
    finally:
        with contextlib.suppress(Exception):
            await probing


async def _with_coordinator(
    job: _Job,
    local: LocalDevices,
    root: Path,
    output_dir: Path,
    printer: RunPrinter,
    scripts: ScriptSettings,
    probing: asyncio.Future[Isolation],
) -> LocalRun:
    state_file = root / "state.db"
    names = await _device_names(state_file, local)
    async with _coordinator(root / "coordinator") as (ctx, port):
        token, api_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        async with ctx.db.transaction() as conn:
            await set_host_token(conn, HOST_ID, digest(token))
            await set_api_key(conn, OWNER, digest(api_key))
        config = AgentConfig(
            # The run is over when the daemon stops: there is no task to let finish.
            agent=AgentSettings(host_id=HOST_ID, state_file=state_file, drain_timeout_s=0),
            coordinator=CoordinatorSettings(
                url=f"ws://127.0.0.1:{port}/ws/host",
                backoff_initial_s=0.2,
                backoff_max_s=2.0,
                request_timeout_s=30.0,
            ),
            scripts=scripts,
            devices=local.devices,
            android=local.android,
        )
        isolation = await probing
        refusal = refuse_unsandboxed(isolation)
        if refusal is not None:
            raise LocalRunError(refusal)
        log = logging.getLogger(LOG)
        log_isolation(isolation, log)
        # Its own logger: "stop requested" is how every local run ends, not news.
        quiet = logging.getLogger(f"{LOG}.localrun")
        quiet.setLevel(logging.ERROR)
        stop = StopRequest(quiet)
        async with _printing_records(printer) as records:
            daemon = asyncio.create_task(
                run_daemon(config, token, isolation, stop, on_timeline=records.timeline)
            )
            try:
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}",
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=30,
                ) as http:
                    watch = records.watch = _Watch(http, ctx, printer, names, len(local.names))
                    try:
                        await _start(http, job, watch)
                        await _follow(watch, daemon)
                    finally:
                        await _stop(stop, daemon)
                    # The daemon delivered everything as it stopped: read the run's last word.
                    await watch.poll()
                    return await _finish(http, watch, output_dir, printer)
            finally:
                await _stop(stop, daemon)


async def _stop(stop: StopRequest, daemon: asyncio.Task[None]) -> None:
    if not stop.requested.is_set():
        stop.request("the local run ended")
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(daemon, DAEMON_STOP_S)


async def _device_names(state_file: Path, local: LocalDevices) -> dict[str, str]:
    """remote_device_id -> the name the author knows (browser slot, serial), made now in the
    daemon's state file so that the daemon uses the same ids."""
    kind = "browser" if local.devices.browser else "android"
    state = await StateStore.open(state_file)
    try:
        return {await state.remote_device_id(name, kind): name for name in local.names}
    finally:
        await state.close()


class _Server(uvicorn.Server):
    """Leaves SIGINT to the command: Ctrl-C ends the whole run in order, not the coordinator
    under a run still going."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def _coordinator(data_dir: Path) -> AsyncIterator[tuple[Context, int]]:
    from drivers.sim import free_port

    port = free_port()
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
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while not server.started:
                if serving.done():
                    raise LocalRunError(f"the coordinator did not start: {serving.exception()}")
                await asyncio.sleep(0.05)
        ctx: Context = app.state.ctx
        yield ctx, port
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 10)


class _RecordPrinter(logging.Handler):
    """The daemon's records of each run's start and end (agent/scheduler.py), and each run's
    timeline entries (agent/timeline.py), as run events."""

    def __init__(self, printer: RunPrinter) -> None:
        super().__init__(logging.INFO)
        self.printer = printer
        self.watch: _Watch | None = None

    def emit(self, record: logging.LogRecord) -> None:
        fields = record.__dict__
        task_id, device, attempt = (
            fields.get("task_id"),
            fields.get("device"),
            fields.get("attempt"),
        )
        if self.watch is None or not isinstance(task_id, str) or not isinstance(attempt, int):
            return
        if fields.get("source") is None and record.msg == STARTED and isinstance(device, str):
            self.watch.started(task_id, attempt, device)
        elif fields.get("source") is None and record.msg == FINISHED:
            self.watch.ran.add((task_id, attempt))

    def timeline(self, task_id: str, entry: TimelineEntry) -> None:
        """Each entry but submissions (printed with their data from the coordinator) and the
        outcome (printed as the task's state)."""
        if entry.kind != "submit" and not (entry.kind == "note" and entry.name == "outcome"):
            self.printer.event(Timed(task_id, entry))


@contextlib.asynccontextmanager
async def _printing_records(printer: RunPrinter) -> AsyncIterator[_RecordPrinter]:
    """Follow the daemon's records of runs while the block runs: its logger lets info through
    meanwhile (the handlers the command line set keep their own level)."""
    log = logging.getLogger(LOG)
    handler = _RecordPrinter(printer)
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


@dataclass
class _Watch:
    """Follows the job's tasks at the coordinator and prints what changed."""

    http: httpx.AsyncClient
    ctx: Context
    printer: RunPrinter
    names: dict[str, str]
    device_count: int
    job_id: str = ""
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Tasks that are work (not data dumps), in the order they appeared."""
    dumps: dict[str, dict[str, Any]] = field(default_factory=dict)
    submissions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    planned: list[dict[str, Any]] = field(default_factory=list)
    """Sub-tasks added but not yet tasks (they become tasks when a device is free)."""
    _read_to_end: set[str] = field(default_factory=set)
    _started: set[tuple[str, int]] = field(default_factory=set)
    ran: set[tuple[str, int]] = field(default_factory=set)
    """(task, attempt) of the runs the daemon ended."""

    async def poll(self) -> None:
        views = await self._views()
        async with self.ctx.db.transaction() as conn:
            self.planned = await _open_planned(conn, self.job_id)
        # Dumps first: a script writes its dumps before it ends, so a dump and its writer's
        # end seen in one poll are printed in that order.
        for view in sorted(views, key=lambda v: v["origin"] != "dump"):
            if view["origin"] == "dump":
                if view["id"] not in self.dumps:
                    writer = view["parent_task_id"] or view["id"]
                    self.printer.event(DataDump(writer, view["id"], view["job_id"], view["result"]))
                self.dumps[view["id"]] = view
                continue
            await self._task(view)

    def started(self, task_id: str, attempt: int, device_id: str) -> None:
        """The daemon started the task on the device (told by its log record, at once)."""
        if task_id in self.tasks and (task_id, attempt) not in self._started:
            self._started.add((task_id, attempt))
            self.printer.event(TaskState(task_id, "running", self.names.get(device_id, device_id)))

    async def _task(self, view: dict[str, Any]) -> None:
        task_id, state = view["id"], view["state"]
        before = self.tasks.get(task_id)
        if before is None:
            self.printer.event(TaskSeen(task_id, view["input"], view["parent_task_id"]))
        self.tasks[task_id] = view
        if view["started_at"] is not None and view["device_id"] is not None:
            self.started(task_id, view["attempt"], view["device_id"])
        if task_id not in self._read_to_end and state not in ("pending", "blocked"):
            await self._submissions(task_id)
            if state in TERMINAL_STATES:
                self._read_to_end.add(task_id)
        if state != (before["state"] if before else "pending") and state not in ACTIVE_STATES:
            final = state in TERMINAL_STATES
            self.printer.event(
                TaskState(
                    task_id,
                    state,
                    reason=view["failure_reason"] if final else None,
                    error=view["error"] if final else None,
                )
            )

    async def _submissions(self, task_id: str) -> None:
        async with self.ctx.db.transaction() as conn:
            stored = await submissions_of(conn, task_id)
        known = self.submissions.setdefault(task_id, [])
        for s in stored[len(known) :]:
            self.printer.event(Submission(task_id, s["seq"], s["status"], s["finish"], s["data"]))
        known[:] = stored

    async def _views(self) -> list[dict[str, Any]]:
        views: list[dict[str, Any]] = []
        params: dict[str, Any] = {"job_id": self.job_id, "limit": 500}
        while True:
            page = (await self.http.get("/api/tasks", params=params)).json()
            views += page["items"]
            if page["next_cursor"] is None:
                return views
            params["cursor"] = page["next_cursor"]

    @property
    def done(self) -> bool:
        return bool(self.tasks) and not self.planned and all(self._ended(t) for t in self.tasks)

    def _ended(self, task_id: str) -> bool:
        task = self.tasks[task_id]
        return task["state"] in TERMINAL_STATES and not self._holds_device(task)

    def waiting(self) -> list[str]:
        """What waits for a device: planned sub-tasks and tasks not yet given to one."""
        queued = [
            f"task {short_id(t['id'])} ({t['state']}, input {json.dumps(t['input'])})"
            for t in self.tasks.values()
            if t["state"] in ("pending", "blocked")
        ]
        planned = [
            f"sub-task {short_id(p['id'])} of {short_id(p['parent_task_id'])} (planned, input "
            f"{json.dumps(p['input'])})"
            for p in self.planned
        ]
        return queued + planned

    def active(self) -> int:
        """How many tasks hold a device."""
        return sum(1 for task in self.tasks.values() if self._holds_device(task))

    def _holds_device(self, task: dict[str, Any]) -> bool:
        """Given to a device and its run not over: a final submission makes a task final at
        once, and its script may still run (and print) until the daemon ends the run."""
        if task["state"] in ACTIVE_STATES:
            return True
        ran = task["started_at"] is not None
        return ran and (task["id"], task["attempt"]) not in self.ran


async def _open_planned(conn: Any, job_id: str) -> list[dict[str, Any]]:
    p = schema.planned_tasks.c
    rows = await conn.execute(
        sa.select(p.id, p.parent_task_id, p.input)
        .where(p.job_id == job_id, p.job_task_id.is_(None))
        .order_by(p.seq)
    )
    return [
        {"id": r.id, "parent_task_id": r.parent_task_id, "input": json.loads(r.input)} for r in rows
    ]


async def _start(http: httpx.AsyncClient, job: _Job, watch: _Watch) -> None:
    r = await http.post(
        "/api/jobs",
        json={
            "name": job.name,
            "script": job.source,
            "parameters": job.parameters,
            "timeout_s": job.timeout_s,
            "automation_id": "local",
            "allow_sub_tasks": True,
        },
    )
    if r.status_code != 201:
        raise LocalRunError(f"the coordinator refused the job: {r.text}")
    watch.job_id = r.json()["id"]
    tasks = [{"input": task_input} for task_input in job.inputs]
    r = await http.post(f"/api/jobs/{watch.job_id}/tasks", json={"tasks": tasks})
    if r.status_code != 201:
        raise LocalRunError(f"the coordinator refused the tasks: {r.text}")


async def _follow(watch: _Watch, daemon: asyncio.Task[None]) -> None:
    """Until every task of the run has ended; LocalRunError when the daemon stopped or nothing
    could run for IDLE_TIMEOUT_S."""
    last_active = busy_since = time.monotonic()
    noted = False
    while True:
        await watch.poll()
        if watch.done:
            return
        if daemon.done():
            error = None if daemon.cancelled() else daemon.exception()
            raise LocalRunError(f"the daemon stopped before the run ended: {error!r}")
        now = time.monotonic()
        waiting = watch.waiting()
        if watch.active() or not waiting:
            last_active = now
        elif now - last_active > IDLE_TIMEOUT_S:
            raise LocalRunError(
                f"nothing ran for {IDLE_TIMEOUT_S:g} s while these waited for a device: "
                f"{'; '.join(waiting)}; devices: {await _devices(watch.http)}"
            )
        if not waiting or watch.active() < watch.device_count:
            busy_since = now
        elif not noted and now - busy_since > BUSY_NOTE_S:
            noted = True
            watch.printer.note(
                f"{len(waiting)} task(s) wait for a device: all {watch.device_count} local "
                "device(s) are busy. A task that waits for its sub-tasks (or for another task) "
                f"holds its device meanwhile: give --devices {watch.device_count + len(waiting)}"
            )
        await asyncio.sleep(POLL_S)


async def _devices(http: httpx.AsyncClient) -> str:
    devices = (await http.get("/api/devices")).json()
    return ", ".join(f"{d['kind']} {short_id(d['remote_device_id'])} {d['state']}" for d in devices)


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
    """Each task's files; the first task's under their own names, the others' prefixed with
    the task's short id (`dump-` and the id for data dumps)."""
    saved = []
    for i, task in enumerate(tasks):
        for f in task["files"]:
            data = (await http.get(f["url"])).content
            # Reduced here too: the names come from a script, through a coordinator.
            name = file_name(f["name"], f["extension"])
            if task["origin"] == "dump":
                name = f"dump-{short_id(task['id'])}-{name}"
            elif i > 0:
                name = f"{short_id(task['id'])}-{name}"
            target = _target(output_dir, name)
            await asyncio.to_thread(target.write_bytes, data)
            saved.append(target)
    return saved


async def _finish(
    http: httpx.AsyncClient, watch: _Watch, output_dir: Path, printer: RunPrinter
) -> LocalRun:
    tasks, dumps = list(watch.tasks.values()), list(watch.dumps.values())
    await asyncio.to_thread(output_dir.mkdir, parents=True, exist_ok=True)
    saved = await _save_files(http, [*tasks, *dumps], output_dir)
    summary = {
        "tasks": [{**t, "submissions": watch.submissions.get(t["id"], [])} for t in tasks],
        "dumps": dumps,
    }
    result_path = output_dir / "result.json"
    await asyncio.to_thread(result_path.write_text, json.dumps(summary, indent=2) + "\n")
    run = LocalRun(tasks, dumps, [*saved, result_path])
    printer.summary(tasks, dumps, run.saved)
    return run
