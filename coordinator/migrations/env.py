"""Alembic's environment for the coordinator's migrations.

They always run on a connection coordinator/migrate.py hands over, inside the transaction it
opened: Alembic neither connects nor commits, so an upgrade is all or nothing.
"""

from __future__ import annotations

from alembic import context

from coordinator.schema import metadata

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=metadata,
    # SQLite's DDL is transactional too (Alembic assumes it is not).
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
