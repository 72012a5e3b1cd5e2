"""Start one script host (sandboxed unless `sandbox = "off"`) in its own cgroup, and end it.

The first process is started in a new session, joins the task's cgroup and takes the rlimits
before it execs, so everything the script starts is counted, limited and, at the end, killed:
`end` sends SIGTERM to every process of the task, waits the grace, then SIGKILLs what is left
and waits until the cgroup is empty before removing it. Without cgroups (a host that runs
unsandboxed on purpose) the process group stands in for it, which a `setsid` child escapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import resource
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from agent.sandbox.bwrap import bwrap_argv
from agent.sandbox.cgroup import LimitHit, TaskCgroup
from agent.sandbox.probe import Isolation
from agent.script_settings import MIB

SETUP_TIMEOUT_S = 15.0
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


class SandboxError(Exception):
    """The sandbox could not be set up for a task; str() says which step failed."""


class HostProcess(Protocol):
    """What the daemon uses of a script host's first process: the sandbox's (bubblewrap's),
    a child of the daemon, or a fork of the device's zygote (agent/zygote.py)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    @property
    def stdout(self) -> asyncio.StreamReader | None: ...

    @property
    def stderr(self) -> asyncio.StreamReader | None: ...

    async def wait(self) -> int: ...


class ScriptProcess:
    """A started script host and what belongs to it: its cgroup and its network helper."""

    def __init__(
        self,
        proc: HostProcess,
        cgroup: TaskCgroup | None,
        helper: asyncio.subprocess.Process | None,
        sandboxed: bool,
    ) -> None:
        self.proc = proc
        self.cgroup = cgroup
        self.helper = helper
        self.limit_hit: LimitHit | None = None
        self.sandboxed = sandboxed

    def kill(self) -> None:
        """SIGKILL every process of the task now (`end` still cleans up)."""
        self._signal(signal.SIGKILL)

    def _alive(self) -> bool:
        if self.cgroup is not None:
            return bool(self.cgroup.pids())
        return _group_alive(self.proc.pid)

    def _signal(self, sig: int) -> None:
        if self.cgroup is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
        elif sig == signal.SIGKILL:
            self.cgroup.kill()
        else:
            self.cgroup.signal_all(sig)

    async def settle(self, grace: float) -> None:
        """After the script host has gone (its channel closed), give its first process (bwrap,
        which reports the host's exit status) up to `grace` to exit by itself. bwrap waits for
        every process of the sandbox, so processes the script left behind make this wait the
        whole grace: only worth it when the exit status is all there is to tell."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await _until(lambda: self.proc.returncode is not None)

    async def end(self, grace: float) -> None:
        """End every process of the task: SIGTERM, `grace` seconds, SIGKILL; then clean up.

        Also used after a normal exit: whatever the script left running dies too. A second
        cancellation during the grace period goes straight to SIGKILL.
        """
        # A group found empty stays so (no process is left in it to start another): then there
        # is nothing to signal, which spares reading the cgroup's process lists again.
        alive = self._alive()
        try:
            if alive:
                self._signal(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(grace):
                        await self.proc.wait()
                        await _until(lambda: not self._alive())
        finally:
            if alive:
                self._signal(signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self.proc.wait()
            await self._release(grace)

    async def _release(self, grace: float) -> None:
        if self.helper is not None:
            with contextlib.suppress(ProcessLookupError):
                self.helper.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self.helper.wait()
        cgroup = self.cgroup
        if cgroup is None:
            return
        self.limit_hit = cgroup.limit_hit()
        # Killed processes leave the cgroup once reaped; rmdir fails until then.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await _until(lambda: _emptied(cgroup))


async def start_script_host(
    isolation: Isolation,
    task_id: str,
    task_dir: Path,
    command: list[str],
    env: dict[str, str],
    channel_fd: int,
    output_limit: int,
    sandbox_argv: list[str] | None = None,
    before_exec: Callable[[], None] | None = None,
) -> ScriptProcess:
    """Start `command` (the script host) for the task; its stdout/stderr are pipes.

    `sandbox_argv` replaces the sandbox's usual command line (a zygote's, agent/zygote.py: it
    then is the whole command, network policy included); `before_exec` runs in the child last
    before it execs."""
    settings = isolation.settings
    cgroup = None
    if isolation.cgroups is not None:
        try:
            cgroup = isolation.cgroups.create(task_id, isolation.limits)
        except OSError as exc:
            raise SandboxError(f"cannot create the task's cgroup: {exc}") from None
    join = cgroup.join_fds() if cgroup is not None else []
    spec = isolation.spec(task_dir)
    fds = [channel_fd]
    info_r = info_w = block_r = block_w = -1
    if spec is not None and spec.network == "outbound" and sandbox_argv is None:
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        fds += [info_w, block_r]
        spec = replace(spec, info_fd=info_w, block_fd=block_r)
    argv = bwrap_argv(spec, command) if spec is not None else command
    if sandbox_argv is not None:
        argv = sandbox_argv
    limits = (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, settings.open_files_max),
        (resource.RLIMIT_FSIZE, settings.file_size_max_mb * MIB),
    )
    starting = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            cwd=task_dir if spec is None else "/",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=fds,
            start_new_session=True,
            preexec_fn=_child_setup(join, limits, before_exec),
            limit=output_limit,
        )
    )
    try:
        proc, cancelled = await _whole(starting)
        if cancelled:
            await ScriptProcess(proc, cgroup, None, spec is not None).end(settings.kill_grace_s)
            raise asyncio.CancelledError
    except BaseException:
        for fd in (info_r, info_w, block_r, block_w):
            if fd >= 0:
                os.close(fd)
        if cgroup is not None:
            cgroup.remove()
        raise
    finally:
        for fd in join:
            os.close(fd)
    script = ScriptProcess(proc, cgroup, None, sandboxed=spec is not None)
    if info_r < 0:
        return script
    os.close(info_w)
    os.close(block_r)
    try:
        async with asyncio.timeout(SETUP_TIMEOUT_S):
            script.helper = await _outbound_network(isolation, info_r)
        os.write(block_w, b"1")
    except BaseException as exc:
        await script.end(settings.kill_grace_s)
        if isinstance(exc, Exception):
            raise SandboxError(f"cannot set up the outbound network: {exc}") from None
        raise
    finally:
        os.close(info_r)
        os.close(block_w)
    return script


async def _outbound_network(isolation: Isolation, info_fd: int) -> asyncio.subprocess.Process:
    """Give the sandbox's network namespace user-mode networking without the host's loopback."""
    info = json.loads(await _read_all(info_fd))
    pid = int(info["child-pid"])
    if os.geteuid() == 0:
        # Root may enter any namespace: name the network namespace by path, so slirp4netns does
        # not first join the sandbox's user namespace, where it would lose that right.
        target = ["--netns-type=path", f"/proc/{pid}/ns/net"]
    else:
        # The network namespace belongs to the user namespace bwrap made: join that first,
        # once it is mapped (bwrap reports the child before its map is written).
        await _until(lambda: _mapped(pid))
        target = [f"--userns-path=/proc/{pid}/ns/user", str(pid)]
    ready_r, ready_w = os.pipe()
    argv = [str(isolation.slirp4netns), "--configure", "--mtu=65520", "--disable-host-loopback"]
    argv += ["--ready-fd", str(ready_w), *target, "tap0"]
    try:
        helper = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            pass_fds=(ready_w,),
            preexec_fn=_child_setup([], ()),
        )
    finally:
        os.close(ready_w)
    try:
        if not await _read_all(ready_r, until_first_byte=True):
            raise SandboxError("slirp4netns exited before the network was up")
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            helper.kill()
        await helper.wait()
        raise
    finally:
        os.close(ready_r)
    return helper


async def _read_all(fd: int, until_first_byte: bool = False) -> bytes:
    """Read a pipe to its end (or its first byte) without blocking the event loop."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    data = bytearray()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        data.extend(chunk)
        if (not chunk or until_first_byte) and not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
    return bytes(data)


