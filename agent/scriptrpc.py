"""The private channel between the daemon and one script host: framing and message models.

Both ends import this module (the daemon in agent/runner.py, the child in agent/scripthost/), so
it stays light: pydantic, the standard library, agent.filenames and agent.boundedjson only, no
agent.protocol.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON, an object with a
`type`. The child says it is `ready` once it has imported and built what it needs (it may be
started before its task exists); the daemon then sends `init`; then the child sends `call`s (an
`id` of None makes it a notification that gets no reply) and finally one `report`, and the daemon
answers each call and the report with a `reply`. Nothing the child sends names a task or a
device: the daemon knows which task the channel belongs to.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import struct
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from agent import boundedjson
from agent.filenames import safe_extension, safe_file_name
from agent.ids import Id

MAX_CHANNEL_FRAME_BYTES = 24 * 1024 * 1024
"""Largest frame either end accepts (room for a submission with its base64 files)."""

_HEADER = struct.Struct(">I")

ErrorKind = Literal["action_failed", "value_error", "type_error", "failed"]
"""How a failed call surfaces in the script: ActionFailed, ValueError, TypeError, AgentError."""
ReportKind = Literal["returned", "stopped", "script_error", "script_load_error", "bad_return_value"]
"""How main ended: it returned, stop_current_automation() was called, or the failure reason."""
SubmitStatus = Literal["running", "success", "failed", "declined"]

ACTION_NAMES: tuple[str, ...] = (
    "tap",
    "double_tap",
    "hold",
    "swipe",
    "swipe_poly",
    "multi_tap",
    "scroll",
    "go_home",
    "go_back",
    "recents",
    "dpad",
    "input_key",
    "write_text",
    "copy_text",
    "paste",
    "reverse_copy",
    "hide_keyboard",
    "launch_app",
    "stop_app",
    "list_apps",
    "launch_intent",
    "browse",
    "screenshot",
    "screen_content",
    "find",
    "wait_for_node",
    "wait_for_node_gone",
    "node_action",
    "save_file",
    "shell",
    "evaluate",
    "set_input_files",
    "recognize_text",
    "airplane",
)
"""Every `agent.actions.*` method; each is the RPC method `actions.<name>` and one driver action."""


class ChannelError(Exception):
    """The peer broke the framing or sent a message that does not validate."""


class _Message(BaseModel):
    # Built on first use: the script host imports many models and uses few (start-up time).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# ---- daemon -> child -----------------------------------------------------------------------


class Init(_Message):
    """The first frame: what the child needs before it loads the script."""

    type: Literal["init"] = "init"
    task_id: Id
    script: str = Field(description="file name of the script, relative to the child's cwd")
    script_name: str = Field(description="the name its tracebacks give the script's file")
    job_variables: dict[str, Any]
    automation_parameters: dict[str, Any]
    max_file_bytes: int = Field(gt=0)


class CallError(_Message):
    kind: ErrorKind
    message: str


class Reply(_Message):
    type: Literal["reply"] = "reply"
    id: int
    ok: bool
    value: Any = None
    error: CallError | None = None


# ---- child -> daemon -----------------------------------------------------------------------


class Ready(_Message):
    """The child's first frame: started, imports done, models built; waiting for `init`."""

    type: Literal["ready"] = "ready"


class Call(_Message):
    type: Literal["call"] = "call"
    id: int | None = Field(description="None for a notification (no reply)")
    method: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)


class Report(_Message):
    """How `main` ended; sent once, acknowledged by a `reply`, then the child exits."""

    type: Literal["report"] = "report"
    id: int
    kind: ReportKind
    data: dict[str, Any] | None = None
    error: str | None = None


DaemonMessage = Init | Reply
ChildMessage = Call | Report

_DAEMON_TYPES: dict[str, type[Init] | type[Reply]] = {"init": Init, "reply": Reply}
_CHILD_TYPES: dict[str, type[Call] | type[Report]] = {"call": Call, "report": Report}
_WARM_MODELS: tuple[type[_Message], ...] = (Init, Reply, CallError, Call, Report, Ready)


# ---- script call parameters validated on both ends -------------------------------------------


def json_check(value: Any, what: str) -> None:
    """Raise TypeError/ValueError naming `what` unless `value` is strict JSON (no NaN, str keys)."""
    try:
        json.dumps(value, allow_nan=False)
    except TypeError as exc:
        raise TypeError(f"{what} is not JSON-serialisable: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{what} is not JSON-serialisable: {exc}") from None


