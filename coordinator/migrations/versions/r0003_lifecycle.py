"""Revision 0003: the task lifecycle (docs/states.md): retries and their runs, priority,
deadlines, dependencies, job pause and fan-out limits.

Every new column has a default that keeps what stored rows meant: one attempt, priority 0, no
deadline, no dependency, not paused. The two queue indexes gain `queue_rank` (minus the priority:
highest first) before `seq`, so equal priorities stay FIFO.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

# Written out here, not taken from coordinator/schema.py: a revision stays as it was shipped.
UNPINNED_QUEUE = "state = 'pending' AND origin = 'run' AND pin_device_id IS NULL"
DATED = "deadline_at IS NOT NULL AND state IN ('pending', 'blocked')"
DELAYED = "not_before IS NOT NULL AND state = 'pending'"
DEFAULT_RETRY_ON = '["device_lost", "agent_lost", "agent_restarted", "agent_stopped", "timeout"]'

_JOB_COLUMNS = [
    sa.Column("paused", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("retry_delay_s", sa.Double, nullable=False, server_default="10"),
    sa.Column("retry_backoff", sa.Double, nullable=False, server_default="2"),
    sa.Column("retry_on", sa.Text, nullable=False, server_default=DEFAULT_RETRY_ON),
    sa.Column("max_depth", sa.Integer, nullable=False, server_default="5"),
    sa.Column("max_tasks", sa.Integer, nullable=False, server_default="10000"),
]
_TASK_COLUMNS = [
    sa.Column("queue_rank", sa.Integer, nullable=False, server_default="0"),
    sa.Column("deadline_at", sa.Double),
    sa.Column("not_before", sa.Double),
    sa.Column("max_attempts", sa.Integer),
    sa.Column("retry_delay_s", sa.Double),
    sa.Column("retry_backoff", sa.Double),
    sa.Column("retry_on", sa.Text),
    sa.Column("depth", sa.Integer, nullable=False, server_default="0"),
    sa.Column("blocked_by", sa.Integer, nullable=False, server_default="0"),
    sa.Column("has_dependents", sa.Integer, nullable=False, server_default="0"),
]


def _partial_index(name: str, columns: list[str], where: str) -> None:
    op.create_index(
        name, "tasks", columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where)
    )


def upgrade() -> None:
    for column in _JOB_COLUMNS:
        op.add_column("jobs", column)
    for column in _TASK_COLUMNS:
        op.add_column("tasks", column)
    op.drop_index("tasks_queue", table_name="tasks")
    op.drop_index("tasks_unpinned", table_name="tasks")
    op.create_index(
        "tasks_queue", "tasks", ["state", "origin", "pin_device_id", "queue_rank", "seq"]
    )
    _partial_index("tasks_unpinned", ["queue_rank", "seq"], UNPINNED_QUEUE)
    _partial_index("tasks_deadline", ["deadline_at"], DATED)
    _partial_index("tasks_delayed", ["not_before"], DELAYED)
    op.create_index("tasks_parent", "tasks", ["parent_task_id", "seq"])
    op.create_table(
        "task_dependencies",
        sa.Column("task_id", sa.Text, sa.ForeignKey("tasks.id"), primary_key=True),
        sa.Column("depends_on", sa.Text, sa.ForeignKey("tasks.id"), primary_key=True),
    )
    op.create_index("task_dependencies_on", "task_dependencies", ["depends_on"])
    op.create_table(
        "runs",
        sa.Column("task_id", sa.Text, sa.ForeignKey("tasks.id"), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("failure_reason", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("host_id", sa.Text),
        sa.Column("device_id", sa.Text),
        sa.Column("assigned_at", sa.Double),
        sa.Column("started_at", sa.Double),
        sa.Column("finished_at", sa.Double),
    )
