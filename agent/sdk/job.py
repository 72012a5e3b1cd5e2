"""`agent.utils` and `agent.utils.job`: the job API of the task the script runs for.

Results are never raised: each method returns a result object (`.success`, `.error`, the
method's fields; `.model_dump()` for the dict). Wrong argument types or values are programming
errors and raise TypeError/ValueError before anything is sent.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, get_args

from pydantic import ValidationError

from agent.scriptrpc import (
    COORDINATOR_CALLS,
    MAX_SUB_TASK_IDS,
    SubmitStatus,
    SubmitTaskParams,
    SubmitToAnotherJobParams,
    describe_validation_error,
    json_check,
)
from agent.sdk.files import File
from agent.sdk.results import (
    AddSubTasksResult,
    AnotherJobTaskResult,
    AnotherTaskResult,
    AutomationVariablesResult,
    CheckpointResult,
    CurrentTaskResult,
    Result,
    SubmitResult,
    SubTasksResult,
)
from agent.sdk.transport import Namespace, Transport

_STATUSES: tuple[str, ...] = get_args(SubmitStatus)
_DUMP_STATUSES = ("pending", "failed", "declined")
R = TypeVar("R", bound=Result)

Files = Sequence[File | Mapping[str, Any]]


def _plain_files(files: Files | None) -> list[Any]:
    if files is None:
        return []
    if isinstance(files, str | bytes | Mapping) or not isinstance(files, Sequence):
        raise TypeError(f"files must be a list, not {type(files).__name__}")
    return [f.model_dump() if isinstance(f, File) else f for f in files]


def _need(value: Any, kind: type, what: str, expected: str) -> None:
    """TypeError naming the argument unless `value` is an instance of `kind`."""
    if not isinstance(value, kind):
        raise TypeError(f"{what} must be {expected}, not {type(value).__name__}")


def _need_list(value: Any, what: str) -> list[Any]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise TypeError(f"{what} must be a list, not {type(value).__name__}")
    return list(value)


async def _ask(
    transport: Transport, method: str, result: type[R], max_file_bytes: int, **params: Any
) -> R:
    """One call the coordinator answers, its params checked with the daemon's own model."""
    try:
        checked = COORDINATOR_CALLS[method].model_validate(
            params, context={"max_file_bytes": max_file_bytes}
        )
    except ValidationError as exc:
        raise ValueError(describe_validation_error(method.partition(".")[2], exc)) from None
    return result.model_validate(await transport.call(method, checked.model_dump()))


