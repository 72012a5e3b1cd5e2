"""The SQLite file under a coordinator database: made private, checked to be SQLite, and put in
WAL mode once it is known to be ours.

WAL lets the CLI write tokens while `serve` runs. The mode is kept in the file, so it is set
only after the file passed the schema check: a file that is refused is left as it was.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from agent.private_files import private_dir, private_sqlite

RETRY_S = 0.05


class NotSqlite(Exception):
    """The file is not a SQLite database; the message is SQLite's."""


def ready(path: Path) -> None:
    """Make the file's directory 0700 and the file (created if missing) 0600, then read its
    header; NotSqlite if it is not a SQLite database."""
    private_dir(path.parent)
    private_sqlite(path)
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA user_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise NotSqlite(str(exc)) from None
    finally:
        db.close()


def use_wal(path: Path, deadline_s: float) -> bool:
    """Put the file in WAL mode; False if other connections kept it busy for `deadline_s`.

    Leaving rollback-journal mode needs the file to itself. When two connections switch at once
    (commands starting together on a new database), each holds a read lock the other waits on,
    and SQLite answers SQLITE_BUSY at once, without its busy timeout, to break that deadlock: so
    the switch is tried again until the deadline."""
    end = time.monotonic() + deadline_s
    db = sqlite3.connect(path, timeout=deadline_s, isolation_level=None)
    try:
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                return True
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorname != "SQLITE_BUSY":
                    raise
            if time.monotonic() > end:
                return False
            time.sleep(RETRY_S)
    finally:
        db.close()
