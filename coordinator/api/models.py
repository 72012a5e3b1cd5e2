"""The HTTP API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from agent.ids import no_nul
from agent.protocol import DeviceKind, DeviceState, TaskState
from coordinator.api.cursor import Cursor
from coordinator.api.instants import Moment
from coordinator.fan_out import MAX_DEPTH_LIMIT, MAX_TASKS_LIMIT
from coordinator.output_schema import checked
from coordinator.retry_policy import DEFAULT_RETRY_ON, RETRYABLE_REASONS
from coordinator.store_jobs import DEFAULT_MAX_DEPTH, DEFAULT_MAX_TASKS, Access, JobType
from coordinator.store_webhooks import DeliveryState, WebhookEvent
from drivers.browser.options import BrowserOptions

Stored = Annotated[str, AfterValidator(no_nul)]
"""A string stored or looked up as it is: no NUL (U+0000), which PostgreSQL's text cannot hold
(JSON values, stored escaped, may hold one)."""


MaxDepth = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=MAX_DEPTH_LIMIT,
        description="How deep sub-tasks may nest (a task made over the API is depth 0).",
    ),
]
MaxTasks = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=MAX_TASKS_LIMIT,
        description="How many tasks the job may hold, planned sub-tasks included.",
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _retryable(reasons: list[str]) -> list[str]:
    unknown = sorted(set(reasons) - RETRYABLE_REASONS)
    if unknown:
        raise ValueError(
            f"not a failure reason that can be retried: {', '.join(unknown)} "
            f"(one of {', '.join(sorted(RETRYABLE_REASONS))})"
        )
    return sorted(set(reasons))


RetryOn = Annotated[list[str], AfterValidator(_retryable)]
MaxAttempts = Annotated[int, Field(ge=1, le=100)]
RetryDelay = Annotated[float, Field(ge=0, le=86400)]
Backoff = Annotated[float, Field(ge=1, le=10)]
Priority = Annotated[int, Field(ge=-100, le=100)]


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return url


WebhookUrl = Annotated[
    str,
    Field(max_length=2000, description="Where the task events are POSTed (docs/webhooks.md)."),
    AfterValidator(no_nul),
    AfterValidator(_http_url),
]


def _unique_events(events: list[WebhookEvent]) -> list[WebhookEvent]:
    return sorted(set(events))


WebhookEvents = Annotated[
    list[WebhookEvent],
    Field(
        min_length=1,
        description="Final states to be told of, and `progress` for every progress update "
        "(default: every final state).",
    ),
    AfterValidator(_unique_events),
]
OutputSchema = Annotated[
    dict[str, Any],
    Field(
        description="A JSON Schema each successful task's data must match (else it ends "
        "failed, output_invalid)."
    ),
    AfterValidator(checked),
]


class JobCreate(_Body):
    name: Stored = Field(min_length=1, max_length=200)
    script: Stored = Field(min_length=1, description="Python source of the script (defines main).")
    parameters: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float = Field(default=300, gt=0, le=86400)
    automation_id: Stored | None = None
    type: JobType = Field(
        default="devices_automation",
        description="devices_automation: its tasks run the script on devices; manual: its tasks "
        "are never dispatched (a data-dump target must be devices_automation).",
    )
    allow_sub_tasks: bool = Field(
        default=False, description="Scripts of other jobs may add sub-tasks to this job."
    )
    max_attempts: MaxAttempts = Field(
        default=1, description="Runs a task gets in all (docs/jobs.md, Retries); 1: no retry."
    )
    retry_delay_s: RetryDelay = Field(default=10, description="Wait before the first retry.")
    backoff: Backoff = Field(default=2, description="Each later retry waits this much longer.")
    retry_on: RetryOn = Field(
        default_factory=lambda: list(DEFAULT_RETRY_ON),
        description="The failure reasons that are retried (default: the host's faults).",
    )
    max_depth: MaxDepth = DEFAULT_MAX_DEPTH
    max_tasks: MaxTasks = DEFAULT_MAX_TASKS
    output_schema: OutputSchema | None = None
    webhook_url: WebhookUrl | None = None
    webhook_events: WebhookEvents | None = None
    browser: BrowserOptions | None = Field(
        default=None,
        description="Its tasks' browser settings (docs/jobs.md); browser devices only.",
    )
    keep_screenshots: StrictBool = Field(
        default=False,
        description="Keep every screenshot its scripts take with the run (docs/timeline.md).",
    )
    screenshot_on_failure: StrictBool = Field(
        default=True,
        description="Take and keep a screenshot when a run fails or times out.",
    )


class JobUpdate(_Body):
    """Fields to change; those left out stay as they are (null clears automation_id,
    output_schema, webhook_url, browser, and webhook_events back to every final state)."""

    name: Stored | None = Field(default=None, min_length=1, max_length=200)
    parameters: dict[str, Any] | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=86400)
    automation_id: Stored | None = None
    type: JobType | None = None
    allow_sub_tasks: bool | None = None
    max_attempts: MaxAttempts | None = None
    retry_delay_s: RetryDelay | None = None
    backoff: Backoff | None = None
    retry_on: RetryOn | None = None
    max_depth: MaxDepth | None = None
    max_tasks: MaxTasks | None = None
    output_schema: OutputSchema | None = None
    webhook_url: WebhookUrl | None = None
    webhook_events: WebhookEvents | None = None
    browser: BrowserOptions | None = Field(
        default=None, description="Replaces the job's browser settings whole."
    )
    keep_screenshots: StrictBool | None = None
    screenshot_on_failure: StrictBool | None = None


class ShareUpdate(_Body):
    access: Access


class ScriptUpdate(_Body):
    script: Stored = Field(min_length=1)


class Job(BaseModel):
    id: str
    name: str
    script_sha256: str
    parameters: dict[str, Any]
    timeout_s: float
    automation_id: str | None
    owner: str = Field(description="The name of the API key that created the job.")
    type: JobType
    allow_sub_tasks: bool
    shares: dict[str, Access] = Field(description="Other owner -> shared_view or shared_edit.")
    created_at: datetime
    versions: list[str] = Field(description="Script SHA-256s, oldest (version 1) first.")
    version: int = Field(description="The current script version's number.")
    max_attempts: int
    retry_delay_s: float
    backoff: float
    retry_on: list[str]
    paused: bool = Field(description="No task of it is given to a device until it is resumed.")
    max_depth: int
    max_tasks: int
    output_schema: dict[str, Any] | None
    webhook_url: str | None
    webhook_events: list[str] = Field(description="The events its webhook is sent.")
    browser: dict[str, Any] | None = Field(
        description="Its tasks' browser settings as given; a proxy password shows as ***."
    )
    keep_screenshots: bool = Field(description="Every screenshot is kept with its run.")
    screenshot_on_failure: bool = Field(description="A failed run's screen is kept.")


class JobCreated(Job):
    webhook_secret: str = Field(
        description="The key of its webhook signatures (docs/webhooks.md): shown here, then "
        "only to its owner at GET /api/jobs/{id}/webhook-secret."
    )


class WebhookSecret(BaseModel):
    job_id: str
    webhook_secret: str


class Version(BaseModel):
    version: int
    script_sha256: str
    created_at: datetime
    current: bool


class VersionList(BaseModel):
    versions: list[Version] = Field(description="Oldest (1) first.")


class Delivery(BaseModel):
    """One webhook delivery: a task's event, and how sending it went."""

    id: str = Field(description="Its `X-Delivery-Id`, the same on every attempt.")
    task_id: str
    event: str
    url: str
    state: DeliveryState
    attempts: int = Field(description="Attempts made (since the last re-send).")
    next_attempt_at: datetime | None
    last_status: int | None = Field(description="The HTTP status of the last answer.")
    last_error: str | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    body: dict[str, Any] = Field(description="The JSON every attempt POSTs.")


