"""The zygote: one device's script host, imported and warmed up once, forking one host per task.

`python -m agent.scripthost.zygote --fd N [--own-network]` runs in the device's sandbox
(agent/zygote.py starts it) with its control socket on fd N (agent/scripthost/forkwire.py). It
imports what a script host needs and builds its models, makes itself non-dumpable (no task can
read its memory or trace it, even where it could see it), says `ready`, and then only forks: it
never runs task code, so a fork of it carries nothing of any task.

Each fork is made in new namespaces (agent/scripthost/taskns.py): it is the first process of its
own pid namespace, the task's init. Before any task code, it:
1. keeps only its channel (fd 3), stdout and stderr, starts a session, says hello on the channel
   and waits for the daemon's go: the daemon moves it into the task's cgroup meanwhile (the hello
   carries its pid, as the daemon sees it, in SCM_CREDENTIALS), so all it starts is counted;
2. maps its uid and gid, makes its file system, mounts the namespace's /proc, drops every
   capability and forks the script host;
3. reaps whatever the task leaves to it and exits with the host's code (128 + the signal's number
   for a host killed by a signal, as bubblewrap reports it) once the host ends, or at once on
   the daemon's SIGTERM at a task's end, or dies with the zygote; the kernel then kills
   everything left in the namespace, as bubblewrap's init does;
4. the script host serves the task over the channel exactly as one started cold.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import NoReturn

from pydantic import ValidationError

from agent.scripthost import taskns
from agent.scripthost.forkwire import (
    FORK_FDS,
    MAX_MESSAGE_BYTES,
    ChildExited,
    ForkRequest,
    ZygoteReady,
)
from agent.scripthost.host import serve, warm_up
from agent.scripthost.syscalls import PR_SET_DUMPABLE, PR_SET_PDEATHSIG, fork_into, prctl

HELLO = b"h"
GO = b"g"
GO_TIMEOUT_S = 60.0
CHANNEL_FD = 3
EXIT_USAGE = 64
EXIT_SETUP = 71
"""A fork whose sandbox could not be made exits with this, having said why on its stderr."""


def main(argv: list[str]) -> NoReturn:
    own_network = "--own-network" in argv
    args = [a for a in argv if a != "--own-network"]
    if len(args) != 2 or args[0] != "--fd" or not args[1].isdigit():
        print("usage: python -m agent.scripthost.zygote --fd N [--own-network]", file=sys.stderr)
        os._exit(EXIT_USAGE)
    prctl(PR_SET_DUMPABLE, 0)
    warm_up()
    # What is built now is never collected: the forks' collector then skips it, and leaves its
    # pages shared with the zygote instead of copying each one it would visit.
    gc.collect()
    gc.freeze()
    cap_last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    control = socket.socket(fileno=int(args[1]))
    control.set_inheritable(False)
    control.send(ZygoteReady().model_dump_json().encode())
    _serve(control, cap_last, own_network, taskns.inherited())


def _serve(
    control: socket.socket, cap_last: int, own_network: bool, zygote: taskns.Inherited
) -> NoReturn:
    children: dict[int, tuple[int, int]] = {}  # pidfd -> (request id, pid)
    while True:
        readable, _, _ = select.select([control.fileno(), *children], [], [])
        for ready in readable:
            if ready == control.fileno():
                _fork(control, cap_last, own_network, zygote, children)
            else:
                request_id, pid = children.pop(ready)
                os.close(ready)
                _, status = os.waitpid(pid, 0)
                exited = ChildExited(id=request_id, returncode=os.waitstatus_to_exitcode(status))
                control.send(exited.model_dump_json().encode())


def _fork(
    control: socket.socket,
    cap_last: int,
    own_network: bool,
    zygote: taskns.Inherited,
    children: dict[int, tuple[int, int]],
) -> None:
    message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE_BYTES, FORK_FDS)
    if not message:
        os._exit(0)  # the daemon closed the control socket: it is ending the zygote
    try:
        request = ForkRequest.model_validate_json(message)
        if len(fds) != FORK_FDS:
            raise ValueError(f"a fork needs {FORK_FDS} descriptors, got {len(fds)}")
    except (ValidationError, ValueError) as exc:
        for fd in fds:
            os.close(fd)
        print(f"zygote: refused a fork request: {exc}", file=sys.stderr)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = fork_into(taskns.clone_flags(own_network))
    except OSError as exc:
        # Its channel closes with it: the daemon learns that this fork failed, and why here.
        print(f"zygote: cannot fork a script host: {exc}", file=sys.stderr)
        pid = None
    if pid == 0:
        _init(request, fds, cap_last, own_network, zygote)
    for fd in fds:
        os.close(fd)
    if pid is not None:
        children[os.pidfd_open(pid)] = (request.id, pid)


def _init(
    request: ForkRequest,
    fds: list[int],
    cap_last: int,
    own_network: bool,
    zygote: taskns.Inherited,
) -> NoReturn:
    """The fork: the first process of its namespaces, the task's init once it forks the host."""
    try:
        # It dies with the zygote, and then the kernel kills every process of its namespace.
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # As its namespace's init, it gets no signal it has no handler for (SIGKILL from
        # outside aside): the task can neither stop nor kill it. SIGTERM, the daemon's first
        # word at a task's end (or when the fork fails to get ready), ends it and with it the
        # namespace at once: a task that sends it only ends itself.
        signal.signal(signal.SIGTERM, _ended)
        channel, out, err = fds
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.dup2(channel, CHANNEL_FD)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.closerange(CHANNEL_FD + 1, os.sysconf("SC_OPEN_MAX"))
        os.setsid()
        # /proc/self/uid_map is written by this process: it must own its /proc entries.
        prctl(PR_SET_DUMPABLE, 1)
        os.write(CHANNEL_FD, HELLO)
        ready, _, _ = select.select([CHANNEL_FD], [], [], GO_TIMEOUT_S)
        if not ready or os.read(CHANNEL_FD, 1) != GO:
            raise RuntimeError("the daemon did not let it go")
        taskns.enter(request.task_dir, own_network, zygote)
        taskns.become_init(cap_last)
        prctl(PR_SET_DUMPABLE, 0)
        host = os.fork()
        if host:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _reap_until(host)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        prctl(PR_SET_DUMPABLE, 1)
    except BaseException as exc:
        os.write(2, f"script host fork: {type(exc).__name__}: {exc}\n".encode())
        os._exit(EXIT_SETUP)
    serve(CHANNEL_FD, warm=True)


def _ended(signum: int, _: FrameType | None) -> NoReturn:
    os._exit(128 + signum)


def _reap_until(host: int) -> NoReturn:
    """The task's init: reap every process the task leaves to it; exit with the host's code."""
    os.close(CHANNEL_FD)  # the channel ends when the host does
    while True:
        pid, status = os.wait()
        if pid == host:
            os._exit(_exit_code(status))


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    main(sys.argv[1:])
