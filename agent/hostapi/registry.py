"""The table of script-call handlers, keyed by RPC method name, and the dispatcher over it.

A handler is `async def h(ctx: TaskContext, params: dict) -> JSON`; it registers itself with
`@handler("group.method")`. Exceptions a handler raises become the error the script sees:
`ActionError` -> ActionFailed, `ValueError` -> ValueError, `TypeError` -> TypeError, anything
else -> AgentError (and a traceback in the daemon's log, since it is our bug, not the script's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from agent.hostapi.context import TaskContext
from agent.scriptrpc import CallError, describe_validation_error
from drivers.base import ActionError

Handler = Callable[[TaskContext, dict[str, Any]], Awaitable[Any]]

HANDLERS: dict[str, Handler] = {}


def handler(method: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        if method in HANDLERS:
            raise RuntimeError(f"two handlers for script call {method!r}")
        HANDLERS[method] = fn
        return fn

    return register


async def dispatch(ctx: TaskContext, method: str, params: dict[str, Any]) -> Any:
    """Run the handler of `method`; raises CallFailed with what the script should see."""
    fn = HANDLERS.get(method)
    if fn is None:
        raise CallFailed(CallError(kind="failed", message=f"unknown script call {method!r}"))
    try:
        return await fn(ctx, params)
    except ActionError as exc:
        raise CallFailed(CallError(kind="action_failed", message=str(exc))) from None
    except ValidationError as exc:
        message = describe_validation_error(method.rpartition(".")[2], exc)
        raise CallFailed(CallError(kind="value_error", message=message)) from None
    except ValueError as exc:
        raise CallFailed(CallError(kind="value_error", message=str(exc))) from None
    except TypeError as exc:
        raise CallFailed(CallError(kind="type_error", message=str(exc))) from None
    except Exception as exc:
        ctx.log.exception("task %s: script call %s failed inside the daemon", ctx.task_id, method)
        message = f"{method} failed inside the agent: {type(exc).__name__}: {exc}"
        raise CallFailed(CallError(kind="failed", message=message)) from None


class CallFailed(Exception):
    def __init__(self, error: CallError) -> None:
        super().__init__(error.message)
        self.error = error