class DeliveryList(BaseModel):
    items: list[Delivery] = Field(description="Newest first.")
    limit: int


class JobList(BaseModel):
    items: list[Job]
    limit: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last one."
    )


class JobCancel(_Body):
    reason: Stored | None = Field(
        default=None, max_length=1000, description="Stored as each cancelled task's `error`."
    )


class JobCancelled(BaseModel):
    job_id: str
    tasks: int = Field(description="Tasks cancelled: pending, blocked, assigned or running.")
    running: int = Field(description="Of those, the ones a host held: it is told to stop them.")
    planned_tasks: int = Field(description="Planned sub-tasks cancelled before becoming tasks.")


class JobDeleted(BaseModel):
    job_id: str
    tasks: int
    planned_tasks: int
    files: int


class TaskCreate(_Body):
    input: dict[str, Any] = Field(default_factory=dict)
    remote_device_id: Stored | None = Field(
        default=None, description="Pin: run only on this device (a host must have reported it)."
    )
    timeout_s: float | None = Field(default=None, gt=0, le=86400)
    priority: Priority = Field(default=0, description="Higher first; FIFO within one priority.")
    deadline: datetime | None = Field(
        default=None,
        description="Not given to a device after this moment (with a time zone): it ends "
        "`expired` instead.",
    )
    depends_on: list[Stored] = Field(
        default_factory=list,
        max_length=100,
        description="Ids of tasks (or `ref`s of tasks in this request) that must all succeed "
        "before this one runs.",
    )
    ref: Stored | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="A name for this task within the request, for other tasks' depends_on.",
    )
    max_attempts: MaxAttempts | None = Field(default=None, description="Overrides the job's.")
    retry_delay_s: RetryDelay | None = Field(default=None, description="Overrides the job's.")
    backoff: Backoff | None = Field(default=None, description="Overrides the job's.")
    retry_on: RetryOn | None = Field(default=None, description="Overrides the job's.")
    script_version: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        description="Run this version of the job's script (default: its current one).",
    )
    webhook_url: WebhookUrl | None = Field(default=None, description="Overrides the job's.")
    webhook_events: WebhookEvents | None = Field(default=None, description="Overrides the job's.")
    browser: BrowserOptions | None = Field(
        default=None,
        description="Browser settings over the job's, field by field (null in a field: not "
        "the job's); a task pinned to a device that is not a browser cannot have any.",
    )