class Job(Namespace, path="agent.utils.job"):
    __slots__ = ("_max_file_bytes", "_transport")

    def __init__(self, transport: Transport, max_file_bytes: int) -> None:
        self._transport = transport
        self._max_file_bytes = max_file_bytes

    async def submit_task(
        self,
        automation_status: str,
        data: dict[str, Any],
        finish: bool,
        files: Files | None = None,
    ) -> SubmitResult:
        """Update the current task: `automation_status` is running, success, failed or declined;
        `data` a JSON-serialisable dict; `finish=True` makes it the task's final result (then
        `automation_status` must not be running) and every later call fails. `files` (File or
        `{"name", "extension", "base64Data"}`, each at most the host's file limit) are kept only
        with a final submission: with `finish=False` they are ignored and not sent.
        """
        if automation_status not in _STATUSES:
            raise ValueError(
                f"submit_task: automation_status must be one of {', '.join(_STATUSES)}, "
                f"not {automation_status!r}"
            )
        if not isinstance(data, dict):
            raise TypeError(f"submit_task: data must be a dict, not {type(data).__name__}")
        json_check(data, "submit_task: data")
        if not isinstance(finish, bool):
            raise TypeError(f"submit_task: finish must be True or False, not {finish!r}")
        try:
            sent_files = _plain_files(files) if finish else []
        except TypeError as exc:
            raise TypeError(f"submit_task: {exc}") from None
        params = {
            "automation_status": automation_status,
            "data": data,
            "finish": finish,
            "files": sent_files,
        }
        try:
            checked = SubmitTaskParams.model_validate(
                params, context={"max_file_bytes": self._max_file_bytes}
            )
        except ValidationError as exc:
            raise ValueError(describe_validation_error("submit_task", exc)) from None
        result = await self._transport.call("job.submit_task", checked.model_dump())
        return SubmitResult.model_validate(result)

    async def get_current_task(self) -> CurrentTaskResult:
        """The task this script runs for: `parent_task_id` (its own id, which its sub-tasks
        carry as their parent), `spawned_by` (the task that added it, or None), `job_proof` (its
        input), `timeout`."""
        return CurrentTaskResult.model_validate(
            await self._transport.call("job.get_current_task", {})
        )

    async def submit_task_to_another_job(
        self,
        job_id: str,
        data: dict[str, Any],
        status: str = "pending",
        files: Files | None = None,
    ) -> AnotherJobTaskResult:
        """Create a task on the "data-dump" job `job_id` (status pending, failed or declined),
        without touching the current task. Each file's public URL goes into its proof under
        `proof[name]`. Durable like submit_task: `queued=True` when the coordinator is away."""
        where = "submit_task_to_another_job"
        _need(job_id, str, f"{where}: job_id", "a str")
        _need(data, dict, f"{where}: data", "a dict")
        json_check(data, f"{where}: data")
        if status not in _DUMP_STATUSES:
            raise ValueError(
                f"{where}: status must be one of {', '.join(_DUMP_STATUSES)}, not {status!r}"
            )
        try:
            sent_files = _plain_files(files)
        except TypeError as exc:
            raise TypeError(f"{where}: {exc}") from None
        params = {"job_id": job_id, "data": data, "status": status, "files": sent_files}
        try:
            checked = SubmitToAnotherJobParams.model_validate(
                params, context={"max_file_bytes": self._max_file_bytes}
            )
        except ValidationError as exc:
            raise ValueError(describe_validation_error(where, exc)) from None
        result = await self._transport.call("job.submit_task_to_another_job", checked.model_dump())
        return AnotherJobTaskResult.model_validate(result)

    async def use_another_task(self) -> AnotherTaskResult | None:
        """Another task of this job that marked itself `waiting: True` with
        `set_automation_variables`: `{job_task_id, job_proof}`; None when there is none."""
        found = await _ask(
            self._transport, "job.use_another_task", AnotherTaskResult, self._max_file_bytes
        )
        return None if found.success and found.job_task_id is None else found

    async def add_sub_tasks(
        self,
        job_variables: Sequence[dict[str, Any]] | Mapping[str, Any],
        run_immediately: bool = True,
        job_id: str | None = None,
        remote_device_id: str | None = None,
    ) -> AddSubTasksResult:
        """One planned task per item of `job_variables` (at most 1000), on this job or on
        `job_id`; pinned to `remote_device_id` when given. The seed's three forms all work:
        `add_sub_tasks(items)`, `add_sub_tasks(items, False, job_id)` and one options dict
        `add_sub_tasks({"job_variables": items, "run_immediately": ..., "job_id": ...,
        "remote_device_id": ...})` (keywords work too)."""
        where = "add_sub_tasks"
        if isinstance(job_variables, Mapping):
            options = dict(job_variables)
            unknown = set(options) - {"job_variables", "run_immediately", "job_id",
                                      "remote_device_id"}  # fmt: skip
            if unknown:
                raise ValueError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
            if "job_variables" not in options:
                raise ValueError(f"{where}: the options object needs job_variables")
            job_variables = options["job_variables"]
            run_immediately = options.get("run_immediately", True)
            job_id = options.get("job_id")
            remote_device_id = options.get("remote_device_id")
        items = _need_list(job_variables, f"{where}: job_variables")
        for i, item in enumerate(items):
            _need(item, dict, f"{where}: job_variables[{i}]", "a dict")
        if not isinstance(run_immediately, bool):
            raise TypeError(
                f"{where}: run_immediately must be True or False, not {run_immediately!r}"
            )
        if job_id is not None:
            _need(job_id, str, f"{where}: job_id", "a str or None")
        if remote_device_id is not None:
            _need(remote_device_id, str, f"{where}: remote_device_id", "a str or None")
        return await _ask(
            self._transport,
            "job.add_sub_tasks",
            AddSubTasksResult,
            self._max_file_bytes,
            job_variables=items,
            run_immediately=run_immediately,
            job_id=job_id,
            remote_device_id=remote_device_id,
        )

    async def get_sub_tasks(self, planned_task_ids: Sequence[str]) -> SubTasksResult:
        """The sub-tasks (of the current task) among `planned_task_ids` (at most 100); ids of
        planned tasks that are not this task's are left out of the answer."""
        where = "get_sub_tasks"
        ids = _need_list(planned_task_ids, f"{where}: planned_task_ids")
        for i, item in enumerate(ids):
            _need(item, str, f"{where}: planned_task_ids[{i}]", "a str")
        if len(ids) > MAX_SUB_TASK_IDS:
            raise ValueError(f"{where}: at most {MAX_SUB_TASK_IDS} ids per call, got {len(ids)}")
        return await _ask(
            self._transport,
            "job.get_sub_tasks",
            SubTasksResult,
            self._max_file_bytes,
            planned_task_ids=ids,
        )

    submitTask = submit_task
    getCurrentTask = get_current_task
    submitTaskToAnotherJob = submit_task_to_another_job
    useAnotherTask = use_another_task
    addSubTasks = add_sub_tasks
    getSubTasks = get_sub_tasks