class FileParam(_Message):
    """A file as the job API takes it; validation needs `max_file_bytes` in the context.

    Its name and extension are reduced to safe ones (agent/filenames.py)."""

    name: str = Field(min_length=1, max_length=200)
    extension: str = Field(max_length=20)
    base64Data: str

    # Names are reduced, not refused: a script's `../../x` or `a\0b` becomes a plain base name.
    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return safe_file_name(value)

    @field_validator("extension")
    @classmethod
    def _safe_extension(cls, value: str) -> str:
        return safe_extension(value)

    @field_validator("base64Data")
    @classmethod
    def _check_base64(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            # The seed's `screenshot.screenshot || ""` would otherwise store a 0-byte file.
            raise PydanticCustomError("empty_file", "is empty: a file needs at least one byte")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise PydanticCustomError("base64", "not valid standard base64") from None
        limit = (info.context or {}).get("max_file_bytes")
        if limit is not None and len(raw) > limit:
            raise PydanticCustomError(
                "file_too_large",
                "file of {size} bytes exceeds the limit of {limit} bytes",
                {"size": len(raw), "limit": limit},
            )
        return value


def _json_only(value: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        why = {"why": str(exc)}
        raise PydanticCustomError("not_json", "not JSON-serialisable: {why}", why) from None
    return value


JsonDict = Annotated[dict[str, Any], AfterValidator(_json_only)]


class SubmitTaskParams(_Message):
    automation_status: SubmitStatus
    data: JsonDict
    finish: bool = Field(strict=True)
    files: list[FileParam] = Field(default_factory=list)

    @model_validator(mode="after")
    def _final_needs_final_status(self) -> SubmitTaskParams:
        if self.finish and self.automation_status == "running":
            raise PydanticCustomError(
                "running_final",
                "a final submission (finish=True) needs status success, failed or declined",
            )
        return self


class SubmitToAnotherJobParams(_Message):
    job_id: Id = Field(min_length=1, max_length=128)
    data: JsonDict
    status: Literal["pending", "failed", "declined"] = "pending"
    files: list[FileParam] = Field(default_factory=list)


MAX_SUB_TASKS = 1000
"""Most planned tasks one add_sub_tasks call may create."""
MAX_SUB_TASK_IDS = 100
"""Most planned task ids one get_sub_tasks call may ask about."""


class AddSubTasksParams(_Message):
    job_variables: list[JsonDict] = Field(min_length=1, max_length=MAX_SUB_TASKS)
    run_immediately: bool = True
    job_id: Id | None = Field(default=None, min_length=1, max_length=128)
    remote_device_id: Id | None = Field(default=None, min_length=1, max_length=64)


class GetSubTasksParams(_Message):
    planned_task_ids: list[Id] = Field(max_length=MAX_SUB_TASK_IDS)


class AutomationVariablesParams(_Message):
    variables: JsonDict


class CheckpointParams(_Message):
    checkpoint: JsonDict


class NoParams(_Message):
    pass


COORDINATOR_CALLS: dict[str, type[_Message]] = {
    "job.use_another_task": NoParams,
    "job.add_sub_tasks": AddSubTasksParams,
    "job.get_sub_tasks": GetSubTasksParams,
    "utils.set_automation_variables": AutomationVariablesParams,
    "utils.get_automation_variables": NoParams,
    "utils.save_checkpoint": CheckpointParams,
    "utils.get_latest_checkpoint": NoParams,
}
"""Script calls the coordinator answers: RPC method -> its params model. The daemon forwards each
as a `request` whose method is the name after the dot (e.g. `add_sub_tasks`).
`job.submit_task_to_another_job` is not among them: it is durable, a `dump` frame."""


def describe_validation_error(where: str, exc: ValidationError) -> str:
    """One readable line per problem, e.g. `submit_task: files.0.base64Data: not valid ...`."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else str(err["msg"]))
    return f"{where}: " + "; ".join(parts)


# ---- framing -----------------------------------------------------------------------------


def encode(message: _Message) -> bytes:
    """Serialise one message into a frame; raises ValueError if it is over the size limit."""
    body = message.model_dump_json().encode()
    if len(body) > MAX_CHANNEL_FRAME_BYTES:
        raise ValueError(
            f"message of {len(body)} bytes exceeds the channel limit of "
            f"{MAX_CHANNEL_FRAME_BYTES} bytes"
        )
    return _HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next frame as a JSON object, or None at a clean end of stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ChannelError("channel closed inside a frame header") from None
        return None
    (length,) = _HEADER.unpack(header)
    if length > MAX_CHANNEL_FRAME_BYTES:
        raise ChannelError(f"frame of {length} bytes exceeds {MAX_CHANNEL_FRAME_BYTES}")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ChannelError("channel closed inside a frame") from None
    try:
        obj = boundedjson.loads(body)
    except boundedjson.BadJson as exc:
        raise ChannelError(f"frame is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ChannelError("frame is not a JSON object")
    return obj


def _parse(obj: dict[str, Any], types: dict[str, Any]) -> Any:
    kind = obj.get("type")
    model = types.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ChannelError(f"unknown message type {obj.get('type')!r}")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise ChannelError(describe_validation_error(str(obj.get("type")), exc)) from None


def parse_daemon_message(obj: dict[str, Any]) -> DaemonMessage:
    """Validate a frame the daemon sent (used by the child)."""
    message: DaemonMessage = _parse(obj, _DAEMON_TYPES)
    return message


def parse_ready(obj: dict[str, Any] | None) -> Ready:
    """The child's first frame, which must be `ready` (used by the daemon)."""
    if obj is None:
        raise ChannelError("the script host closed its channel before it was ready")
    message = _parse(obj, {"ready": Ready})
    assert isinstance(message, Ready)
    return message


def build_models() -> None:
    """Build every channel model now rather than on first use: a script host started ahead of
    its task does it while it waits, off the task's path."""
    extra: tuple[type[_Message], ...] = (SubmitTaskParams, SubmitToAnotherJobParams, FileParam)
    for model in (*_WARM_MODELS, *COORDINATOR_CALLS.values(), *extra):
        model.model_rebuild(force=True)


def parse_child_message(obj: dict[str, Any]) -> ChildMessage:
    """Validate a frame the child sent (used by the daemon)."""
    message: ChildMessage = _parse(obj, _CHILD_TYPES)
    return message
