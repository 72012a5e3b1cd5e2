"""One script host: started (sandboxed) before or when its task arrives, given that one task, ended.

`start_host` makes a fresh private work dir, starts `python -m agent.scripthost` there under the
sandbox and in a cgroup of its own (agent/sandbox), with an environment built from scratch, wires
its channel and its stdout/stderr (agent/taskoutput.py), and returns once the host says `ready`:
interpreter up, imports done, models built. A host started ahead of its task (agent/ahead.py)
then waits, idle, for `bind`. A host serves one task: `end` kills every process it has and
removes its work dir; nothing of it is used again.

The processes of a host carry `DEVICE_AGENT_TASK_ID` (agent/sweep.py). A host started for a
known task gets the task's id; one started ahead gets a placeholder of `TAG_BYTES` that the host
overwrites with the task's id when it gets its `init` (agent/scripthost/tag.py), so either way
/proc names the task of every process the script starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from agent.sandbox import Isolation, ScriptProcess, start_script_host
from agent.scripthost.taskns import WORKDIR
from agent.scriptrpc import ChannelError, parse_ready, read_frame
from agent.sweep import TAG_PLACEHOLDER, TASK_ENV
from agent.taskoutput import OutputBudget, pump

READY_TIMEOUT_S = 30.0
"""How long a host may take to say `ready` (a cold interpreter on a loaded 2-core host takes a
second or two; this bounds a host that hangs in its start)."""
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PIPE_BUFFER_BYTES = 256 * 1024


class HostStartError(Exception):
    """The script host could not be started or did not get ready; str() says why."""


class StartedHost:
    """A ready script host, its work dir, channel and output pumps."""

    def __init__(
        self,
        label: str,
        task_dir: Path,
        script: ScriptProcess,
        channel: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        budget: OutputBudget,
        log: logging.Logger,
    ) -> None:
        self.label = label
        """The task's id once bound; before that, what the host's log lines are about."""
        self.task_dir = task_dir
        self.script = script
        self.reader, self.writer = channel
        self.budget = budget
        self.log = log
        self.pumps: list[asyncio.Task[None]] = []
        self.bound = False
        self.on_output: Callable[[str, str], None] | None = None
        """Told each admitted output line (source, text) as well: the run's timeline."""

    def usable(self) -> bool:
        """Whether it can still take a task: unbound, its process and channel alive."""
        return (
            not self.bound
            and self.script.proc.returncode is None
            and not self.reader.at_eof()
            and not self.writer.is_closing()
        )

    def bind(self, task_id: str) -> None:
        """From now on the host is the task's: its output is logged as the task's."""
        self.bound = True
        self.label = task_id

    async def end(self, grace: float) -> None:
        """Kill every process of the host, close its channel, drain its output, remove its work
        dir. Safe to call more than once."""
        try:
            await self.script.end(grace)
        finally:
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()
            await _finish_pumps(self.pumps, grace)
            dropped = self.budget.dropped_summary()
            if dropped is not None:
                self.log.warning("task %s: %s", self.label, dropped)
            shutil.rmtree(self.task_dir, ignore_errors=True)

    def _emitter(self, source: str) -> Callable[[str], None]:
        """Log a line of the host's output, so `print` in a script lands in the task's log."""
        level = logging.INFO if source == "stdout" else logging.WARNING

        def emit(text: str) -> None:
            self.log.log(
                level,
                "task %s %s: %s",
                self.label,
                source,
                text,
                extra={"task_id": self.label, "source": source},
            )
            if self.on_output is not None:
                self.on_output(source, text)

        return emit