class Utils(Namespace, path="agent.utils"):
    __slots__ = ("_max_file_bytes", "_transport", "job")

    def __init__(self, transport: Transport, max_file_bytes: int) -> None:
        self._transport = transport
        self._max_file_bytes = max_file_bytes
        self.job = Job(transport, max_file_bytes)
        """The job API of the current task."""

    async def set_automation_variables(
        self, variables: dict[str, Any]
    ) -> AutomationVariablesResult:
        """Store `variables` on the current task; `{"waiting": True}` makes it discoverable by
        `use_another_task` of another task of the same job. Replaces what was stored."""
        _need(variables, dict, "set_automation_variables: variables", "a dict")
        json_check(variables, "set_automation_variables: variables")
        return await _ask(
            self._transport,
            "utils.set_automation_variables",
            AutomationVariablesResult,
            self._max_file_bytes,
            variables=variables,
        )

    async def get_automation_variables(self) -> AutomationVariablesResult:
        """What `set_automation_variables` stored for the current task."""
        return await _ask(
            self._transport,
            "utils.get_automation_variables",
            AutomationVariablesResult,
            self._max_file_bytes,
        )

    async def save_checkpoint(self, checkpoint: dict[str, Any]) -> Result:
        """Keep `checkpoint` for this task, across its retries (for resumable scripts)."""
        _need(checkpoint, dict, "save_checkpoint: checkpoint", "a dict")
        json_check(checkpoint, "save_checkpoint: checkpoint")
        return await _ask(
            self._transport,
            "utils.save_checkpoint",
            Result,
            self._max_file_bytes,
            checkpoint=checkpoint,
        )

    async def get_latest_checkpoint(self) -> CheckpointResult:
        """The latest checkpoint saved for this task (in this or an earlier attempt)."""
        return await _ask(
            self._transport, "utils.get_latest_checkpoint", CheckpointResult, self._max_file_bytes
        )

    async def sleep_random(self, min_ms: int, max_ms: int) -> None:
        """Wait a random time between `min_ms` and `max_ms` milliseconds."""
        if not 0 <= min_ms <= max_ms:
            raise ValueError(f"sleep_random: need 0 <= min_ms <= max_ms, got {min_ms}, {max_ms}")
        await asyncio.sleep(random.uniform(min_ms, max_ms) / 1000)

    setAutomationVariables = set_automation_variables
    getAutomationVariables = get_automation_variables
    saveCheckpoint = save_checkpoint
    getLatestCheckpoint = get_latest_checkpoint
    sleepRandom = sleep_random
