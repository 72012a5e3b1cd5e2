"""Revision 0005: browser settings of jobs and tasks (docs/jobs.md, `browser`).

Stored rows keep what they meant: no browser settings.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("browser", sa.Text))
    op.add_column("tasks", sa.Column("browser", sa.Text))
