"""Revision 0002: `seq` on tasks, planned_tasks and files, the FIFO order that replaces rowid.

Existing rows are numbered in the order the coordinator listed and dispatched them before
(created_at, then insertion: SQLite's rowid), so no queue changes order. On PostgreSQL each
table gets the sequence `<table>_seq_seq` that coordinator/dialect.py draws from. The indexes
that ordered by created_at now order by seq, and the dispatch queue gets its own.
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


def upgrade() -> None:
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
    op.create_index("tasks_job", "tasks", ["job_id", "seq"])
    op.create_index("tasks_waiting", "tasks", ["job_id", "waiting", "waiting_since", "seq"])
    op.create_index("planned_queue", "planned_tasks", ["job_task_id", "pin_device_id", "seq"])
    op.create_index("planned_job", "planned_tasks", ["job_id", "job_task_id"])
    op.create_index("files_task", "files", ["task_id", "seq"])
