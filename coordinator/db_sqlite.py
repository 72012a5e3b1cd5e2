"""The SQLite file under a coordinator database: made private, checked to be SQLite, and put in
WAL mode once it is known to be ours.

WAL lets the CLI write tokens while `serve` runs. The mode is kept in the file, so it is set
only after the file passed the schema check: a file that is refused is left as it was.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.private_files import private_dir, private_sqlite


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


def use_wal(path: Path) -> None:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()
