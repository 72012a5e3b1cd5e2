"""Handlers of `agent.actions.*`: each is one call into the task's device session.

The driver does the work and owns each action's timeout; the daemon adds nothing but routing
(the session is this task's, so the script can only act on its own device).
"""

from __future__ import annotations

import base64
from functools import partial
from typing import Any

from agent.hostapi.context import TaskContext
from agent.hostapi.registry import HANDLERS
from agent.scriptrpc import ACTION_NAMES
from drivers.base import DeviceLost


async def run_action(action: str, ctx: TaskContext, params: dict[str, Any]) -> Any:
    keep = False
    if action == "screenshot" and "keep" in params:
        params = dict(params)
        keep = params.pop("keep") is True  # the daemon's option: the driver never sees it
    try:
        result = await ctx.session.call(action, params)
    except DeviceLost as exc:
        ctx.device_lost = str(exc)
        raise
    if action == "screenshot" and (keep or ctx.assignment.keep_screenshots):
        keep_screenshot(ctx, result, "screenshot")
    return result


def keep_screenshot(ctx: TaskContext, result: Any, name: str) -> None:
    """Keep a screenshot action's image with the run (its timeline's artifacts)."""
    data = result.get("screenshot") if isinstance(result, dict) else None
    if ctx.timeline is not None and isinstance(data, str):
        ctx.timeline.keep(name, "jpg", base64.b64decode(data))


for _name in ACTION_NAMES:
    HANDLERS[f"actions.{_name}"] = partial(run_action, _name)