class TasksCreate(_Body):
    tasks: list[TaskCreate] = Field(min_length=1, max_length=1000)


class FileRef(BaseModel):
    id: str
    name: str
    extension: str
    size: int
    url: str


class Task(BaseModel):
    id: str
    job_id: str
    state: TaskState
    input: dict[str, Any]
    remote_device_id: str | None = Field(description="The device the task is pinned to.")
    device_id: str | None = Field(description="The device it runs or ran on.")
    host_id: str | None
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    files: list[FileRef]
    failure_reason: str | None
    error: str | None
    attempt: int = Field(description="The current (or last) attempt: 1, then 2 and on.")
    retry_at: datetime | None = Field(
        description="A retry waiting out its delay: not given to a device before this."
    )
    priority: int
    deadline: datetime | None
    blocked_by: int = Field(description="Dependencies not yet succeeded (state `blocked`).")
    timeout_s: float
    script_sha256: str
    script_version: int | None = Field(
        description="The job's script version it runs (or ran): GET /api/jobs/{id}/versions."
    )
    webhook_url: str | None = Field(description="Its own webhook; null: the job's.")
    webhook_events: list[str] | None = Field(description="Its own events; null: the job's.")
    browser: dict[str, Any] | None = Field(
        description="Its own browser settings as given (over the job's); a proxy password "
        "shows as ***."
    )
    parent_task_id: str | None = Field(description="The task whose script added this sub-task.")
    automation_variables: dict[str, Any] | None = Field(
        description="What the script stored with set_automation_variables."
    )
    origin: Literal["run", "dump"] = Field(
        description="run: work for a device; dump: a record written by submit_task_to_another_job."
    )
    depth: int = Field(
        description="0 for a task made over the API, its parent's + 1 for a sub-task."
    )
    created_at: datetime
    assigned_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None


class Run(BaseModel):
    """One attempt of a task."""

    attempt: int
    state: TaskState
    failure_reason: str | None
    error: str | None
    host_id: str | None
    device_id: str | None
    assigned_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class RunList(BaseModel):
    runs: list[Run] = Field(description="Oldest first; the last is the task's current attempt.")


class CancelledTask(Task):
    sub_tasks_cancelled: int = Field(
        description="Its sub-tasks (and theirs) cancelled with it, planned ones included."
    )


class TaskQuery(BaseModel):
    """The query of `GET /api/tasks`: filters (all must hold), then a page of at most `limit`
    tasks, oldest first, after `cursor`. Times are half-open ranges: after <= time < before."""

    model_config = ConfigDict(extra="forbid")

    job_id: Stored | None = None
    state: list[TaskState] = Field(
        default_factory=list, description="Repeat for several states: any of them matches."
    )
    device: Stored | None = Field(
        default=None, description="The device a task runs or ran on, or is pinned to."
    )
    host: Stored | None = Field(default=None, description="The host a task runs or ran on.")
    parent: Stored | None = Field(
        default=None, description="The task whose script added it (parent_task_id)."
    )
    created_after: Moment | None = Field(default=None, description="created_at >= this.")
    created_before: Moment | None = Field(default=None, description="created_at < this.")
    finished_after: Moment | None = Field(default=None, description="finished_at >= this.")
    finished_before: Moment | None = Field(default=None, description="finished_at < this.")
    limit: int = Field(default=50, ge=1, le=500)
    cursor: Cursor | None = Field(
        default=None, description="The previous page's next_cursor; none: the first page."
    )
    with_total: bool = Field(
        default=False,
        description="Also count every matching task (`total`): a count of all of them, "
        "costly on a big farm.",
    )


class TaskList(BaseModel):
    items: list[Task]
    limit: int
    next_cursor: str | None = Field(
        description="Pass it as `cursor` (with the same filters) for the next page; null: no "
        "task follows this page."
    )
    total: int | None = Field(
        description="How many tasks match the filters in all (with_total=true only)."
    )


class TasksCreated(BaseModel):
    tasks: list[Task]


class Device(BaseModel):
    remote_device_id: str
    host_id: str
    kind: DeviceKind
    state: DeviceState = Field(
        description=(
            "The state its host last reported (available, offline, unauthorized, "
            "quarantined), or busy: available with an assigned or running task."
        )
    )
    properties: dict[str, Any]
    connected: bool = Field(description="Its host has a live session now.")
    free: bool = Field(
        description=(
            "Offered for work right now: in its host's latest credits, not assigned since, "
            "and the host takes work."
        )
    )
    updated_at: datetime


class Health(BaseModel):
    ok: bool
