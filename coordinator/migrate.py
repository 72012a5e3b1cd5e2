"""Running the schema migrations of coordinator/migrations/ (Alembic, no alembic.ini needed).

Each function takes a synchronous SQLAlchemy connection (an AsyncConnection's `run_sync`) that
is inside a transaction the caller commits: an upgrade reaches head or changes nothing.
Migrations only go forward; going back is restoring a backup.

Every command checks the database's revision at start, so that check does not import Alembic
(a third of a command's start-up): the revisions are read from the migration files' own
`revision` and `down_revision` lines, and the database's from its `alembic_version` table.
tests/coordinator/test_db_version.py checks that this reading agrees with Alembic's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_REVISION = re.compile(r"""^revision = ["'](\w+)["']$""", re.M)
_DOWN_REVISION = re.compile(r"""^down_revision = (?:["'](\w+)["']|None)$""", re.M)


def _config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def revisions() -> dict[str, str | None]:
    """Every revision this coordinator knows -> the one before it (None for the first)."""
    found: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS_DIR / "versions").glob("r*.py")):
        text = path.read_text()
        revision, down = _REVISION.search(text), _DOWN_REVISION.search(text)
        assert revision and down, f"{path} names no revision or down_revision"
        found[revision.group(1)] = down.group(1)
    return found


def head() -> str:
    """The newest revision this coordinator knows."""
    known = revisions()
    (newest,) = set(known) - set(known.values())
    return newest


def is_known(revision: str) -> bool:
    return revision in revisions()


def current(connection: sa.Connection) -> str | None:
    """The database's revision (None: an empty alembic_version table); the table must exist."""
    return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def upgrade(connection: sa.Connection, *, stamp: str | None = None) -> None:
    """Upgrade to head; `stamp` first records that revision without running it (a database
    whose schema was checked to be that revision's)."""
    from alembic import command

    config = _config(connection)
    if stamp is not None:
        command.stamp(config, stamp)
    command.upgrade(config, "head")


def upgrade_to(connection: sa.Connection, revision: str) -> None:
    from alembic import command

    command.upgrade(_config(connection), revision)
