"""Revision 0002: `seq` on tasks, planned_tasks and files, the FIFO order that replaces rowid.

Existing rows are numbered in the order the coordinator listed and dispatched them before
(created_at, then insertion: SQLite's rowid), so no queue changes order. On PostgreSQL each
table gets the sequence `<table>_seq_seq` that coordinator/dialect.py draws from. The indexes
that ordered by created_at now order by seq, and the dispatch queue gets its own. Files from the
last coordinator before migrations may carry two indexes of its own (`tasks_queue` on
created_at, `tasks_device`): they are replaced too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

_REPLACED_INDEXES = {
    "tasks": ("tasks_state", "tasks_job", "tasks_waiting"),
    "planned_tasks": ("planned_open",),
    "files": ("files_task",),
}
_SEQ_INDEXES = {"tasks": "tasks_seq", "planned_tasks": "planned_seq", "files": "files_seq"}
# Written out here, not taken from coordinator/schema.py: a revision stays as it was shipped.
UNPINNED_QUEUE = "state = 'pending' AND origin = 'run' AND pin_device_id IS NULL"
OPEN_PLANNED = "job_task_id IS NULL"
OPEN_UNPINNED_PLANNED = "job_task_id IS NULL AND pin_device_id IS NULL"


def _number_rows(table: str) -> None:
    """Fill `seq` with 1, 2, ... in (created_at, insertion) order."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"UPDATE {table} SET seq = o.n FROM (SELECT id, ROW_NUMBER() OVER "
            f"(ORDER BY created_at, id) AS n FROM {table}) AS o WHERE {table}.id = o.id"
        )
        op.execute(f"CREATE SEQUENCE {table}_seq_seq AS BIGINT OWNED BY {table}.seq")
        op.execute(
            f"SELECT setval('{table}_seq_seq', COALESCE(MAX(seq), 0) + 1, false) FROM {table}"
        )
    else:
        # A correlated lookup into the numbered rows (not UPDATE ... FROM, which needs SQLite
        # 3.33); SQLite indexes the materialised numbering for it.
        op.execute(
            f"UPDATE {table} SET seq = (SELECT o.n FROM (SELECT rowid AS r, ROW_NUMBER() OVER "
            f"(ORDER BY created_at, rowid) AS n FROM {table}) AS o WHERE o.r = {table}.rowid)"
        )


def _partial_index(name: str, table: str, columns: list[str], where: str) -> None:
    op.create_index(
        name, table, columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where)
    )


def upgrade() -> None:
    for index in ("tasks_queue", "tasks_device"):
        op.execute(f"DROP INDEX IF EXISTS {index}")
    for table, indexes in _REPLACED_INDEXES.items():
        for index in indexes:
            op.drop_index(index, table_name=table)
        op.add_column(table, sa.Column("seq", sa.BigInteger, nullable=True))
        _number_rows(table)
        # SQLite cannot add NOT NULL to a column in place: batch mode copies the table.
        with op.batch_alter_table(table) as batch:
            batch.alter_column("seq", existing_type=sa.BigInteger, nullable=False)
        op.create_index(_SEQ_INDEXES[table], table, ["seq"], unique=True)
    op.create_index("tasks_queue", "tasks", ["state", "origin", "pin_device_id", "seq"])
    _partial_index("tasks_unpinned", "tasks", ["seq"], UNPINNED_QUEUE)
    op.create_index("tasks_job", "tasks", ["job_id", "seq"])
    op.create_index("tasks_device", "tasks", ["device_id", "state"])
    op.create_index("tasks_waiting", "tasks", ["job_id", "waiting", "waiting_since", "seq"])
    _partial_index("planned_open", "planned_tasks", ["pin_device_id", "seq"], OPEN_PLANNED)
    _partial_index("planned_open_unpinned", "planned_tasks", ["seq"], OPEN_UNPINNED_PLANNED)
    op.create_index("planned_job", "planned_tasks", ["job_id", "job_task_id"])
    op.create_index("files_task", "files", ["task_id", "seq"])