async def start_host(
    isolation: Isolation, log: logging.Logger, task_id: str | None = None
) -> StartedHost:
    """Start a script host and wait until it is ready: for `task_id`, or ahead of a task.

    Raises HostStartError (or the sandbox's SandboxError) with the reason; nothing is left
    behind on failure or cancellation.
    """
    settings = isolation.settings
    if settings.work_root is not None:
        settings.work_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not Path(settings.python).is_file():  # noqa: ASYNC240 (one stat)
        raise FileNotFoundError(f"key `scripts.python`: no interpreter at {settings.python}")
    label = task_id if task_id is not None else f"ahead-{uuid.uuid4().hex[:12]}"
    # mkdtemp makes it 0700; as root it is handed to the scripts' account, and only its sandbox
    # sees it (at /task).
    task_dir = Path(tempfile.mkdtemp(prefix=f"{_safe(label)}-", dir=settings.work_root))
    try:
        if isolation.bwrap is not None and isolation.as_root:
            os.chown(task_dir, isolation.uid, isolation.gid)
        return await _start(isolation, log, label, task_dir, task_id or TAG_PLACEHOLDER)
    except BaseException:
        shutil.rmtree(task_dir, ignore_errors=True)
        raise


async def _start(
    isolation: Isolation, log: logging.Logger, label: str, task_dir: Path, tag: str
) -> StartedHost:
    settings = isolation.settings
    sandboxed = isolation.bwrap is not None
    parent_sock, child_sock = socket.socketpair()
    try:
        try:
            script = await start_script_host(
                isolation,
                label,
                task_dir,
                [settings.python, "-m", "agent.scripthost", "--fd", str(child_sock.fileno())],
                child_env(
                    Path(WORKDIR) if sandboxed else task_dir,
                    Path("/tmp") if sandboxed else task_dir,
                    settings.python,
                    tag,
                ),
                child_sock.fileno(),
                PIPE_BUFFER_BYTES,
            )
        finally:
            child_sock.close()
    except BaseException:
        parent_sock.close()
        raise
    return await ready_host(isolation, log, label, task_dir, script, parent_sock)


async def ready_host(
    isolation: Isolation,
    log: logging.Logger,
    label: str,
    task_dir: Path,
    script: ScriptProcess,
    parent_sock: socket.socket,
) -> StartedHost:
    """The started host once it said `ready` on its channel (`parent_sock`); on failure or
    cancellation every process of it is ended and its work dir removed."""
    settings = isolation.settings
    try:
        channel = await asyncio.open_connection(sock=parent_sock)
    except BaseException:
        parent_sock.close()
        await script.end(settings.kill_grace_s)
        shutil.rmtree(task_dir, ignore_errors=True)
        raise
    host = StartedHost(
        label,
        task_dir,
        script,
        channel,
        OutputBudget(settings.output_max_bytes, settings.output_lines_per_s),
        log,
    )
    proc = script.proc
    assert proc.stdout is not None and proc.stderr is not None
    host.pumps = [
        asyncio.create_task(pump(proc.stdout, host._emitter("stdout"), host.budget)),
        asyncio.create_task(pump(proc.stderr, host._emitter("stderr"), host.budget)),
    ]
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            parse_ready(await read_frame(host.reader))
    except BaseException as exc:
        await host.end(settings.kill_grace_s)
        if isinstance(exc, TimeoutError):
            why = f"the script host was not ready within {READY_TIMEOUT_S:g} s"
            raise HostStartError(why) from None
        if isinstance(exc, (ChannelError, ConnectionError)):
            raise HostStartError(f"the script host failed to start: {exc}") from None
        raise
    return host


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in label)[:40]


async def _finish_pumps(pumps: list[asyncio.Task[None]], grace: float) -> None:
    """Let the pumps drain what the dead host wrote; a process that escaped and still holds a
    pipe must not keep us waiting."""
    if not pumps:
        return
    _, pending = await asyncio.wait(pumps, timeout=grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pumps, return_exceptions=True)


def child_env(home: Path, tmp: Path, python: str, tag: str) -> dict[str, str]:
    """The child's whole environment, built from scratch: nothing of the daemon's leaks in.

    TASK_ENV tags the script and what it starts, so a restarted daemon can find and kill what
    an earlier one left behind (agent/sweep.py). Pydantic's plugin discovery (a scan of every
    installed distribution) is off: the script host uses no plugin, and it costs its start.
    """
    return {
        TASK_ENV: tag,
        "PATH": f"{Path(python).parent}:{_SYSTEM_PATH}",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
    }
