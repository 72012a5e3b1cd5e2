"""A kernel cgroup per task: memory, pids and CPU limits, which limit was hit, and the kill.

Two layouts are supported, found from /proc/self/mountinfo and /proc/self/cgroup:
- cgroup v2 (production hosts under systemd): the daemon's own cgroup must be delegated to it
  (`Delegate=yes`). The daemon moves itself into a `daemon` leaf (the "no internal processes"
  rule) and makes each task a sibling leaf with memory, pids and cpu enabled.
- cgroup v1 (the test machines): for each of the memory, pids and cpu hierarchies, task cgroups
  are made under `device-agent/` inside the daemon's own cgroup of that hierarchy.

A task's cgroup is joined by the script host's first process before it execs (see
`TaskCgroup.join_fds`), so everything the script starts, `setsid` or not, is counted and killed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
LimitHit = Literal["memory_limit", "pids_limit"]


class CgroupUnavailable(Exception):
    """No usable cgroup tree with the memory, pids and cpu controllers; str() says why."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    pids: int
    cpus: float


@dataclass(frozen=True)
class CgroupTree:
    """Where task cgroups are made: v2 one dir for all controllers, v1 one dir per controller."""

    version: Literal[1, 2]
    bases: tuple[Path, ...]

    def describe(self) -> str:
        return f"cgroup v{self.version} ({', '.join(CONTROLLERS)}) under " + ", ".join(
            str(b) for b in self.bases
        )

    def create(self, task_id: str, limits: Limits) -> TaskCgroup:
        name = f"task-{re.sub(r'[^A-Za-z0-9_-]', '_', task_id)[:40]}-{uuid.uuid4().hex[:8]}"
        dirs = tuple(base / name for base in self.bases)
        made: list[Path] = []
        try:
            for d in dirs:
                d.mkdir(mode=0o700)
                made.append(d)
            cgroup = TaskCgroup(self.version, dirs)
            cgroup.set_limits(limits)
        except OSError:
            for d in made:
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise
        return cgroup


