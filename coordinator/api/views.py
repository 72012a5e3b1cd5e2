"""Turning stored rows into API response models."""

from __future__ import annotations

from datetime import datetime

from fastapi import Request

from coordinator.api.instants import shown
from coordinator.api.models import Delivery, Device, FileRef, Job, Run, Task, Version
from coordinator.db_conn import Conn
from coordinator.sessions import SessionRegistry
from coordinator.store_devices import DeviceRow
from coordinator.store_files import files_of_task
from coordinator.store_jobs import JobRow
from coordinator.store_runs import RunRow
from coordinator.store_tasks import TaskRow
from coordinator.store_versions import VersionRow
from coordinator.store_webhooks import FINAL_EVENTS, DeliveryRow


def _when(stamp: float) -> datetime:
    # One rounding for what is shown and for the time filters that compare with it.
    return shown(stamp)


def _maybe_when(stamp: float | None) -> datetime | None:
    return None if stamp is None else _when(stamp)


def job_view(job: JobRow) -> Job:
    return Job(
        id=job.id,
        name=job.name,
        script_sha256=job.script_sha256,
        parameters=job.parameters,
        timeout_s=job.timeout_s,
        automation_id=job.automation_id,
        owner=job.owner,
        type=job.type,
        allow_sub_tasks=job.allow_sub_tasks,
        shares=job.shares,
        created_at=_when(job.created_at),
        versions=job.versions,
        version=job.version,
        max_attempts=job.retry.max_attempts,
        retry_delay_s=job.retry.retry_delay_s,
        backoff=job.retry.backoff,
        retry_on=list(job.retry.retry_on),
        paused=job.paused,
        max_depth=job.max_depth,
        max_tasks=job.max_tasks,
        output_schema=job.output_schema,
        webhook_url=job.webhook_url,
        webhook_events=list(FINAL_EVENTS if job.webhook_events is None else job.webhook_events),
        browser=None if job.browser is None else job.browser.shown(),
        keep_screenshots=job.keep_screenshots,
        screenshot_on_failure=job.screenshot_on_failure,
    )


async def task_view(conn: Conn, request: Request, task: TaskRow) -> Task:
    files = [
        FileRef(
            id=f.id,
            name=f.name,
            extension=f.extension,
            size=f.size,
            url=str(request.url_for("download_file", file_id=f.id)),
        )
        for f in await files_of_task(conn, task.id)
    ]
    return _task_model(task, files)


def new_task_view(task: TaskRow) -> Task:
    """The view of a task just created: it has no files yet."""
    return _task_model(task, [])


def _task_model(task: TaskRow, files: list[FileRef]) -> Task:
    duration = (
        task.finished_at - task.started_at
        if task.finished_at is not None and task.started_at is not None
        else None
    )
    return Task(
        id=task.id,
        job_id=task.job_id,
        state=task.state,
        input=task.input,
        remote_device_id=task.pin_device_id,
        device_id=task.device_id,
        host_id=task.host_id,
        progress=task.progress,
        result=task.result,
        files=files,
        failure_reason=task.failure_reason,
        error=task.error,
        attempt=task.attempt,
        retry_at=_maybe_when(task.not_before if task.state == "pending" else None),
        priority=task.priority,
        deadline=_maybe_when(task.deadline_at),
        blocked_by=task.blocked_by,
        timeout_s=task.timeout_s,
        script_sha256=task.script_sha256,
        script_version=task.script_version,
        webhook_url=task.webhook_url,
        webhook_events=task.webhook_events,
        browser=None if task.browser is None else task.browser.shown(),
        parent_task_id=task.parent_task_id,
        automation_variables=task.automation_variables,
        origin="dump" if task.origin == "dump" else "run",
        depth=task.depth,
        created_at=_when(task.created_at),
        assigned_at=_maybe_when(task.assigned_at),
        started_at=_maybe_when(task.started_at),
        finished_at=_maybe_when(task.finished_at),
        duration_s=duration,
    )


def run_view(run: RunRow) -> Run:
    return Run(
        attempt=run.attempt,
        state=run.state,
        failure_reason=run.failure_reason,
        error=run.error,
        host_id=run.host_id,
        device_id=run.device_id,
        assigned_at=_maybe_when(run.assigned_at),
        started_at=_maybe_when(run.started_at),
        finished_at=_maybe_when(run.finished_at),
    )


def version_view(version: VersionRow, current: int) -> Version:
    return Version(
        version=version.version,
        script_sha256=version.script_sha256,
        created_at=_when(version.created_at),
        current=version.version == current,
    )


def delivery_view(delivery: DeliveryRow) -> Delivery:
    return Delivery(
        id=delivery.id,
        task_id=delivery.task_id,
        event=delivery.event,
        url=delivery.url,
        state=delivery.state,
        attempts=delivery.attempts,
        next_attempt_at=_maybe_when(delivery.due_at if delivery.state == "pending" else None),
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        last_attempt_at=_maybe_when(delivery.last_attempt_at),
        delivered_at=_maybe_when(delivery.delivered_at),
        created_at=_when(delivery.created_at),
        body=delivery.body,
    )


def device_view(device: DeviceRow, sessions: SessionRegistry, has_task: bool) -> Device:
    session = sessions.get(device.host_id)
    return Device(
        remote_device_id=device.remote_device_id,
        host_id=device.host_id,
        kind=device.kind,
        state="busy" if has_task and device.state == "available" else device.state,
        properties=device.properties,
        connected=session is not None,
        free=(
            session is not None and session.accepting and device.remote_device_id in session.credits
        ),
        updated_at=_when(device.updated_at),
    )
