"""Where the coordinator's database is: SQLite in the data directory (the default) or a
PostgreSQL URL from `--database` or the DEVICE_COORDINATOR_DATABASE environment variable.

The environment variable keeps a password off the command line (where `ps` shows it). A URL is
only ever shown with its password masked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError

DB_FILE_NAME = "coordinator.db"
DATABASE_ENV = "DEVICE_COORDINATOR_DATABASE"
_POSTGRESQL_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")


class UnusableDatabase(Exception):
    """The database cannot be used (bad URL, unreachable, not ours); the message says why."""


@dataclass(frozen=True)
class Location:
    url: sa.URL
    sqlite_file: Path | None
    """The file, for SQLite (None for PostgreSQL)."""

    def __str__(self) -> str:
        if self.sqlite_file is not None:
            return str(self.sqlite_file)
        return self.url.set(drivername="postgresql").render_as_string(hide_password=True)


def sqlite_location(data_dir: Path) -> Location:
    path = data_dir / DB_FILE_NAME
    return Location(sa.URL.create("sqlite+aiosqlite", database=str(path)), path)


def postgresql_location(text: str) -> Location:
    """The PostgreSQL database of URL `text`; UnusableDatabase (never echoing a password) if the
    text is not a postgresql:// URL naming a database."""
    try:
        url = sa.make_url(text)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise UnusableDatabase(
            "the database URL does not parse; expected postgresql://USER@HOST[:PORT]/DATABASE"
        ) from None
    shown = url.render_as_string(hide_password=True)
    if url.drivername not in _POSTGRESQL_SCHEMES:
        raise UnusableDatabase(
            f"the database URL {shown} is not postgresql://: only PostgreSQL is taken as a URL "
            "(SQLite, the default, is DATA_DIR/coordinator.db)"
        )
    if not url.database:
        raise UnusableDatabase(f"the database URL {shown} names no database (…/DATABASE)")
    return Location(url.set(drivername="postgresql+asyncpg"), None)


def database_location(data_dir: Path | None, database: Location | None) -> Location:
    """`database` (from `--database`) if given, else DEVICE_COORDINATOR_DATABASE if set, else
    SQLite in `data_dir`; UnusableDatabase if none of the three is given."""
    if database is not None:
        return database
    text = os.environ.get(DATABASE_ENV)
    if text:
        return postgresql_location(text)
    if data_dir is None:
        raise UnusableDatabase(f"give --data-dir, or --database (or {DATABASE_ENV}) for PostgreSQL")
    return sqlite_location(data_dir)
