"""Revision 0006: runs' timelines and artifacts, and the jobs' screenshot options
(docs/timeline.md).

Stored jobs keep what they meant before: no screenshot kept but on failure (the default).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("keep_screenshots", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column(
        "jobs",
        sa.Column("screenshot_on_failure", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_table(
        "timeline_entries",
        sa.Column("task_id", sa.Text, sa.ForeignKey("tasks.id"), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("duration_s", sa.Double),
        sa.Column("ok", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("size", sa.BigInteger),
    )
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("task_id", sa.Text, sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("extension", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_index("artifacts_run", "artifacts", ["task_id", "attempt", "seq"], unique=True)
