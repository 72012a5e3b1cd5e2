"""Persistent browser profiles: a job's named cookies and storage, kept on the host between tasks.

A profile is the JSON of Playwright's `context.storage_state()` (cookies and each origin's
localStorage), at `<profiles_dir>/<job id>/<name>.json`: saved when a task's session closes,
given to the next context of a task of the same job that names it. Directories are 0700 and
files 0600 (they hold session cookies). One task at a time uses a profile: a second waits for
the first's session to close (and its state to be saved).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
"""A job id or profile name usable as a file name as it is (no '/', no '..')."""


class ProfileError(Exception):
    """A profile that cannot be used; the message says why."""


class Profiles:
    """The host's profiles, shared by its browser devices."""

    def __init__(self, root: Path | None) -> None:
        self._root = root
        self._locks: dict[Path, asyncio.Lock] = {}

    def path(self, job_id: str, name: str) -> Path:
        if self._root is None:
            raise ProfileError("this host keeps no browser profiles ([browser] profiles_dir)")
        for part in (job_id, name):
            if not SAFE_PART.match(part):
                raise ProfileError(f"{part!r} cannot name a profile's file")
        return self._root / job_id / f"{name}.json"

    def lock(self, path: Path) -> asyncio.Lock:
        """Held by the session using the profile at `path`, from its opening to its close."""
        return self._locks.setdefault(path, asyncio.Lock())


def load(path: Path) -> dict[str, Any] | None:
    """The saved state, or None for a profile never saved."""
    try:
        with path.open(encoding="utf-8") as fh:
            state: dict[str, Any] = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ProfileError(f"the profile {path.stem} cannot be read: {exc}") from None
    return state


def save(path: Path, state: dict[str, Any]) -> None:
    """Write the state whole (a crash leaves the old one or the new one, never half)."""
    path.parent.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(state, fh)
    temporary.replace(path)
