"""Handlers of `agent.actions.*`: each is one call into the task's device session.

The driver does the work and owns each action's timeout; the daemon adds nothing but routing
(the session is this task's, so the script can only act on its own device).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from agent.hostapi.context import TaskContext
from agent.hostapi.registry import HANDLERS
from agent.scriptrpc import ACTION_NAMES
from drivers.base import DeviceLost


async def run_action(action: str, ctx: TaskContext, params: dict[str, Any]) -> Any:
    try:
        return await ctx.session.call(action, params)
    except DeviceLost as exc:
        ctx.device_lost = str(exc)
        raise


for _name in ACTION_NAMES:
    HANDLERS[f"actions.{_name}"] = partial(run_action, _name)
