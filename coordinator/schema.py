"""The coordinator's tables, declared once for SQLite and PostgreSQL (the schema at the head
migration; coordinator/migrations/ builds it, and a test checks the two agree).

Portable types only: timestamps are Unix seconds (UTC) as double precision, JSON is TEXT holding
JSON, flags are INTEGER 0/1. `seq` columns order rows FIFO: they take numbers from
coordinator/dialect.py's `next_seqs` (a sequence on PostgreSQL, MAX + 1 under SQLite's single
writer), never from a clock, so rows made together keep the order they were made in.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

UNPINNED_QUEUE = "state = 'pending' AND origin = 'run' AND pin_device_id IS NULL"
"""The tasks any device may take. Queries say it in these very words, with literal values, so
that both databases can prove their partial index `tasks_unpinned` holds every row they want
(a bound parameter would not let them)."""
DATED = "deadline_at IS NOT NULL AND state IN ('pending', 'blocked')"
"""The tasks whose deadline may pass before they start (index `tasks_deadline`)."""
DELAYED = "not_before IS NOT NULL AND state = 'pending'"
"""The retries waiting out their delay (index `tasks_delayed`)."""
DEFAULT_RETRY_ON = '["device_lost", "agent_lost", "agent_restarted", "agent_stopped", "timeout"]'
"""The failure reasons a job retries unless it says otherwise: those that are the host's fault,
not the script's (JSON, as stored)."""
DELIVERY_DUE = "state = 'pending'"
"""The webhook deliveries still to send (index `webhook_deliveries_due`)."""
OPEN_PLANNED = "job_task_id IS NULL"
OPEN_UNPINNED_PLANNED = "job_task_id IS NULL AND pin_device_id IS NULL"


def _partial(name: str, *columns: str, where: str) -> sa.Index:
    """An index of the rows `where` holds for, on SQLite and PostgreSQL alike."""
    return sa.Index(name, *columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where))


Stamp = sa.Double
"""Unix seconds; `Double` is float8 on PostgreSQL (its `real` is float4, too coarse)."""

