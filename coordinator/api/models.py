"""The HTTP API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from agent.ids import no_nul
from agent.protocol import DeviceKind, DeviceState, TaskState
from coordinator.api.cursor import Cursor
from coordinator.api.instants import Moment
from coordinator.store_jobs import Access, JobType

Stored = Annotated[str, AfterValidator(no_nul)]
"""A string stored or looked up as it is: no NUL (U+0000), which PostgreSQL's text cannot hold
(JSON values, stored escaped, may hold one)."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class JobUpdate(_Body):
    """Fields to change; those left out stay as they are (null clears automation_id)."""

    name: Stored | None = Field(default=None, min_length=1, max_length=200)
    parameters: dict[str, Any] | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=86400)
    automation_id: Stored | None = None
    type: JobType | None = None
    allow_sub_tasks: bool | None = None


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
    versions: list[str] = Field(description="Script SHA-256s, oldest first.")


class TaskCreate(_Body):
    input: dict[str, Any] = Field(default_factory=dict)
    remote_device_id: Stored | None = Field(
        default=None, description="Pin: run only on this device (a host must have reported it)."
    )
    timeout_s: float | None = Field(default=None, gt=0, le=86400)


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
    attempt: int
    timeout_s: float
    script_sha256: str
    parent_task_id: str | None = Field(description="The task whose script added this sub-task.")
    automation_variables: dict[str, Any] | None = Field(
        description="What the script stored with set_automation_variables."
    )
    origin: Literal["run", "dump"] = Field(
        description="run: work for a device; dump: a record written by submit_task_to_another_job."
    )
    created_at: datetime
    assigned_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None


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
    state: DeviceState
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
