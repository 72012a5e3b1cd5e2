"""Which database files this coordinator opens: its schema version, checked before any use.

`PRAGMA user_version` holds the schema version. A new file gets the current one. A file with no
version but tables (made before versions were recorded) is adopted only if its tables and
columns are exactly the current schema's. Anything else is refused with a message that names
the file, what differs, and what to do: there are no migrations, and a coordinator that ran on a
database it half understands would fail later, far from the cause.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 1
_ADVICE = "move it away or use another --data-dir"


class SchemaError(Exception):
    """The database file cannot be used by this coordinator; the message says why."""


def _columns(db: sqlite3.Connection) -> dict[str, list[str]]:
    tables = [
        str(r[0])
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {
        t: [
            str(c[0])
            for c in db.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (t,))
        ]
        for t in tables
    }


def _difference(found: dict[str, list[str]], schema: str) -> str | None:
    reference = sqlite3.connect(":memory:")
    try:
        reference.executescript(schema)
        expected = _columns(reference)
    finally:
        reference.close()
    for table, columns in expected.items():
        if table not in found:
            return f"it has no table {table}"
        if found[table] != columns:
            return f"its table {table} has columns {found[table]}, not {columns}"
    extra = sorted(set(found) - set(expected))
    return f"it has tables this coordinator does not know: {extra}" if extra else None


def check_and_stamp(db: sqlite3.Connection, path: Path, schema: str) -> None:
    """Raise SchemaError unless `db` is (or, if empty, becomes) this coordinator's schema."""
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        found = _columns(db)
    except sqlite3.DatabaseError as exc:
        raise SchemaError(f"{path} is not a usable SQLite file ({exc}); {_ADVICE}") from None
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"{path} has schema version {version}, newer than this coordinator's "
            f"{SCHEMA_VERSION}; run a newer coordinator, or {_ADVICE}"
        )
    if version < SCHEMA_VERSION and found:
        difference = _difference(found, schema)
        if difference is not None:
            raise SchemaError(
                f"{path} was made by another version of the coordinator: {difference}; {_ADVICE}"
            )
    db.executescript(schema)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
