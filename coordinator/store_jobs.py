"""Stored jobs, their owners and shares, and their scripts (each version kept, by SHA-256).

A job's `owner` is the name of the API key that created it. Other owners reach a job through a
share: `shared_view` or `shared_edit` (docs/jobs.md says what each allows).

Writers that must see a job as it stands while they act on it (adding tasks under its limits,
cancelling or deleting it) first take its row with `lock_job`: replicas on one PostgreSQL
database then do so one at a time (on SQLite every transaction is alone anyway).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from coordinator import schema as t
from coordinator.db import new_id, now
from coordinator.db_conn import Conn, Hot
from coordinator.dialect import insert
from coordinator.retry_policy import RetryPolicy, job_policy
from drivers.browser.options import BrowserOptions

JobType = Literal["devices_automation", "manual"]
DEFAULT_MAX_DEPTH = 5
DEFAULT_MAX_TASKS = 10000
"""A job's fan-out limits unless it says otherwise (coordinator/fan_out.py), as in the schema."""
Access = Literal["shared_view", "shared_edit"]


@dataclass(frozen=True)
class JobOutcome:
    """What of a task's job decides how the task's end is taken (coordinator/task_end.py): the
    schema its data must match (JSON text), and whether it has a webhook."""

    output_schema: str | None
    webhook_url: str | None


@dataclass(frozen=True)
class JobRow:
    id: str
    name: str
    script_sha256: str
    parameters: dict[str, Any]
    timeout_s: float
    automation_id: str | None
    owner: str
    type: JobType
    allow_sub_tasks: bool
    shares: dict[str, Access]
    """Other owner -> their access."""
    created_at: float
    updated_at: float
    versions: list[str]
    """Script SHA-256s, oldest first; the last one is the current `script_sha256`."""
    retry: RetryPolicy
    paused: bool
    """None of its tasks is given to a device (those running go on)."""
    max_depth: int
    """How deep sub-tasks may nest: a task made over the API is depth 0, its sub-tasks 1, ..."""
    max_tasks: int
    """How many tasks (open planned ones included) the job may hold."""
    output_schema: dict[str, Any] | None = None
    """The JSON Schema its tasks' success data must match (coordinator/output_schema.py)."""
    webhook_url: str | None = None
    webhook_events: list[str] | None = None
    """None: every final state (coordinator/store_webhooks.py)."""
    browser: BrowserOptions | None = None
    """Its tasks' browser settings (each task's own override them field by field)."""
    keep_screenshots: bool = False
    """Every screenshot its scripts take is kept with the run (docs/timeline.md)."""
    screenshot_on_failure: bool = True
    """A failed run's screen is kept with it."""
    webhook_secret: str | None = None
    """The key of its deliveries' signatures; None only for a job stored before migration 0004
    (which gave each one)."""

    @property
    def version(self) -> int:
        """The number of its current script version (versions are numbered 1, 2, ...)."""
        return len(self.versions)

    def access_of(self, owner: str) -> Literal["owner", "shared_view", "shared_edit"] | None:
        """What `owner` may do with this job: own it, a share, or nothing (None)."""
        if owner == self.owner:
            return "owner"
        return self.shares.get(owner)


async def put_script(conn: Conn, source: str) -> str:
    sha = hashlib.sha256(source.encode()).hexdigest()
    await conn.execute(
        insert(conn, t.scripts)
        .values(sha256=sha, source=source)
        .on_conflict_do_nothing(index_elements=[t.scripts.c.sha256])
    )
    return sha


async def get_script(conn: Conn, sha256: str) -> str | None:
    source = await conn.scalar(_SCRIPT, {"b_sha": sha256})
    return None if source is None else str(source)


async def _add_version(conn: Conn, job_id: str, sha: str, stamp: float) -> None:
    v = t.job_versions.c
    await conn.execute(
        sa.insert(t.job_versions).from_select(
            [v.job_id, v.version, v.script_sha256, v.created_at],
            sa.select(
                sa.literal(job_id, sa.Text),
                sa.func.coalesce(sa.func.max(v.version), 0) + 1,
                sa.literal(sha, sa.Text),
                sa.literal(stamp, t.Stamp),
            ).where(v.job_id == job_id),
        )
    )