scripts = sa.Table(
    "scripts",
    metadata,
    sa.Column("sha256", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("script_sha256", sa.Text, sa.ForeignKey("scripts.sha256"), nullable=False),
    sa.Column("parameters", sa.Text, nullable=False),
    sa.Column("timeout_s", Stamp, nullable=False),
    sa.Column("automation_id", sa.Text),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False, server_default="devices_automation"),
    sa.Column("allow_sub_tasks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Column("updated_at", Stamp, nullable=False),
    # Paused: none of its tasks is given to a device (running ones go on).
    sa.Column("paused", sa.Integer, nullable=False, server_default="0"),
    # The retry policy of its tasks (each may override it, see `tasks`).
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("retry_delay_s", Stamp, nullable=False, server_default="10"),
    sa.Column("retry_backoff", Stamp, nullable=False, server_default="2"),
    sa.Column("retry_on", sa.Text, nullable=False, server_default=DEFAULT_RETRY_ON),
    # Fan-out limits: how deep sub-tasks may nest, and how many tasks the job may hold.
    sa.Column("max_depth", sa.Integer, nullable=False, server_default="5"),
    sa.Column("max_tasks", sa.Integer, nullable=False, server_default="10000"),
    # The JSON Schema a successful task's data must match (coordinator/output_schema.py).
    sa.Column("output_schema", sa.Text),
    # Where its tasks' events are POSTed, which events (a JSON list; NULL: every final state),
    # and the key their signatures are made with (docs/webhooks.md). The secret is NULL only
    # for jobs made before webhooks existed, until migration 0004 gave each one.
    sa.Column("webhook_url", sa.Text),
    sa.Column("webhook_events", sa.Text),
    sa.Column("webhook_secret", sa.Text),
    # Its tasks' browser settings (drivers/browser/options.py, JSON; the proxy password as it
    # was given: docs/security.md).
    sa.Column("browser", sa.Text),
    # What its runs keep besides their timeline (docs/timeline.md).
    sa.Column("keep_screenshots", sa.Integer, nullable=False, server_default="0"),
    sa.Column("screenshot_on_failure", sa.Integer, nullable=False, server_default="1"),
)

job_shares = sa.Table(
    "job_shares",
    metadata,
    sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id"), primary_key=True),
    sa.Column("owner", sa.Text, primary_key=True),
    sa.Column("access", sa.Text, nullable=False),
)

job_versions = sa.Table(
    "job_versions",
    metadata,
    sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("script_sha256", sa.Text, sa.ForeignKey("scripts.sha256"), nullable=False),
    sa.Column("created_at", Stamp, nullable=False),
)

tasks = sa.Table(
    "tasks",
    metadata,
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
    sa.Column("timeout_s", Stamp, nullable=False),
    sa.Column("parent_task_id", sa.Text),
    sa.Column("origin", sa.Text, nullable=False, server_default="run"),
    sa.Column("automation_variables", sa.Text),
    sa.Column("waiting", sa.Integer, nullable=False, server_default="0"),
    sa.Column("waiting_since", Stamp),
    sa.Column("checkpoint", sa.Text),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Column("assigned_at", Stamp),
    sa.Column("started_at", Stamp),
    sa.Column("finished_at", Stamp),
    sa.Column("seq", sa.BigInteger, nullable=False),
    # Minus the task's priority: the queue is (queue_rank, seq), ascending on both, so higher
    # priorities go first and equal ones FIFO. (An index of mixed directions would do the
    # same, but Alembic cannot compare one to the migrations on SQLite.)
    sa.Column("queue_rank", sa.Integer, nullable=False, server_default="0"),
    # Not given to a device after this moment: it ends `expired`.
    sa.Column("deadline_at", Stamp),
    # A retry is not given to a device before this moment.
    sa.Column("not_before", Stamp),
    # The retry policy's overrides; NULL takes the job's.
    sa.Column("max_attempts", sa.Integer),
    sa.Column("retry_delay_s", Stamp),
    sa.Column("retry_backoff", Stamp),
    sa.Column("retry_on", sa.Text),
    # 0 for a task made over the API, the parent's + 1 for a sub-task.
    sa.Column("depth", sa.Integer, nullable=False, server_default="0"),
    # How many of its dependencies have not succeeded yet (state `blocked` while > 0), and
    # whether other tasks depend on it.
    sa.Column("blocked_by", sa.Integer, nullable=False, server_default="0"),
    sa.Column("has_dependents", sa.Integer, nullable=False, server_default="0"),
    # The job's script version it runs (job_versions.version, with script_sha256).
    sa.Column("script_version", sa.Integer),
    # Overrides of the job's webhook (NULL: the job's).
    sa.Column("webhook_url", sa.Text),
    sa.Column("webhook_events", sa.Text),
    # Its browser settings, over the job's field by field (NULL: the job's).
    sa.Column("browser", sa.Text),
    # The dispatch queue, highest priority and then oldest first: the tasks pinned to one device
    # (equal on every column before priority, so walked in queue order; its (state) prefix also
    # finds the active tasks), and the unpinned ones apart (`pin_device_id IS NULL` does not
    # keep an index's order on PostgreSQL, which would sort the whole queue).
    sa.Index("tasks_queue", "state", "origin", "pin_device_id", "queue_rank", "seq"),
    _partial("tasks_unpinned", "queue_rank", "seq", where=UNPINNED_QUEUE),
    _partial("tasks_deadline", "deadline_at", where=DATED),
    _partial("tasks_delayed", "not_before", where=DELAYED),
    sa.Index("tasks_job", "job_id", "seq"),
    sa.Index("tasks_parent", "parent_task_id", "seq"),
    sa.Index("tasks_host", "host_id", "state"),
    # Which of the devices a dispatch pass offers are busy.
    sa.Index("tasks_device", "device_id", "state"),
    sa.Index("tasks_waiting", "job_id", "waiting", "waiting_since", "seq"),
    sa.Index("tasks_seq", "seq", unique=True),
)

task_dependencies = sa.Table(
    "task_dependencies",
    metadata,
    sa.Column("task_id", sa.Text, sa.ForeignKey("tasks.id"), primary_key=True),
    sa.Column("depends_on", sa.Text, sa.ForeignKey("tasks.id"), primary_key=True),
    sa.Index("task_dependencies_on", "depends_on"),
)

runs = sa.Table(
    "runs",
    metadata,
    # A task's earlier attempts, each written when it ended and was retried; the task's own row
    # holds its current (or last) attempt.
    sa.Column("task_id", sa.Text, sa.ForeignKey("tasks.id"), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("failure_reason", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("host_id", sa.Text),
    sa.Column("device_id", sa.Text),
    sa.Column("assigned_at", Stamp),
    sa.Column("started_at", Stamp),
    sa.Column("finished_at", Stamp),
)

planned_tasks = sa.Table(
    "planned_tasks",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("parent_task_id", sa.Text, nullable=False),
    sa.Column("input", sa.Text, nullable=False),
    sa.Column("pin_device_id", sa.Text),
    sa.Column("timeout_s", Stamp, nullable=False),
    sa.Column("job_task_id", sa.Text),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    # Open planned tasks (not yet job tasks), pinned to one device or unpinned, oldest first.
    _partial("planned_open", "pin_device_id", "seq", where=OPEN_PLANNED),
    _partial("planned_open_unpinned", "seq", where=OPEN_UNPINNED_PLANNED),
    sa.Index("planned_job", "job_id", "job_task_id"),
    sa.Index("planned_parent", "parent_task_id"),
    sa.Index("planned_seq", "seq", unique=True),
)

dumps = sa.Table(
    "dumps",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("task_id", sa.Text, nullable=False),
    sa.Column("job_id", sa.Text, nullable=False),
    sa.Column("job_task_id", sa.Text, sa.ForeignKey("tasks.id"), nullable=False),
    sa.Column("created_at", Stamp, nullable=False),
)

submissions = sa.Table(
    "submissions",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("task_id", sa.Text, sa.ForeignKey("tasks.id"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("finish", sa.Integer, nullable=False),
    sa.Column("created_at", Stamp, nullable=False),
)

files = sa.Table(
    "files",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("task_id", sa.Text, sa.ForeignKey("tasks.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("extension", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("public", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Index("files_task", "task_id", "seq"),
    sa.Index("files_seq", "seq", unique=True),
)

timeline_entries = sa.Table(
    "timeline_entries",
    metadata,
    # Each run's timeline (docs/timeline.md): one row per entry a host reported, by the run's
    # attempt and the entry's seq, so a batch the host sends again adds nothing.
    sa.Column("task_id", sa.Text, sa.ForeignKey("tasks.id"), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("at", Stamp, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("duration_s", Stamp),
    sa.Column("ok", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("size", sa.BigInteger),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    # A run's kept screenshots: bytes in the file store (store_files.write_blob), named by the
    # timeline entry that tells of them.
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("task_id", sa.Text, sa.ForeignKey("tasks.id"), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("extension", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Index("artifacts_run", "task_id", "attempt", "seq", unique=True),
)

hosts = sa.Table(
    "hosts",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("token_sha256", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", Stamp, nullable=False),
    sa.Column("last_seen_at", Stamp),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("remote_device_id", sa.Text, primary_key=True),
    sa.Column("host_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("properties", sa.Text, nullable=False),
    sa.Column("updated_at", Stamp, nullable=False),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    # One event of a task for its webhook, written in the transaction that made the event
    # (coordinator/store_webhooks.py) and POSTed by coordinator/webhooks.py until it is answered
    # 2xx or gives up. `body` is fixed when written, so every attempt sends the same bytes.
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("task_id", sa.Text, sa.ForeignKey("tasks.id"), nullable=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    # pending (to send, or being sent), delivered, or failed (gave up).
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # When it may be sent next: a replica claims it by moving this past its attempt's end.
    sa.Column("due_at", Stamp),
    sa.Column("give_up_at", Stamp, nullable=False),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("last_attempt_at", Stamp),
    sa.Column("delivered_at", Stamp),
    sa.Column("created_at", Stamp, nullable=False),
    _partial("webhook_deliveries_due", "due_at", where=DELIVERY_DUE),
    sa.Index("webhook_deliveries_job", "job_id", "created_at"),
    sa.Index("webhook_deliveries_task", "task_id"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("key_sha256", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", Stamp, nullable=False),
)

AUTOMATION_JOB_IDS = sa.select(jobs.c.id).where(
    jobs.c.type == "devices_automation", jobs.c.paused == 0
)
"""The jobs whose tasks devices run now (a manual job's tasks are never dispatched, a paused
job's not until it is resumed)."""
