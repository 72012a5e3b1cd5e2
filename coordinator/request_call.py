"""What a script request's method gets (`Call`) and how it refuses (`RequestFailed`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coordinator.context import Context
from coordinator.store_tasks import TaskRow


@dataclass(frozen=True)
class Call:
    """One request, checked: `task` is active on the asking host. Methods open their own
    transactions on `ctx.db` (one that dispatches must commit first)."""

    ctx: Context
    host_id: str
    task: TaskRow
    params: dict[str, Any]


class RequestFailed(Exception):
    """The request cannot be answered; the message goes back to the script."""
