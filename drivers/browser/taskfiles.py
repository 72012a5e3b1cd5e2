"""Files the browser driver writes into, and reads from, the task's folder for the script.

The folder is the script's own work dir: the script can put anything under any name there (a
symlink to a file of the host, a FIFO, a hard link) and the daemon may run as root. So a name is
opened without following symlinks, without blocking, and must be a regular file with one link,
which is then read or written through that same open descriptor (no check-then-use race).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_READ_BYTES = 50 * 1024 * 1024
"""Largest file set_input_files uploads (Playwright's own limit for a file given as bytes)."""


class TaskFileError(Exception):
    """The name is not a regular file the driver may use; the message goes to the script."""


def _open(path: Path, flags: int) -> int:
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        raise TaskFileError(f"no such saved file: {path.name}; save it with save_file") from None
    except OSError as exc:
        raise TaskFileError(f"{path.name} is not a regular file ({exc.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise TaskFileError(f"{path.name} is not a regular file of the task's folder")
    return fd


def write(path: Path, content: bytes, owner: tuple[int, int] | None) -> None:
    """Create or replace the file at `path` with `content`, owned by `owner` when given."""
    fd = _open(path, os.O_WRONLY | os.O_CREAT)
    try:
        os.ftruncate(fd, 0)
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        if owner is not None:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)


def read(path: Path) -> bytes:
    """The content of the regular file at `path` (at most MAX_READ_BYTES)."""
    fd = _open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size > MAX_READ_BYTES:
            raise TaskFileError(f"{path.name} is {size} bytes, over {MAX_READ_BYTES}")
        with os.fdopen(fd, "rb", closefd=False) as opened:
            return opened.read(MAX_READ_BYTES + 1)[:MAX_READ_BYTES]
    finally:
        os.close(fd)
