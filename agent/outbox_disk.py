"""The outbox's disk-full mode: a reserve file beside the state file, and free-space checks.

A full disk must never stop a task from ending nor the outbox from shrinking. SQLite needs new
space for both: a commit appends its dirty pages to the WAL, and deleting a row dirties the
page that holds it (docs/outbox.md has the measurements). So the outbox keeps `reserve_bytes`
allocated in `<state file>.reserve`. When a commit fails for want of space, the file is
deleted: its space is what the task ends and the deletes of acknowledged items then use, and
the host takes no new work until the disk has room again and the reserve is back.

Every function here does file system calls and runs on the outbox's thread.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException, reserve: DiskReserve) -> bool:
    """Whether a failed commit failed for want of space.

    SQLite reports most writes that find no space as SQLITE_FULL, but a WAL or shared-memory
    write may come back as a generic I/O error: that one counts when the disk is indeed short.
    """
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        return True
    return code == sqlite3.SQLITE_IOERR and reserve.free_bytes() < reserve.size


class DiskReserve:
    """`size` bytes allocated in a file next to the state file, released when the disk is full."""

    def __init__(self, state_file: Path, size: int) -> None:
        self.path = state_file.with_name(state_file.name + ".reserve")
        self.size = size

    def free_bytes(self) -> int:
        """What the state file's file system has free for us (statvfs, unprivileged)."""
        st = os.statvfs(self.path.parent)
        return st.f_bavail * st.f_frsize

    def held(self) -> bool:
        try:
            return self.path.stat().st_blocks * 512 >= self.size
        except FileNotFoundError:
            return False

    def release(self) -> bool:
        """Delete the reserve; whether there was one to free."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def restore(self) -> bool:
        """Allocate the reserve (real blocks, not a sparse file); False if there is no room."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            if exc.errno not in _FULL_ERRNOS:
                raise
            self.release()  # a partial reserve would only hold space nobody may use
            return False
        return True

    def short(self, was_short: bool) -> bool:
        """Whether the disk is short of space now: the reserve is missing or too little is free.

        Hysteresis: the host goes short below `size` free besides the reserve and takes work
        again only at twice that, so it does not flap on a disk that hovers at the mark.
        """
        free = self.free_bytes()
        if not self.held():
            if free < 3 * self.size or not self.restore():
                return True
            free -= self.size
        return free < (2 if was_short else 1) * self.size
