"""Files only their owner can open: the state file, the coordinator's database and data dir.

Applied where each is opened, so that a file an older version (or another umask) made open to
others is made private too, not only new ones.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
SQLITE_SIBLINGS = ("-wal", "-shm", "-journal")


def private_sqlite(path: Path) -> None:
    """Create `path` if missing (an empty file is an empty SQLite database) and give it and its
    existing -wal, -shm and -journal files mode 0600. SQLite gives the files it makes beside a
    database the database's mode, so they stay private from then on."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in SQLITE_SIBLINGS)):
        if file.exists():
            file.chmod(PRIVATE_FILE_MODE)


def private_dir(path: Path) -> None:
    """Make `path` (and missing parents) if needed, and give `path` itself mode 0700."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR_MODE)
