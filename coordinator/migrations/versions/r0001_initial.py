"""Revision 0001: the schema of the coordinator before migrations (SQLite `user_version` 1).

A SQLite file made by that coordinator has these tables and columns and no `alembic_version`;
coordinator/db_version.py checks that and stamps it 0001. Types are the portable ones of
coordinator/schema.py (the same SQLite affinities as that schema's TEXT, INTEGER and REAL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _stamp(name: str, nullable: bool = False) -> sa.Column[float]:
    return sa.Column(name, sa.Double, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "scripts",
        sa.Column("sha256", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("script_sha256", sa.Text, sa.ForeignKey("scripts.sha256"), nullable=False),
        sa.Column("parameters", sa.Text, nullable=False),
        _stamp("timeout_s"),
        sa.Column("automation_id", sa.Text),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False, server_default="devices_automation"),
        sa.Column("allow_sub_tasks", sa.Integer, nullable=False, server_default="0"),
        _stamp("created_at"),
        _stamp("updated_at"),
    )
    op.create_table(
        "job_shares",
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id"), primary_key=True),
        sa.Column("owner", sa.Text, primary_key=True),
        sa.Column("access", sa.Text, nullable=False),
    )
    op.create_table(
        "job_versions",
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("script_sha256", sa.Text, sa.ForeignKey("scripts.sha256"), nullable=False),
        _stamp("created_at"),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("script_sha256", sa.Text, sa.ForeignKey("scripts.sha256"), nullable=False),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("pin_device_id", sa.Text),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("host_id", sa.Text),
        sa.Column("device_id", sa.Text),
        sa.Column("progress", sa.Text),
        sa.Column("progress_seq", sa.BigInteger),
        sa.Column("result", sa.Text),
        sa.Column("failure_reason", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
        _stamp("timeout_s"),
        sa.Column("parent_task_id", sa.Text),
        sa.Column("origin", sa.Text, nullable=False, server_default="run"),
        sa.Column("automation_variables", sa.Text),
        sa.Column("waiting", sa.Integer, nullable=False, server_default="0"),
        _stamp("waiting_since", nullable=True),
        sa.Column("checkpoint", sa.Text),
        _stamp("created_at"),
        _stamp("assigned_at", nullable=True),
        _stamp("started_at", nullable=True),
        _stamp("finished_at", nullable=True),
    )
    op.create_index("tasks_state", "tasks", ["state", "created_at"])
    op.create_index("tasks_job", "tasks", ["job_id", "created_at"])
    op.create_index("tasks_host", "tasks", ["host_id", "state"])
    op.create_index("tasks_waiting", "tasks", ["job_id", "waiting", "waiting_since"])
    op.create_table(
        "planned_tasks",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("parent_task_id", sa.Text, nullable=False),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("pin_device_id", sa.Text),
        _stamp("timeout_s"),
        sa.Column("job_task_id", sa.Text),
        _stamp("created_at"),
    )
    op.create_index("planned_open", "planned_tasks", ["job_task_id", "created_at"])
    op.create_index("planned_parent", "planned_tasks", ["parent_task_id"])
    op.create_table(
        "dumps",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("task_id", sa.Text, nullable=False),
        sa.Column("job_id", sa.Text, nullable=False),
        sa.Column("job_task_id", sa.Text, sa.ForeignKey("tasks.id"), nullable=False),
        _stamp("created_at"),
    )
    op.create_table(
        "submissions",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("task_id", sa.Text, sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("finish", sa.Integer, nullable=False),
        _stamp("created_at"),
    )
    op.create_table(
        "files",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("task_id", sa.Text, sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("extension", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("public", sa.Integer, nullable=False, server_default="0"),
        _stamp("created_at"),
    )
    op.create_index("files_task", "files", ["task_id", "created_at"])
    op.create_table(
        "hosts",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("token_sha256", sa.Text, nullable=False, unique=True),
        _stamp("created_at"),
        _stamp("last_seen_at", nullable=True),
    )
    op.create_table(
        "devices",
        sa.Column("remote_device_id", sa.Text, primary_key=True),
        sa.Column("host_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("properties", sa.Text, nullable=False),
        _stamp("updated_at"),
    )
    op.create_table(
        "api_keys",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("key_sha256", sa.Text, nullable=False, unique=True),
        _stamp("created_at"),
    )
