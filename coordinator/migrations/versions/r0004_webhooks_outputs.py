"""Revision 0004: webhooks, output schemas and the script version each task runs
(docs/webhooks.md, docs/jobs.md).

Stored rows keep what they meant: no output schema, no webhook. Each job gets its webhook
secret here, as a new job gets one at creation. Each task gets the number of the job's newest
version of the script it holds (a script set twice is two versions with one digest: the newer
one's number).
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

# Written out here, not taken from coordinator/schema.py: a revision stays as it was shipped.
DELIVERY_DUE = "state = 'pending'"


def upgrade() -> None:
    for name in ("output_schema", "webhook_url", "webhook_events", "webhook_secret"):
        op.add_column("jobs", sa.Column(name, sa.Text))
    op.add_column("tasks", sa.Column("script_version", sa.Integer))
    op.add_column("tasks", sa.Column("webhook_url", sa.Text))
    op.add_column("tasks", sa.Column("webhook_events", sa.Text))
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("task_id", sa.Text, sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("due_at", sa.Double),
        sa.Column("give_up_at", sa.Double, nullable=False),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("last_attempt_at", sa.Double),
        sa.Column("delivered_at", sa.Double),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.create_index(
        "webhook_deliveries_due",
        "webhook_deliveries",
        ["due_at"],
        sqlite_where=sa.text(DELIVERY_DUE),
        postgresql_where=sa.text(DELIVERY_DUE),
    )
    op.create_index("webhook_deliveries_job", "webhook_deliveries", ["job_id", "created_at"])
    op.create_index("webhook_deliveries_task", "webhook_deliveries", ["task_id"])

    bind = op.get_bind()
    jobs = sa.table("jobs", sa.column("id", sa.Text), sa.column("webhook_secret", sa.Text))
    ids = list(bind.execute(sa.select(jobs.c.id)).scalars())
    if ids:
        bind.execute(
            jobs.update()
            .where(jobs.c.id == sa.bindparam("b_id"))
            .values(webhook_secret=sa.bindparam("b_secret")),
            [{"b_id": job_id, "b_secret": secrets.token_hex(32)} for job_id in ids],
        )
    op.execute(
        "UPDATE tasks SET script_version = (SELECT MAX(v.version) FROM job_versions v "
        "WHERE v.job_id = tasks.job_id AND v.script_sha256 = tasks.script_sha256)"
    )