async def create_job(
    conn: Conn,
    *,
    name: str,
    source: str,
    parameters: dict[str, Any],
    timeout_s: float,
    automation_id: str | None,
    owner: str,
    job_type: JobType = "devices_automation",
    allow_sub_tasks: bool = False,
    retry: RetryPolicy | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_tasks: int = DEFAULT_MAX_TASKS,
    output_schema: dict[str, Any] | None = None,
    webhook_url: str | None = None,
    webhook_events: Sequence[str] | None = None,
    browser: BrowserOptions | None = None,
    keep_screenshots: bool = False,
    screenshot_on_failure: bool = True,
) -> JobRow:
    job_id = new_id()
    stamp = now()
    sha = await put_script(conn, source)
    await conn.execute(
        sa.insert(t.jobs).values(
            id=job_id,
            name=name,
            script_sha256=sha,
            parameters=json.dumps(parameters),
            timeout_s=timeout_s,
            automation_id=automation_id,
            owner=owner,
            type=job_type,
            allow_sub_tasks=int(allow_sub_tasks),
            created_at=stamp,
            updated_at=stamp,
            **({} if retry is None else _retry_columns(retry)),
            max_depth=max_depth,
            max_tasks=max_tasks,
            output_schema=_json_text(output_schema),
            webhook_url=webhook_url,
            webhook_events=None if webhook_events is None else json.dumps(list(webhook_events)),
            webhook_secret=secrets.token_hex(32),
            browser=browser_text(browser),
            keep_screenshots=int(keep_screenshots),
            screenshot_on_failure=int(screenshot_on_failure),
        )
    )
    await _add_version(conn, job_id, sha, stamp)
    job = await get_job(conn, job_id)
    assert job is not None
    return job


async def set_job_script(conn: Conn, job_id: str, source: str) -> JobRow | None:
    """Make `source` the job's current script version; None if there is no such job."""
    if await get_job(conn, job_id) is None:
        return None
    stamp = now()
    sha = await put_script(conn, source)
    await conn.execute(
        sa.update(t.jobs).where(t.jobs.c.id == job_id).values(script_sha256=sha, updated_at=stamp)
    )
    await _add_version(conn, job_id, sha, stamp)
    return await get_job(conn, job_id)


def browser_text(options: BrowserOptions | None) -> str | None:
    """Browser settings as stored: the fields given (a task's null clears its job's field)."""
    return None if options is None else options.model_dump_json(exclude_unset=True)


def browser_of(text: str | None) -> BrowserOptions | None:
    return None if text is None else BrowserOptions.model_validate_json(text)


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _retry_columns(policy: RetryPolicy) -> dict[str, Any]:
    return {
        "max_attempts": policy.max_attempts,
        "retry_delay_s": policy.retry_delay_s,
        "retry_backoff": policy.backoff,
        "retry_on": json.dumps(list(policy.retry_on)),
    }


_UPDATABLE = (
    "name",
    "parameters",
    "timeout_s",
    "automation_id",
    "type",
    "allow_sub_tasks",
    "max_attempts",
    "retry_delay_s",
    "retry_backoff",
    "retry_on",
    "max_depth",
    "max_tasks",
    "output_schema",
    "webhook_url",
    "webhook_events",
    "browser",
    "keep_screenshots",
    "screenshot_on_failure",
)


