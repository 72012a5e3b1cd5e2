"""Finding and killing the script processes an earlier daemon left behind.

Every script host runs with `DEVICE_AGENT_TASK_ID=<task id>` in its environment, and its
children inherit it (a host started ahead of its task writes the id in when it gets the task:
agent/scripthost/tag.py). Script hosts die with the daemon (parent-death signal), but what they
started may not; after a crash the new daemon kills every process still tagged with a task it
held. A process that scrubs its own environment escapes this sweep (documented).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

TASK_ENV = "DEVICE_AGENT_TASK_ID"
TAG_BYTES = 200
TAG_PLACEHOLDER = "?" * TAG_BYTES
"""The tag of a host started ahead of its task: room for the task's id, written in later."""


def tag_fits(task_id: str) -> bool:
    """Whether a host started ahead (with the placeholder) can be tagged with `task_id`."""
    return len(task_id.encode()) < TAG_BYTES


def tagged_processes(task_ids: set[str], proc: Path = Path("/proc")) -> list[int]:
    """PIDs whose environment carries the tag of one of `task_ids`."""
    wanted = {f"{TASK_ENV}={t}".encode() for t in task_ids}
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone, or not ours to read
        if wanted.intersection(environ.split(b"\0")):
            found.append(int(entry.name))
    return found


def kill_tagged(task_ids: set[str]) -> list[int]:
    """SIGKILL every process tagged with one of `task_ids`; returns the PIDs signalled."""
    if not task_ids:
        return []
    killed = []
    for pid in tagged_processes(task_ids):
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    return killed
