"""The host's live processes of a task, seen from outside its sandbox's pid namespace.

Every process a script host starts carries `DEVICE_AGENT_TASK_ID=<task>` in its environment
(agent/sweep.py), so the host's /proc finds them whatever pid namespace or session they are in.
"""

from __future__ import annotations

from pathlib import Path

from agent.sweep import tagged_processes


def task_processes(task_id: str) -> list[int]:
    """Live (not zombie) host pids tagged with `task_id`."""
    alive = []
    for pid in tagged_processes({task_id}):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive
