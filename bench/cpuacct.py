"""CPU used by a group of processes, from a cgroup v1 `cpuacct` group made for the bench.

/proc misses the CPU of processes killed before their parent reaped them (a script host's
sandbox is ended with SIGKILL), a cgroup does not: every process started inside the group,
however it ends, is counted. Processes join by `prefix()` (a command that moves itself in and
execs the rest) or `join()`.
"""

from __future__ import annotations

import os
from pathlib import Path

_ROOT = Path("/sys/fs/cgroup/cpuacct")


class CpuAccount:
    def __init__(self, name: str) -> None:
        if not (_ROOT / "cpuacct.usage").exists():
            raise SystemExit(f"the bench needs the cgroup v1 cpuacct hierarchy at {_ROOT}")
        self.dir = _ROOT / f"{name}-{os.getpid()}"
        self.dir.mkdir()

    def prefix(self) -> list[str]:
        """argv that puts the command that follows in the group, then execs it."""
        procs = str(self.dir / "cgroup.procs")
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', procs]

    def join(self, pid: int) -> None:
        (self.dir / "cgroup.procs").write_text(str(pid))

    def usage_s(self) -> float:
        return int((self.dir / "cpuacct.usage").read_text()) / 1e9

    def remove(self) -> None:
        """Move what is left back to the root group, and remove the group."""
        for pid in (self.dir / "cgroup.procs").read_text().split():
            try:
                (_ROOT / "cgroup.procs").write_text(pid)
            except ProcessLookupError:
                continue
        self.dir.rmdir()
