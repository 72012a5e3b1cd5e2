"""The host <-> coordinator wire protocol: every websocket frame, as pydantic models.

Both the daemon (agent/) and the reference coordinator (coordinator/) import this module, so
the two sides cannot drift. docs/protocol.md is the prose contract; this is its executable form.

Frames are JSON text frames shaped `{"type": "<name>", ...}`. `parse_frame` validates one
against the union of all frame types and raises `FrameError` with a reason a peer can act on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from agent import boundedjson
from agent.ids import Id
from agent.timeline import ArtifactBlob, TimelineEntry
from drivers.browser.options import BrowserOptions

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 16 * 1024 * 1024
"""Largest frame either side accepts; bigger ones are refused with an `error` frame."""
MAX_FILE_BYTES = 8 * 1024 * 1024
"""Largest single file (decoded) inside a `submit` frame."""
AUTH_HEADER = "Authorization"
"""Hosts authenticate with `Authorization: Bearer <host token>` on the websocket upgrade."""
WS_PATH = "/ws/host"

# Websocket close codes (4000-4999 are application-defined).
CLOSE_UNSUPPORTED_VERSION = 4000
CLOSE_SESSION_REPLACED = 4001
CLOSE_PROTOCOL_ERROR = 4002
CLOSE_HEARTBEAT_TIMEOUT = 4003
CLOSE_SERVICE_RESTART = 1012
"""RFC 6455's "service restart": the coordinator is stopping; reconnect (later, or elsewhere)."""

DeviceKind = Literal["android", "browser", "sim"]
DeviceState = Literal["available", "busy", "offline", "unauthorized", "quarantined"]
TaskState = Literal[
    "pending",
    "blocked",
    "assigned",
    "running",
    "success",
    "failed",
    "declined",
    "timeout",
    "cancelled",
    "expired",
    "skipped",
]
TERMINAL_STATES: frozenset[str] = frozenset(
    {"success", "failed", "declined", "timeout", "cancelled", "expired", "skipped"}
)
SubmitStatus = Literal["running", "success", "failed", "declined"]
FinalState = Literal["success", "failed", "declined", "timeout", "cancelled"]


AttemptRef = Annotated[int | None, Field(ge=1, le=1_000_000)]
"""The attempt (the assignment's) a host's frame about a task is for; None: whichever is current
(a daemon that lost track of it). The coordinator ignores a frame about an attempt that ended
and was retried."""


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    remote_device_id: Id = Field(min_length=1, max_length=64)
    kind: DeviceKind
    state: DeviceState
    properties: dict[str, Any] = Field(default_factory=dict)


class FileBlob(BaseModel):
    """A file travelling inside a frame; `data_b64` is standard base64 of the bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    extension: str = Field(max_length=20)
    data_b64: str = Field(max_length=(MAX_FILE_BYTES * 4) // 3 + 4)


class Assignment(BaseModel):
    """Everything a host needs to run one task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str
    job_id: str
    remote_device_id: str
    script_sha256: str
    script_source: str
    input: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float = Field(gt=0)
    attempt: int = Field(default=1, ge=1)
    parent_task_id: str | None = None
    automation_id: str | None = None
    script_name: str | None = Field(default=None, min_length=1, max_length=200)
    """The name the script's tracebacks and errors give its file, when its job is named after
    one (agent.filenames.script_file_name); None: `script.py`."""
    output_schema: dict[str, Any] | None = None
    """The JSON Schema the job wants the task's success data to match (the coordinator checks
    it; the script may read it from `get_current_task()`)."""
    browser: BrowserOptions | None = None
    """The task's browser settings (the job's, overridden by the task's); only a browser device
    can honour them, any other fails the task (reason unsupported_settings)."""
    keep_screenshots: bool = False
    """Keep every screenshot the script takes with the run (as if each said keep=True)."""
    screenshot_on_failure: bool = True
    """Take and keep a screenshot when the run fails or times out (docs/timeline.md)."""


# ---- host -> coordinator ----------------------------------------------------------------


class Hello(Frame):
    """First frame of every connection, from the host."""

    type: Literal["hello"] = "hello"
    protocol_version: int
    host_id: Id = Field(min_length=1, max_length=128)
    agent_version: str
    devices: list[DeviceInfo]
    running_tasks: list[Id] = Field(default_factory=list)
    accepting: bool = True
    pause_reason: str | None = None
    """Why the host takes no new work when `accepting` is false (`disk_full`, ...)."""


class Devices(Frame):
    """The host's full device list, sent whenever a device's state changes."""

    type: Literal["devices"] = "devices"
    devices: list[DeviceInfo]


class Credits(Frame):
    """The devices that may take a task now; replaces any earlier credits (absolute, not deltas)."""

    type: Literal["credits"] = "credits"
    free: list[Id]


class Accept(Frame):
    type: Literal["accept"] = "accept"
    task_id: Id


class Reject(Frame):
    type: Literal["reject"] = "reject"
    task_id: Id
    reason: str


class Started(Frame):
    type: Literal["started"] = "started"
    task_id: Id
    started_at: datetime
    attempt: AttemptRef = None


class Submit(Frame):
    """One `submit_task` call; `key` makes it idempotent at the coordinator."""

    type: Literal["submit"] = "submit"
    key: Id = Field(min_length=1, max_length=128)
    task_id: Id
    seq: int = Field(ge=0, le=2**63 - 1)  # SQLite INTEGER, PostgreSQL BIGINT
    status: SubmitStatus
    data: dict[str, Any]
    finish: bool
    files: list[FileBlob] = Field(default_factory=list)
    attempt: AttemptRef = None


