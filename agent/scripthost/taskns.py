"""The sandbox a script host forked from a zygote makes for its task, before any of it runs.

The zygote (agent/scripthost/zygote.py) runs in the device's bubblewrap sandbox and never runs
task code; each task's script host is a fork of it. The fork gives itself, without privilege,
what bubblewrap gives a script host started cold (docs/security.md, "The zygote"):
- a user namespace that maps only its own uid and gid, and with it new mount, pid, ipc, uts,
  cgroup and (unless the network is the host's) network namespaces, `lo` up: the zygote makes
  them as it forks (`clone_flags`), so that the fork is the first process of its pid namespace
  (the task's init) and forks the script host;
- its own work dir bound onto /task, covering the zygote's /task, the folder that holds every
  task dir of the device; a fresh tmpfs on /tmp and on /dev/shm; the zygote's root and /dev
  are read-only (bwrap's --remount-ro), so nothing else is left to write;
- a /proc of its pid namespace only;
- then no capability at all (bounding and ambient sets too) and no_new_privs, so that the task
  cannot remove a mount; mounts inherited from the zygote's namespace are locked by the kernel
  (MNT_LOCKED): they can be covered, never removed.

The calls themselves are agent/scripthost/syscalls.py.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from agent.scripthost.syscalls import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
    PR_SET_NO_NEW_PRIVS,
    clear_capabilities,
    mount,
    prctl,
)

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
WORKDIR = "/task"
"""The task's work dir in every sandbox (agent/sandbox/bwrap.py takes it from here)."""


class TaskNamespaceError(Exception):
    """The fork was given something that is not a task dir; str() says what."""


def clone_flags(own_network: bool) -> int:
    """The namespaces a fork is made with (agent/scripthost/syscalls.py, `fork_into`)."""
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    return flags | CLONE_NEWCGROUP | (CLONE_NEWNET if own_network else 0)


@dataclass(frozen=True)
class Inherited:
    """What every fork inherits of the zygote, read once in the zygote (its ids and mounts never
    change), so that no fork reads it again: in the fork, the ids read as the overflow ids until
    mapped."""

    uid: int
    gid: int
    under_tmp: tuple[str, ...]
    """The outermost mount points strictly below /tmp."""
    shm: bool
    """Whether there is a /dev/shm to cover."""


def inherited() -> Inherited:
    """In the zygote: what its forks inherit."""
    return Inherited(os.getuid(), os.getgid(), _mounts_under("/tmp"), Path("/dev/shm").is_dir())


def enter(task_dir_name: str, own_network: bool, zygote: Inherited) -> None:
    """In the fork, in its new namespaces, before anything of the task: its uid and gid maps
    and file system (see above); then `become_init`."""
    if not task_dir_name or "/" in task_dir_name or task_dir_name in (".", ".."):
        raise TaskNamespaceError(f"not a task dir name: {task_dir_name!r}")
    uid, gid = zygote.uid, zygote.gid
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    if own_network:
        _loopback_up()
    mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    # Opened in this namespace (a bind takes its source from the caller's own namespace), before
    # /task and /tmp are covered.
    own = os.open(f"{WORKDIR}/{task_dir_name}", os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
    kept = [(p, os.open(p, os.O_PATH)) for p in zygote.under_tmp]
    try:
        mount(f"/proc/self/fd/{own}", WORKDIR, None, MS_BIND | MS_REC, None)
        os.chdir(WORKDIR)
        mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
        # An install under /tmp (a CI checkout) was bound over the zygote's /tmp: bind it again.
        for path, fd in kept:
            Path(path).mkdir(mode=0o755, parents=True, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
        if zygote.shm:
            mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    finally:
        os.close(own)
        for _, fd in kept:
            os.close(fd)


def become_init(cap_last: int) -> None:
    """In the first process of the new pid namespace, once it `enter`ed: its own /proc, then no
    capability and no_new_privs for it and every process it starts."""
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    drop_privileges(cap_last)


def drop_privileges(cap_last: int) -> None:
    """No capability left in any set (bounding and ambient too), and no_new_privs."""
    clear_capabilities(cap_last)
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def _loopback_up() -> None:
    """A new network namespace's `lo` is down; bubblewrap brings it up, and so does this."""
    request = struct.Struct("16sH")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = request.unpack(fcntl.ioctl(sock, _SIOCGIFFLAGS, request.pack(b"lo", 0)))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, request.pack(b"lo", flags | _IFF_UP))


def _mounts_under(top: str) -> tuple[str, ...]:
    """The outermost mount points strictly below `top`, from this namespace's mount table."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point.startswith(top + "/"):
            points.append(point)
    return tuple(p for p in sorted(points) if not any(p.startswith(q + "/") for q in points))