class TaskCgroup:
    """One task's cgroup (one dir per hierarchy on v1)."""

    def __init__(self, version: Literal[1, 2], dirs: tuple[Path, ...]) -> None:
        self.version = version
        self.dirs = dirs

    def _file(self, controller: str, name: str) -> Path:
        if self.version == 2:
            return self.dirs[0] / name
        return self.dirs[CONTROLLERS.index(controller)] / name

    def set_limits(self, limits: Limits) -> None:
        quota = max(1000, int(limits.cpus * CPU_PERIOD_US))
        if self.version == 2:
            _write(self._file("memory", "memory.max"), str(limits.memory_bytes))
            swap = self._file("memory", "memory.swap.max")
            if swap.exists():
                _write(swap, "0")
            _write(self._file("pids", "pids.max"), str(limits.pids))
            _write(self._file("cpu", "cpu.max"), f"{quota} {CPU_PERIOD_US}")
            return
        _write(self._file("memory", "memory.limit_in_bytes"), str(limits.memory_bytes))
        memsw = self._file("memory", "memory.memsw.limit_in_bytes")
        if memsw.exists():
            _write(memsw, str(limits.memory_bytes))
        _write(self._file("pids", "pids.max"), str(limits.pids))
        _write(self._file("cpu", "cpu.cfs_period_us"), str(CPU_PERIOD_US))
        _write(self._file("cpu", "cpu.cfs_quota_us"), str(quota))

    def join_fds(self) -> list[int]:
        """Open `cgroup.procs` of each dir; the child writes its pid to each before it execs.
        The caller closes them once the child has started."""
        return [os.open(d / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for d in self.dirs]

    def move(self, pid: int) -> None:
        """Move a process that is already running (a fork of a zygote) into the task's cgroup;
        what it starts from then on is counted here."""
        for d in self.dirs:
            _write(d / "cgroup.procs", str(pid))

    def limit_hit(self) -> LimitHit | None:
        """Which limit the kernel enforced during the task, if any (memory first: an OOM kill
        explains a death better than a refused fork)."""
        events = "memory.events" if self.version == 2 else "memory.oom_control"
        if _counter(self._file("memory", events), "oom_kill") > 0:
            return "memory_limit"
        if _counter(self._file("pids", "pids.events"), "max") > 0:
            return "pids_limit"
        return None

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return found

    def signal_all(self, sig: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill(self) -> None:
        """SIGKILL every process in it (v2 atomically through cgroup.kill)."""
        kill_file = self.dirs[0] / "cgroup.kill"
        if self.version == 2 and kill_file.exists():
            _write(kill_file, "1")
        else:
            self.signal_all(signal.SIGKILL)

    def remove(self) -> bool:
        """Remove the dirs; False while a process (or an unreaped zombie) is still in one."""
        for d in self.dirs:
            try:
                d.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                return False
        return True


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _counter(path: Path, key: str) -> int:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


def find_tree(proc: Path = Path("/proc/self")) -> CgroupTree:
    """The tree task cgroups go into; raises CgroupUnavailable naming what is missing."""
    mounts = _cgroup_mounts(proc / "mountinfo")
    own = _own_paths(proc / "cgroup")
    v1_missing = [c for c in CONTROLLERS if c not in mounts or c not in own]
    if v1_missing:
        # A hybrid host's v2 tree (/sys/fs/cgroup/unified) has no controllers: v1 comes first.
        if "2" not in mounts or "0" not in own:
            raise CgroupUnavailable(
                f"no cgroup v2 tree and no cgroup v1 {', '.join(v1_missing)} hierarchy"
            )
        return _v2_tree(Path(mounts["2"]) / own["0"].lstrip("/"))
    bases = []
    for controller in CONTROLLERS:
        bases.append(Path(mounts[controller]) / own[controller].lstrip("/") / "device-agent")
    for base in bases:
        try:
            base.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise CgroupUnavailable(f"cannot create {base}: {exc.strerror}") from None
    return CgroupTree(1, tuple(bases))


def _v2_tree(base: Path) -> CgroupTree:
    available = set((base / "cgroup.controllers").read_text().split())
    missing = [c for c in CONTROLLERS if c not in available]
    if missing:
        raise CgroupUnavailable(
            f"cgroup v2 at {base} lacks {', '.join(missing)} (is Delegate=yes set on the unit?)"
        )
    try:
        enabled = set((base / "cgroup.subtree_control").read_text().split())
        if not set(CONTROLLERS) <= enabled:
            leaf = base / "daemon"
            leaf.mkdir(mode=0o755, exist_ok=True)
            for pid in (base / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    _write(leaf / "cgroup.procs", pid)
            _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))
    except OSError as exc:
        raise CgroupUnavailable(
            f"cannot delegate cgroup v2 controllers under {base}: {exc.strerror} "
            "(run the daemon as its systemd unit, which sets Delegate=yes)"
        ) from None
    return CgroupTree(2, (base,))


def _cgroup_mounts(mountinfo: Path) -> dict[str, str]:
    """Controller name (or "2" for the v2 tree) -> its mount point."""
    found: dict[str, str] = {}
    for line in mountinfo.read_text().splitlines():
        fields, _, tail = line.partition(" - ")
        parts = tail.split()
        if len(parts) < 3:
            continue
        mount_point = fields.split()[4]
        if parts[0] == "cgroup2":
            found.setdefault("2", mount_point)
        elif parts[0] == "cgroup":
            for option in parts[2].split(","):
                if option in CONTROLLERS:
                    found.setdefault(option, mount_point)
    return found


def _own_paths(cgroup_file: Path) -> dict[str, str]:
    """Controller name (or "0" for the v2 tree) -> this process's cgroup path in it."""
    found: dict[str, str] = {}
    for line in cgroup_file.read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and not controllers:
            found["0"] = path
        for controller in controllers.split(","):
            if controller in CONTROLLERS:
                found[controller] = path
    return found
