"""A device's zygote, the daemon's side: started ahead in its own sandbox, asked for one script
host per task.

`start_zygote` starts `python -m agent.scripthost.zygote` in a sandbox (agent/sandbox/bwrap.py,
`zygote_argv`) with a cgroup of its own and its control socket (agent/scripthost/forkwire.py),
and returns once it has imported and built everything. `Zygote.fork` then makes a script host as
`start_host` does (agent/hoststart.py), at the cost of a fork instead of an interpreter's start:
a fresh work dir under the zygote's home (its /task), a cgroup the fork is moved into before it
runs anything of the task, a channel and stdout/stderr pipes handed to the zygote with the
request. The fork is made in namespaces of its own (agent/scripthost/taskns.py); the result is a
`StartedHost` like any other, ended the same way. docs/security.md, "The zygote", says what this
keeps of the sandbox.

The zygote is used where it can give what a cold host has: a sandbox with a cgroup, and a network
policy other than `outbound` (its slirp4netns helper is per sandbox: those tasks start cold).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import struct
import tempfile
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

from pydantic import ValidationError

from agent.hoststart import (
    PIPE_BUFFER_BYTES,
    READY_TIMEOUT_S,
    HostStartError,
    StartedHost,
    child_env,
    ready_host,
)
from agent.sandbox import Isolation, ScriptProcess, start_script_host
from agent.sandbox.bwrap import zygote_argv
from agent.sandbox.staging import stage, staged
from agent.scripthost.forkwire import (
    MAX_MESSAGE_BYTES,
    ZYGOTE_EVENT,
    ChildExited,
    ForkRequest,
    ZygoteReady,
)
from agent.scripthost.taskns import WORKDIR
from agent.scripthost.zygote import GO, HELLO
from agent.sweep import TAG_PLACEHOLDER
from agent.taskoutput import OutputBudget, pump

_CREDENTIALS = struct.Struct("iII")  # struct ucred: pid, uid, gid


def zygote_possible(isolation: Isolation) -> bool:
    """Whether this host's tasks can be forked from a zygote (see the module's docstring). A
    root daemon without its capabilities sandboxes through a user namespace that maps root: a
    zygote there could not run as the scripts' account, so its tasks start cold."""
    return (
        isolation.bwrap is not None
        and isolation.cgroups is not None
        and isolation.settings.network != "outbound"
        and (isolation.as_root or os.geteuid() != 0)
    )


class ForkedProcess:
    """A script host forked by a zygote, as the daemon sees it (agent/sandbox HostProcess): its
    exit code comes from the zygote, which reaps it."""

    def __init__(
        self, pid: int, stdout: asyncio.StreamReader, stderr: asyncio.StreamReader
    ) -> None:
        self.pid = pid
        self.stdout: asyncio.StreamReader | None = stdout
        self.stderr: asyncio.StreamReader | None = stderr
        self.returncode: int | None = None
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def exited(self, returncode: int) -> None:
        if self.returncode is None:
            self.returncode = returncode
            self._exited.set_result(returncode)

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


