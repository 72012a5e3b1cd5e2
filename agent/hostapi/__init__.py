"""The daemon side of the script API: one handler per script call, scoped to one task.

Importing this package registers every handler (actions, job API, info, log) in `HANDLERS`.
"""

from agent.hostapi import actions, coordinator, info, job
from agent.hostapi.context import (
    BackendError,
    FinalSubmission,
    JobBackend,
    NotStored,
    TaskContext,
)
from agent.hostapi.registry import HANDLERS, CallFailed, dispatch, handler

__all__ = [
    "HANDLERS",
    "BackendError",
    "CallFailed",
    "FinalSubmission",
    "JobBackend",
    "NotStored",
    "TaskContext",
    "actions",
    "coordinator",
    "dispatch",
    "handler",
    "info",
    "job",
]
