"""Writing the task's id into a script host that was started before its task existed.

The daemon finds a task's processes by `DEVICE_AGENT_TASK_ID=<task>` in /proc/PID/environ
(agent/sweep.py). That file shows the environment block the kernel laid out at exec, which a
later `os.environ` change does not touch. A host started ahead of its task gets a placeholder
there; `retag` overwrites it in place (as setproctitle does with argv), so this process and what
it forks name the task, and sets `os.environ` too, for what it execs.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from agent.sweep import TAG_PLACEHOLDER, TASK_ENV

_ENV_START_FIELD = 47
"""Index of `env_start` (field 50 of proc(5)'s stat) among the fields after the command name."""


def retag(task_id: str) -> bool:
    """Put `task_id` in place of the placeholder; False if there is none or it does not fit."""
    placeholder = f"{TASK_ENV}={TAG_PLACEHOLDER}\0".encode()
    value = f"{TASK_ENV}={task_id}".encode()
    if len(value) >= len(placeholder):
        return False
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    start, end = int(fields[_ENV_START_FIELD]), int(fields[_ENV_START_FIELD + 1])
    block = ctypes.string_at(start, end - start)
    at = block.find(b"\0" + placeholder)
    if at < 0 and block.startswith(placeholder):
        at = -1
    elif at < 0:
        return False
    # Padding with NULs leaves empty entries after the tag, which /proc readers skip.
    ctypes.memmove(start + at + 1, value.ljust(len(placeholder), b"\0"), len(placeholder))
    os.environ[TASK_ENV] = task_id
    return True