class Dump(Frame):
    """One `submit_task_to_another_job` call: a new task on a data-dump job, idempotent by key.

    `task_id` is the running task that made the call (the coordinator checks ownership and
    access through it); the acknowledgement's `result` carries `job_task_id` and `job_id`.
    """

    type: Literal["dump"] = "dump"
    key: Id = Field(min_length=1, max_length=128)
    task_id: Id
    job_id: Id = Field(min_length=1, max_length=128)
    status: Literal["pending", "failed", "declined"] = "pending"
    data: dict[str, Any]
    files: list[FileBlob] = Field(default_factory=list)


class Finished(Frame):
    """The script process ended; the outcome the host decided (see docs/protocol.md).

    Acknowledged with `submit_ack` like a submission: a host keeps it (and counts the task as
    held in `hello`) until then.
    """

    type: Literal["finished"] = "finished"
    key: Id = Field(min_length=1, max_length=128)
    task_id: Id
    state: FinalState
    reason: str | None = None
    error: str | None = None
    data: dict[str, Any] | None = None
    finished_at: datetime
    attempt: AttemptRef = None


class TimelineBatch(Frame):
    """A batch of a run's timeline entries, with the artifacts kept among them (screenshots).

    Queued in the outbox like a submission and acknowledged with `submit_ack`; the coordinator
    stores each entry once (by task, attempt and seq), so a batch sent again adds nothing.
    """

    type: Literal["timeline"] = "timeline"
    key: Id = Field(min_length=1, max_length=128)
    task_id: Id
    attempt: int = Field(ge=1, le=1_000_000)
    entries: list[TimelineEntry] = Field(max_length=10_000)
    artifacts: list[ArtifactBlob] = Field(default_factory=list, max_length=100)


class Request(Frame):
    """A script API call that needs the coordinator's answer."""

    type: Literal["request"] = "request"
    id: str
    task_id: Id
    method: str
    params: dict[str, Any] = Field(default_factory=dict)


# ---- coordinator -> host ----------------------------------------------------------------


class Welcome(Frame):
    type: Literal["welcome"] = "welcome"
    protocol_version: int
    session_id: str
    heartbeat_interval_s: float
    max_frame_bytes: int


class Assign(Frame):
    type: Literal["assign"] = "assign"
    task: Assignment


class Cancel(Frame):
    type: Literal["cancel"] = "cancel"
    task_id: str
    reason: str


class SubmitAck(Frame):
    """Sent once a `submit`, `dump` or `finished` is committed (or refused for good: ok=False)."""

    type: Literal["submit_ack"] = "submit_ack"
    key: str
    ok: bool
    error: str | None = None
    result: dict[str, Any] | None = None


class Reply(Frame):
    type: Literal["reply"] = "reply"
    id: str
    ok: bool
    result: dict[str, Any] | None = None
    error: str | None = None


# ---- both ways ---------------------------------------------------------------------------


class Heartbeat(Frame):
    """A sign of life. A host's also says whether it takes new work, and why not (the
    coordinator's leaves both out)."""

    type: Literal["heartbeat"] = "heartbeat"
    sent_at: datetime
    accepting: bool | None = None
    pause_reason: str | None = None


class Error(Frame):
    """Tells the peer one of its frames was refused; the connection stays up."""

    type: Literal["error"] = "error"
    code: str
    message: str
    ref: str | None = None


HostFrame = Annotated[
    Hello
    | Devices
    | Credits
    | Accept
    | Reject
    | Started
    | Submit
    | Dump
    | Finished
    | TimelineBatch
    | Request
    | Heartbeat
    | Error,
    Field(discriminator="type"),
]
CoordinatorFrame = Annotated[
    Welcome | Assign | Cancel | SubmitAck | Reply | Heartbeat | Error,
    Field(discriminator="type"),
]
_host_adapter: TypeAdapter[HostFrame] = TypeAdapter(HostFrame)
_coordinator_adapter: TypeAdapter[CoordinatorFrame] = TypeAdapter(CoordinatorFrame)


class FrameError(ValueError):
    """A frame that cannot be accepted; `code` goes into the `error` frame sent back."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _decode(raw: str | bytes) -> Any:
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameError("frame_too_large", f"frame of {len(raw)} bytes exceeds {MAX_FRAME_BYTES}")
    if isinstance(raw, bytes):
        raise FrameError("binary_frame", "binary frames are not part of protocol version 1")
    try:
        return boundedjson.loads(raw)
    except boundedjson.BadJson as exc:
        raise FrameError("bad_json", f"frame is not JSON: {exc}") from None


def _validate(adapter: TypeAdapter[Any], raw: str | bytes) -> Any:
    obj = _decode(raw)
    try:
        return adapter.validate_python(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "frame"
        code = "unknown_type" if first["type"] == "union_tag_invalid" else "invalid_frame"
        raise FrameError(code, f"{where}: {first['msg']}") from None


def parse_host_frame(raw: str | bytes) -> HostFrame:
    """Validate a frame a host sent (used by the coordinator)."""
    result: HostFrame = _validate(_host_adapter, raw)
    return result


def parse_coordinator_frame(raw: str | bytes) -> CoordinatorFrame:
    """Validate a frame a coordinator sent (used by the daemon)."""
    result: CoordinatorFrame = _validate(_coordinator_adapter, raw)
    return result


def encode(frame: Frame) -> str:
    return frame.model_dump_json()