def _child_setup(
    join: list[int],
    limits: tuple[tuple[int, int], ...],
    before_exec: Callable[[], None] | None = None,
) -> Callable[[], None]:
    """What the forked child does before it execs: die with the daemon, join the task's
    cgroup, take the rlimits. Only syscalls: it runs between fork and exec."""

    def setup() -> None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        pid = str(os.getpid()).encode()
        for fd in join:
            os.write(fd, pid)
        for which, value in limits:
            resource.setrlimit(which, (value, value))
        if before_exec is not None:
            before_exec()

    return setup


def _group_alive(pgid: int) -> bool:
    """Whether a live process (not a zombie waiting for its reaper) is left in the group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # the process went away while we looked
        if int(group) == pgid and state != "Z":
            return True
    return False


def _mapped(pid: int) -> bool:
    return Path(f"/proc/{pid}/uid_map").read_text().strip() != ""


async def _whole(
    starting: asyncio.Future[asyncio.subprocess.Process],
) -> tuple[asyncio.subprocess.Process, bool]:
    """The started process, and whether the caller was cancelled meanwhile. The start is never
    cut short: CPython's subprocess transport, cancelled mid-start, kills only its direct child
    and then waits, unbounded, for pipes that the sandbox's other processes hold open (a task
    cancelled as its script started hung so). A start is a fork and an exec: waiting for it is
    short, and the caller then ends every process of the task the usual way."""
    cancelled = False
    while True:
        try:
            return await asyncio.shield(starting), cancelled
        except asyncio.CancelledError:
            if starting.cancelled():
                raise
            cancelled = True


def _emptied(cgroup: TaskCgroup) -> bool:
    # Removing fails while a process is in it: only then are there processes to kill.
    if cgroup.remove():
        return True
    cgroup.kill()
    return False


async def _until(condition: Callable[[], bool]) -> None:
    # No event tells when the last process of a group or cgroup is gone: poll.
    while True:
        if condition():
            return
        await asyncio.sleep(0.02)
