"""The bubblewrap command line that runs one script host in its own sandbox.

What the script sees: the system's /usr (read-only), the interpreter and the packages it may
import (read-only, at their own paths), a few files of /etc that libraries need, its work dir at
/task (read-write, 0700, its own), a private /tmp, a minimal /dev and a /proc of its own pid
namespace. Nothing else of the host's file system exists for it.

Two ways to become an unprivileged user, chosen by who the daemon is:
- as root, bubblewrap runs privileged (no user namespace) and `setpriv` switches to the
  configured account before the interpreter starts, so the script runs as a real, dedicated uid
  with no capabilities, an empty bounding set and no_new_privs;
- as any other user, bubblewrap makes a user namespace in which the script is uid 65534, mapped
  to the daemon's own uid outside: the mount, pid, ipc, uts and network namespaces are what keep
  it from the daemon's files and processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.script_settings import NetworkPolicy
from agent.scripthost.taskns import WORKDIR

NAMESPACE_UID = 65534
_MERGED_USR = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_ETC = (
    "/etc/alternatives",
    "/etc/ca-certificates",
    "/etc/ssl",
    "/etc/hosts",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/resolv.conf",
)
_SETUP_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_DAC_OVERRIDE")


@dataclass(frozen=True)
class SandboxSpec:
    bwrap: str
    setpriv: str
    task_dir: Path
    read_only: tuple[Path, ...]
    network: NetworkPolicy
    as_root: bool
    uid: int
    gid: int
    info_fd: int | None = None
    block_fd: int | None = None


def bwrap_argv(spec: SandboxSpec, command: list[str]) -> list[str]:
    """bwrap's argv that runs `command` in the sandbox described by `spec`."""
    argv = [spec.bwrap, "--die-with-parent", "--new-session"]
    argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if spec.network != "host":
        argv.append("--unshare-net")
    if spec.as_root:
        argv += ["--cap-drop", "ALL"]
        for cap in _SETUP_CAPS:
            argv += ["--cap-add", cap]
    else:
        argv.append("--unshare-user")
        argv += ["--uid", str(NAMESPACE_UID), "--gid", str(NAMESPACE_UID)]
    argv += ["--hostname", "sandbox"]
    argv += _file_system(spec.read_only)
    argv += ["--bind", str(spec.task_dir), WORKDIR, "--chdir", WORKDIR]
    if spec.info_fd is not None:
        argv += ["--info-fd", str(spec.info_fd)]
    if spec.block_fd is not None:
        argv += ["--block-fd", str(spec.block_fd)]
    argv.append("--")
    if spec.as_root:
        argv += [
            spec.setpriv,
            f"--reuid={spec.uid}",
            f"--regid={spec.gid}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ]
    return argv + command


def zygote_argv(spec: SandboxSpec, sources: Mapping[Path, Path], command: list[str]) -> list[str]:
    """The command line that runs a device's zygote (agent/zygote.py) in its sandbox.

    The sandbox is the one above, with two differences the zygote's forks need to make their
    own (agent/scripthost/taskns.py): bubblewrap runs unprivileged, in a user namespace made by
    the scripts' account (as root, `setpriv` switches to it first, with the same restrictions),
    because a privileged bubblewrap covers parts of its /proc, and the kernel lets no user
    namespace below mount a /proc of its own then; and the root and /dev are read-only, as in
    a user namespace they would be the scripts' to write, and shared by the device's tasks.
    `sources` says where bubblewrap finds each read-only folder and the task dir, which the
    scripts' account may not be able to reach at their own paths (agent/sandbox/staging.py).
    """
    argv: list[str] = []
    if spec.as_root:
        argv += [
            spec.setpriv,
            f"--reuid={spec.uid}",
            f"--regid={spec.gid}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ]
    uid = spec.uid if spec.as_root else NAMESPACE_UID
    gid = spec.gid if spec.as_root else NAMESPACE_UID
    argv += [spec.bwrap, "--die-with-parent", "--new-session", "--unshare-user"]
    argv += ["--uid", str(uid), "--gid", str(gid)]
    argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if spec.network != "host":
        argv.append("--unshare-net")
    argv += ["--hostname", "sandbox"]
    argv += _file_system(spec.read_only, sources)
    argv += ["--bind", str(sources[spec.task_dir]), WORKDIR, "--chdir", WORKDIR]
    argv += ["--remount-ro", "/", "--remount-ro", "/dev", "--"]
    return argv + command


def _file_system(
    read_only: tuple[Path, ...], sources: Mapping[Path, Path] | None = None
) -> list[str]:
    # The private /tmp comes before the binds: an install under /tmp (a CI checkout) is then
    # bound on top of it instead of being hidden by it.
    argv = ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for name in _MERGED_USR:
        host = Path("/") / name
        if host.is_symlink():
            argv += ["--symlink", str(host.readlink()), str(host)]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), str(host)]
    for etc in _ETC:
        argv += ["--ro-bind-try", etc, etc]
    made: set[Path] = {Path("/"), Path("/tmp")}
    for path in sorted(set(read_only)):
        if any(path.is_relative_to(p) for p in (Path("/usr"), *read_only) if p != path):
            continue
        # bwrap copies the host's mode onto the parents it creates (/root is 0700): make them
        # traversable ourselves, as the unprivileged user must walk them to reach the binds.
        for parent in reversed(path.parents):
            if parent not in made:
                argv += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        source = path if sources is None else sources[path]
        argv += ["--ro-bind", str(source), str(path)]
    return argv
