"""Result objects of the script API: attribute and key access (`r.success`, `r["success"]`),
`.model_dump()` gives the plain dict. Their nested parts are records (agent/sdk/records.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from agent.sdk.records import InsertedId, SubTask, SubTaskAssignment


class Keyed(BaseModel):
    """Key access to a model's fields (and the extra keys it kept), as to the seed's objects."""

    def __getitem__(self, key: str) -> Any:
        if key in type(self).model_fields or key in (self.__pydantic_extra__ or {}):
            return getattr(self, key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key in type(self).model_fields or key in (self.__pydantic_extra__ or {})

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


class Result(Keyed):
    """A job API result: never raised; `success` False comes with `error`.

    Fields the daemon adds beyond the documented ones are kept (attribute access works too).
    """

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    success: bool
    error: str | None = None


class SubmitResult(Result):
    """What `submit_task` answers."""

    @property
    def queued(self) -> bool:
        """True when the coordinator was away: the submission waits in the host's outbox and
        will be delivered (the dict has a `queued` key only then, as the daemon sends it)."""
        return bool((self.__pydantic_extra__ or {}).get("queued", False))


class CurrentTaskResult(Result):
    parent_task_id: str = ""
    """This task's own id, as the seed reads it: the id its sub-tasks carry as their
    `parent_task_id` (`get_sub_tasks`), for a root task too."""
    spawned_by: str | None = None
    """The task whose script added this one as a sub-task, or None for a task added otherwise."""
    job_proof: dict[str, Any] | None = None
    """The task's input (the same object as `agent.arguments.job_variables`)."""
    timeout: float | None = None
    """The task's timeout in seconds."""
    attempt: int = 1
    """Which attempt this run is: 1, then 2 and on when the task is retried (docs/jobs.md)."""
    output_schema: dict[str, Any] | None = None
    """The JSON Schema the job wants the success data to match (docs/jobs.md), or None."""


class ScreenshotResult(Keyed):
    """What `agent.actions.screenshot` returns (the seed's camelCase field names)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    screenshot: str | None
    """Base64 JPEG, or None when the device could not capture its screen."""
    compressedWidth: int
    compressedHeight: int
    originalWidth: int
    originalHeight: int


class AnotherJobTaskResult(Result):
    """What `submit_task_to_another_job` answers: the task it created."""

    job_task_id: str | None = None
    job_id: str | None = None

    @property
    def queued(self) -> bool:
        """True when the coordinator was away: the dump waits in the host's outbox (no
        job_task_id yet) and will be delivered."""
        return bool((self.__pydantic_extra__ or {}).get("queued", False))


class AnotherTaskResult(Result):
    """A waiting task of the same job found by `use_another_task`."""

    job_task_id: str | None = None
    job_proof: Any = None
    """That task's input, as a JSON string (as the original API gives it)."""


class AddSubTasksResult(Result):
    inserted_ids: list[InsertedId] = []
    """`[{planned_task_id, input}]`, one per item of `job_variables`."""
    assignment_results: list[SubTaskAssignment] | None = None
    """`[{planned_task_id, assigned}]` when `run_immediately`."""


class SubTasksResult(Result):
    tasks: dict[str, SubTask] = {}
    """planned_task_id -> `{parent_task_id, comment, job_proof, timeout, status}`."""


class AutomationVariablesResult(Result):
    automation_variables: dict[str, Any] | None = None


class CheckpointResult(Result):
    checkpoint: dict[str, Any] | None = None
    """The latest checkpoint saved for this task (kept across its retries), or None."""


class _ByKey(BaseModel):
    """A result read by attribute or by key, like the dict the original API gives."""

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)


class TextBlock(_ByKey):
    """One word `recognize_text` read: its text, its box in screen pixels (tap its middle to
    press it) and Tesseract's confidence in it (0 to 100). `block.x` and `block["x"]` both work."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    text: str
    x: int
    y: int
    width: int
    height: int
    confidence: float


class TextResult(_ByKey):
    """What `agent.actions.recognize_text` returns: `.text` (line by line), `.blocks` (every
    word), `.confidence` (their mean), `.width`/`.height` (of the region read). Key access
    (`result["text"]`) works too, and `.model_dump()` gives the plain dict."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    text: str
    blocks: list[TextBlock]
    confidence: float
    width: int
    height: int


RESULT_MODELS: tuple[type[BaseModel], ...] = (
    Result,
    SubmitResult,
    CurrentTaskResult,
    ScreenshotResult,
    AnotherJobTaskResult,
    AnotherTaskResult,
    AddSubTasksResult,
    SubTasksResult,
    AutomationVariablesResult,
    CheckpointResult,
    TextBlock,
    TextResult,
)
"""Every result model, so that a script host started ahead of need can build them early."""
