"""Where an unprivileged bubblewrap, run by the scripts' account, finds what it binds.

A zygote's bubblewrap runs as the scripts' account (agent/sandbox/bwrap.py, `zygote_argv`),
which may not be able to walk to the interpreter's install or the work root (/root is 0700).
So a root daemon starts it in a mount namespace of its own (made between fork and exec) where a
fresh tmpfs on /tmp holds a bind of each such folder under a short name; bubblewrap binds them
from there to their own paths in the sandbox. Nothing else of the host changes: the namespace
is the starting process's alone and goes with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from agent.scripthost.syscalls import (
    CLONE_NEWNS,
    MS_BIND,
    MS_NODEV,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
    mount,
    unshare,
)

STAGING = Path("/tmp")


def staged(paths: Iterable[Path]) -> dict[Path, Path]:
    """Each folder and where the staging namespace shows it."""
    return {path: STAGING / f"stage-{n}" for n, path in enumerate(sorted(set(paths)))}


def stage(places: Mapping[Path, Path]) -> None:
    """Between fork and exec, as root: this process's own mount namespace with `places`."""
    unshare(CLONE_NEWNS)
    mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    # Opened in the new namespace (a bind's source must be in the caller's), before /tmp is
    # covered: an install under /tmp stays reachable.
    fds = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in places}
    try:
        mount("tmpfs", str(STAGING), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        for path, place in places.items():
            place.mkdir(mode=0o755)
            mount(f"/proc/self/fd/{fds[path]}", str(place), None, MS_BIND | MS_REC, None)
    finally:
        for fd in fds.values():
            os.close(fd)
