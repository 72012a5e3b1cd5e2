"""A task's retry policy (docs/jobs.md, "Retries"): how many attempts it gets, how long a retry
waits and how that wait grows, and which failure reasons are retried.

A job has a policy; each task may override any part of it (NULL columns take the job's), so a
change to the job's policy reaches its tasks that do not override it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from coordinator import schema

DEFAULT_RETRY_ON: tuple[str, ...] = tuple(json.loads(schema.DEFAULT_RETRY_ON))

RETRYABLE_REASONS = frozenset(
    {
        "device_lost",
        "device_error",
        "agent_lost",
        "agent_restarted",
        "agent_stopped",
        "agent_error",
        "timeout",
        "script_error",
        "script_load_error",
        "script_crashed",
        "bad_return_value",
        "memory_limit",
        "pids_limit",
        "output_invalid",
    }
)
"""The failure reasons `retry_on` may name: every reason a run can fail with except
`assignment_too_large` (it would fail again the same way). A script's own final submission of
`failed` or `declined` has no reason and is never retried."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    retry_delay_s: float
    backoff: float
    retry_on: tuple[str, ...]

    def retries(self, attempt: int, state: str, reason: str | None) -> bool:
        """Whether a run that was attempt `attempt` and ended `state` for `reason` is retried."""
        return (
            state in ("failed", "timeout")
            and reason in self.retry_on
            and attempt < self.max_attempts
        )

    def delay_s(self, attempt: int) -> float:
        """How long the retry after attempt `attempt` waits: the delay, times the backoff
        factor for each retry before it."""
        return float(self.retry_delay_s * self.backoff ** (attempt - 1))


def job_policy(row: Any) -> RetryPolicy:
    """The policy stored on a `jobs` row."""
    return RetryPolicy(
        max_attempts=row.max_attempts,
        retry_delay_s=row.retry_delay_s,
        backoff=row.retry_backoff,
        retry_on=tuple(json.loads(row.retry_on)),
    )


def with_overrides(job: RetryPolicy, row: Any) -> RetryPolicy:
    """The policy of a task (a TaskRow): its own settings where set, else the job's."""
    return RetryPolicy(
        max_attempts=job.max_attempts if row.max_attempts is None else row.max_attempts,
        retry_delay_s=job.retry_delay_s if row.retry_delay_s is None else row.retry_delay_s,
        backoff=job.backoff if row.retry_backoff is None else row.retry_backoff,
        retry_on=job.retry_on if row.retry_on is None else tuple(row.retry_on),
    )
