"""Running the schema migrations of coordinator/migrations/ (Alembic, no alembic.ini needed).

Each function takes a synchronous SQLAlchemy connection (an AsyncConnection's `run_sync`) that
is inside a transaction the caller commits: an upgrade reaches head or changes nothing.
Migrations only go forward; going back is restoring a backup.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision this coordinator knows."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None, f"no migrations in {MIGRATIONS_DIR}"
    return revision


def is_known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except CommandError:
        return False


def current(connection: sa.Connection) -> str | None:
    """The database's revision (None: no alembic_version table, or an empty one)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: sa.Connection, *, stamp: str | None = None) -> None:
    """Upgrade to head; `stamp` first records that revision without running it (a database
    whose schema was checked to be that revision's)."""
    config = _config(connection)
    if stamp is not None:
        command.stamp(config, stamp)
    command.upgrade(config, "head")


def upgrade_to(connection: sa.Connection, revision: str) -> None:
    command.upgrade(_config(connection), revision)