async def update_job(conn: Conn, job_id: str, changes: dict[str, Any]) -> JobRow | None:
    """Set the given fields (keys of `_UPDATABLE`); None if there is no such job."""
    unknown = set(changes) - set(_UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
    if await get_job(conn, job_id) is None:
        return None
    values = dict(changes)
    if "parameters" in values:
        values["parameters"] = json.dumps(values["parameters"])
    for name in ("allow_sub_tasks", "keep_screenshots", "screenshot_on_failure"):
        if name in values:
            values[name] = int(values[name])
    for name in ("retry_on", "output_schema", "webhook_events"):
        if name in values:
            values[name] = _json_text(values[name])
    if "browser" in values:
        values["browser"] = browser_text(values["browser"])
    await conn.execute(
        sa.update(t.jobs).where(t.jobs.c.id == job_id).values(**values, updated_at=now())
    )
    return await get_job(conn, job_id)


async def set_paused(conn: Conn, job_id: str, paused: bool) -> JobRow | None:
    """Pause or resume the job; None if there is no such job."""
    await conn.execute(
        sa.update(t.jobs).where(t.jobs.c.id == job_id).values(paused=int(paused), updated_at=now())
    )
    return await get_job(conn, job_id)


async def lock_job(conn: Conn, job_id: str, *, for_delete: bool = False) -> bool:
    """Lock the job's row until the transaction ends; False if there is no such job.

    PostgreSQL: FOR NO KEY UPDATE, which tasks and planned tasks being inserted for the job (their
    foreign keys take a key-share lock) do not wait for; FOR UPDATE to delete it, which they do.
    SQLite renders no lock: its transactions never overlap.
    """
    found = await conn.scalar(
        sa.select(t.jobs.c.id)
        .where(t.jobs.c.id == job_id)
        .with_for_update(key_share=not for_delete)
    )
    return found is not None


def job_ids_for(owner: str, shares: tuple[Access, ...]) -> sa.CompoundSelect[tuple[str]]:
    """The ids of the jobs `owner` owns or holds one of `shares` on."""
    return sa.union(
        sa.select(t.jobs.c.id).where(t.jobs.c.owner == owner),
        sa.select(t.job_shares.c.job_id).where(
            t.job_shares.c.owner == owner, t.job_shares.c.access.in_(shares)
        ),
    )


async def set_share(conn: Conn, job_id: str, owner: str, access: Access) -> None:
    stmt = insert(conn, t.job_shares).values(job_id=job_id, owner=owner, access=access)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[t.job_shares.c.job_id, t.job_shares.c.owner],
            set_={"access": stmt.excluded.access},
        )
    )


async def remove_share(conn: Conn, job_id: str, owner: str) -> bool:
    result = await conn.execute(
        sa.delete(t.job_shares).where(
            t.job_shares.c.job_id == job_id, t.job_shares.c.owner == owner
        )
    )
    return result.rowcount > 0


_JOB = Hot(sa.select(t.jobs).where(t.jobs.c.id == sa.bindparam("b_job")))
_VERSIONS = Hot(
    sa.select(t.job_versions.c.script_sha256)
    .where(t.job_versions.c.job_id == sa.bindparam("b_job"))
    .order_by(t.job_versions.c.version)
)
_SHARES = Hot(
    sa.select(t.job_shares.c.owner, t.job_shares.c.access)
    .where(t.job_shares.c.job_id == sa.bindparam("b_job"))
    .order_by(t.job_shares.c.owner)
)
_SCRIPT = Hot(sa.select(t.scripts.c.source).where(t.scripts.c.sha256 == sa.bindparam("b_sha")))


async def get_job(conn: Conn, job_id: str) -> JobRow | None:
    key = {"b_job": job_id}
    row = (await conn.execute(_JOB, key)).first()
    if row is None:
        return None
    versions = [str(sha) for sha in await conn.scalars(_VERSIONS, key)]
    shares = {str(share.owner): share.access for share in await conn.execute(_SHARES, key)}
    return job_from_row(row, versions, shares)


def job_from_row(row: Any, versions: list[str], shares: dict[str, Access]) -> JobRow:
    """A `jobs` row with its script versions (oldest first) and shares."""
    return JobRow(
        id=row.id,
        name=row.name,
        script_sha256=row.script_sha256,
        parameters=json.loads(row.parameters),
        timeout_s=row.timeout_s,
        automation_id=row.automation_id,
        owner=row.owner,
        type=row.type,
        allow_sub_tasks=bool(row.allow_sub_tasks),
        shares=shares,
        created_at=row.created_at,
        updated_at=row.updated_at,
        versions=versions,
        retry=job_policy(row),
        paused=bool(row.paused),
        max_depth=row.max_depth,
        max_tasks=row.max_tasks,
        output_schema=_json_or_none(row.output_schema),
        webhook_url=row.webhook_url,
        webhook_events=_json_or_none(row.webhook_events),
        webhook_secret=row.webhook_secret,
        browser=browser_of(row.browser),
        keep_screenshots=bool(row.keep_screenshots),
        screenshot_on_failure=bool(row.screenshot_on_failure),
    )