class Zygote:
    """A running zygote: its sandbox, control socket and the forks it has not yet reaped."""

    def __init__(
        self,
        isolation: Isolation,
        log: logging.Logger,
        home: Path,
        script: ScriptProcess,
        control: socket.socket,
    ) -> None:
        self._isolation = isolation
        self._log = log
        self.home = home
        self.script = script
        self._control = control
        self._forks: dict[int, ForkedProcess] = {}
        self._ids = 0
        self._dead = False
        self._pumps: list[asyncio.Task[None]] = []
        self._watch: asyncio.Task[None] | None = None

    def alive(self) -> bool:
        return not self._dead and self.script.proc.returncode is None

    async def fork(self) -> StartedHost:
        """A script host forked for the next task, ready; raises HostStartError (or OSError)
        and leaves nothing behind when it cannot be made."""
        if not self.alive():
            raise HostStartError("the zygote is not running")
        isolation = self._isolation
        label = f"ahead-{uuid.uuid4().hex[:12]}"
        task_dir = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=self.home))
        try:
            if isolation.as_root:
                os.chown(task_dir, isolation.uid, isolation.gid)
            assert isolation.cgroups is not None
            cgroup = isolation.cgroups.create(label, isolation.limits)
        except BaseException:
            shutil.rmtree(task_dir, ignore_errors=True)
            raise
        parent_sock, child_sock = socket.socketpair()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self._ids += 1
        request = ForkRequest(id=self._ids, task_dir=task_dir.name)
        try:
            # Set before the fork can write: its hello then carries its pid as this pid
            # namespace sees it (the kernel translates it).
            parent_sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            parent_sock.setblocking(False)
            socket.send_fds(
                self._control,
                [request.model_dump_json().encode()],
                [child_sock.fileno(), out_w, err_w],
            )
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            parent_sock.close()
            cgroup.remove()
            shutil.rmtree(task_dir, ignore_errors=True)
            raise
        finally:
            child_sock.close()
            os.close(out_w)
            os.close(err_w)
        proc = ForkedProcess(0, await _pipe_reader(out_r), await _pipe_reader(err_r))
        self._forks[request.id] = proc
        if self._dead:
            proc.exited(-signal.SIGKILL)
        script = ScriptProcess(proc, cgroup, None, sandboxed=True)
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                proc.pid = await _hello(parent_sock)
            cgroup.move(proc.pid)
            parent_sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 0)
            parent_sock.send(GO)
        except BaseException as exc:
            parent_sock.close()  # a fork still waiting for its go gives up
            await script.end(isolation.settings.kill_grace_s)
            shutil.rmtree(task_dir, ignore_errors=True)
            if isinstance(exc, TimeoutError):
                raise HostStartError(
                    f"the zygote's fork did not start within {READY_TIMEOUT_S:g} s"
                ) from None
            if isinstance(exc, (ConnectionError, OSError)):
                raise HostStartError(f"the zygote's fork failed: {exc}") from None
            raise
        return await ready_host(isolation, self._log, label, task_dir, script, parent_sock)

    async def close(self) -> None:
        """End the zygote (its unreaped forks die with it) and remove its home."""
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        self._control.close()  # the zygote exits when its control socket ends
        await self.script.end(self._isolation.settings.kill_grace_s)
        _, pending = await asyncio.wait(self._pumps, timeout=self._isolation.settings.kill_grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        shutil.rmtree(self.home, ignore_errors=True)

    def start_watching(self) -> None:
        self._watch = asyncio.create_task(self._watch_events())

    async def _watch_events(self) -> None:
        """Exit codes of the forks as the zygote reaps them; when the zygote goes away, its forks
        have gone with it."""
        loop = asyncio.get_running_loop()
        try:
            while data := await loop.sock_recv(self._control, MAX_MESSAGE_BYTES):
                event = ZYGOTE_EVENT.validate_json(data)
                if isinstance(event, ChildExited):
                    forked = self._forks.pop(event.id, None)
                    if forked is not None:
                        forked.exited(event.returncode)
            self._log.warning("the zygote %s exited: its forks went with it", self.home.name)
        except (OSError, ValidationError) as exc:
            self._log.warning("the zygote %s failed: %s", self.home.name, exc)
        finally:
            self._dead = True
            for forked in self._forks.values():
                forked.exited(-signal.SIGKILL)
            self._forks.clear()


async def start_zygote(isolation: Isolation, log: logging.Logger) -> Zygote:
    """Start a device's zygote and wait until it is ready; raises HostStartError (or the
    sandbox's SandboxError, OSError) with the reason, leaving nothing behind."""
    settings = isolation.settings
    assert isolation.bwrap is not None
    if settings.work_root is not None:
        settings.work_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="zygote-", dir=settings.work_root))
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        folders = (*isolation.read_only, home)
        if isolation.as_root:
            os.chown(home, isolation.uid, isolation.gid)
            sources = staged(folders)
            before_exec: Callable[[], None] | None = partial(stage, sources)
        else:
            sources, before_exec = {f: f for f in folders}, None
        spec = isolation.spec(home)
        assert spec is not None
        command = [settings.python, "-m", "agent.scripthost.zygote", "--fd", str(child.fileno())]
        if settings.network == "none":
            command.append("--own-network")
        script = await start_script_host(
            isolation,
            home.name,
            home,
            command,
            child_env(Path(WORKDIR), Path("/tmp"), settings.python, TAG_PLACEHOLDER),
            child.fileno(),
            PIPE_BUFFER_BYTES,
            sandbox_argv=zygote_argv(spec, sources, command),
            before_exec=before_exec,
        )
    except BaseException:
        parent.close()
        shutil.rmtree(home, ignore_errors=True)
        raise
    finally:
        child.close()
    parent.setblocking(False)
    zygote = Zygote(isolation, log, home, script, parent)
    proc = script.proc
    assert proc.stdout is not None and proc.stderr is not None
    budget = OutputBudget(settings.output_max_bytes, settings.output_lines_per_s)
    zygote._pumps = [
        asyncio.create_task(pump(proc.stdout, _zygote_lines(log, "stdout"), budget)),
        asyncio.create_task(pump(proc.stderr, _zygote_lines(log, "stderr"), budget)),
    ]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            said = await loop.sock_recv(parent, MAX_MESSAGE_BYTES)
        if said:
            ZygoteReady.model_validate_json(said)
    except BaseException as exc:
        await zygote.close()
        if isinstance(exc, TimeoutError):
            raise HostStartError(f"the zygote was not ready within {READY_TIMEOUT_S:g} s") from None
        if isinstance(exc, (ValidationError, OSError)):
            raise HostStartError(f"the zygote failed to start: {exc}") from None
        raise
    if not said:
        await zygote.close()
        hit = zygote.script.limit_hit
        killed = "" if hit is None else f": the kernel killed it at its {hit.replace('_', ' ')}"
        raise HostStartError(f"the zygote exited before it was ready{killed}")
    zygote.start_watching()
    return zygote


def _zygote_lines(log: logging.Logger, source: str) -> Callable[[str], None]:
    def emit(text: str) -> None:
        log.warning("zygote %s: %s", source, text)

    return emit


async def _hello(sock: socket.socket) -> int:
    """The fork's first byte and, with it, its pid in the daemon's pid namespace."""
    loop = asyncio.get_running_loop()
    got: asyncio.Future[tuple[bytes, list[tuple[int, int, bytes]]]] = loop.create_future()

    def readable() -> None:
        try:
            data, ancillary, _, _ = sock.recvmsg(1, socket.CMSG_SPACE(_CREDENTIALS.size))
        except BlockingIOError:
            return
        except OSError as exc:
            if not got.done():
                got.set_exception(exc)
            return
        if not got.done():
            got.set_result((data, ancillary))

    loop.add_reader(sock.fileno(), readable)
    try:
        data, ancillary = await got
    finally:
        loop.remove_reader(sock.fileno())
    if data != HELLO:
        raise HostStartError("the zygote's fork ended before it started")
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = _CREDENTIALS.unpack(payload[: _CREDENTIALS.size])[0]
            if pid > 0:
                return int(pid)
    raise HostStartError("the zygote's fork sent no credentials")


async def _pipe_reader(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=PIPE_BUFFER_BYTES, loop=loop)
    pipe = os.fdopen(fd, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe)
    return reader
