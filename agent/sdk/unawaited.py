"""SDK coroutines a script made and never awaited, so that its task fails naming their line.

`agent.utils.job.submit_task(...)` without `await` makes a coroutine and does nothing; Python only
warns when the coroutine is collected, on stderr (the daemon's log), and the task would end
`success` with no data. Every coroutine method of the agent object is wrapped
(agent/sdk/transport.py, `Namespace`) so that, once the script host has called `watch`, each
coroutine it makes is remembered with the line of the script that made it. When the script ends,
`never_awaited` closes those that never started (no RuntimeWarning) and names them.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any

PRUNE_AT = 256
"""At this many kept coroutines, those already started are dropped (and the mark doubles past
what is left, so that many coroutines never awaited cost linear time)."""
SDK_COROUTINE = "_sdk_coroutine"
"""Attribute marking a wrapped method as one that makes a coroutine (before Python 3.12,
`inspect.iscoroutinefunction` cannot be told so)."""

_lock = threading.Lock()
_script_file: str | None = None
_made: list[tuple[Coroutine[Any, Any, Any], str, int | None]] = []
_prune_at = PRUNE_AT


def watch(script_file: str) -> None:
    """From now on remember the SDK coroutines made, with their line in `script_file` (the file
    name the script was compiled under)."""
    global _script_file
    _script_file = script_file


def never_awaited() -> list[str]:
    """`agent.utils.job.submit_task(...) was never awaited (line N)` for each coroutine made and
    never started, in the order they were made; closes them."""
    with _lock:
        made = list(_made)
        _made.clear()
    found = []
    for coro, call, line in made:
        if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
            coro.close()
            where = f" (line {line})" if line is not None else ""
            found.append(f"{call}(...) was never awaited{where}")
    return found


def is_coroutine_method(value: object) -> bool:
    """True for a method that makes a coroutine: wrapped by `tracked`, or an `async def`."""
    return bool(getattr(value, SDK_COROUTINE, False)) or inspect.iscoroutinefunction(value)


def tracked(
    method: Callable[..., Coroutine[Any, Any, Any]], call: str
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """`method`, remembering each coroutine it makes under the name `call` while watching."""

    @functools.wraps(method)
    def make(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        coro = method(*args, **kwargs)
        if _script_file is not None:
            _remember(coro, call, _script_line(sys._getframe(1), _script_file))
        return coro

    setattr(make, SDK_COROUTINE, True)
    return make


def _remember(coro: Coroutine[Any, Any, Any], call: str, line: int | None) -> None:
    global _prune_at
    with _lock:
        _made.append((coro, call, line))
        if len(_made) >= _prune_at:
            _made[:] = [m for m in _made if inspect.getcoroutinestate(m[0]) == inspect.CORO_CREATED]
            _prune_at = max(PRUNE_AT, 2 * len(_made))


def _script_line(frame: FrameType | None, script_file: str) -> int | None:
    """The line of the innermost frame of the script's file on the stack, if any."""
    while frame is not None:
        if frame.f_code.co_filename == script_file:
            return frame.f_lineno
        frame = frame.f_back
    return None
