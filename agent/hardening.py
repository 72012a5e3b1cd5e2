"""Process hardening for the daemon: keep its secrets out of reach of the scripts it runs.

Scripts are untrusted and may run under the daemon's own uid. `make_non_dumpable` stops any
process without CAP_SYS_PTRACE from reading the daemon's memory, environment or maps through
/proc (and rules out core dumps); `scrub_environment` takes the configuration's variables
(the host token among them) out of the environment, so that no child inherits them.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

PR_SET_DUMPABLE = 4
PRIVATE_UMASK = 0o077
"""Files and directories the process creates are its user's alone (0600 and 0700)."""

_libc = ctypes.CDLL(None, use_errno=True)


def make_non_dumpable() -> None:
    """prctl(PR_SET_DUMPABLE, 0): /proc/<pid>/{mem,environ,maps,...} become root's, and ptrace
    by the same uid is refused. An exec'ed child (Chromium, a script) gets its own flag."""
    if _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_DUMPABLE, 0): {os.strerror(errno)}")


def scrub_environment(prefix: str) -> None:
    """Remove every variable named `prefix...` from the environment, for good.

    `del os.environ[...]` calls unsetenv(), so no child process inherits the variable; but the
    kernel shows the environment the process was started with (/proc/<pid>/environ) from the
    initial block on its stack, which unsetenv() leaves as it was: those entries are zeroed.
    """
    for name in [name for name in os.environ if name.startswith(prefix)]:
        del os.environ[name]
    _wipe_initial_environment(prefix.encode())


def _wipe_initial_environment(prefix: bytes) -> None:
    stat = Path("/proc/self/stat").read_text()
    # Fields 50 and 51 of /proc/self/stat (1-based), counted after the command name, which
    # may hold spaces and so ends at the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    start, end = int(fields[47]), int(fields[48])
    block = ctypes.string_at(start, end - start)
    offset = 0
    for entry in block.split(b"\0"):
        if entry.startswith(prefix):
            ctypes.memset(start + offset, 0, len(entry))
        offset += len(entry) + 1
