"""The agent object for a plain `def main(agent)`: every coroutine method becomes blocking.

There is one definition of each method (the async one). `Blocking` wraps any part of the agent
object; looking up a coroutine method gives a function that runs it on the script host's event
loop and waits for its result. The script's `main` runs in a worker thread, so the loop stays free
to carry the calls.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from agent.sdk.transport import Namespace
from agent.sdk.unawaited import is_coroutine_method


class Blocking:
    __slots__ = ("_loop", "_target")

    def __init__(self, target: Namespace, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if isinstance(value, Namespace):
            return Blocking(value, self._loop)
        if is_coroutine_method(value):
            return _blocking(value, self._loop)
        return value

    def __dir__(self) -> list[str]:
        return dir(self._target)

    def __repr__(self) -> str:
        return f"<blocking {type(self._target).__name__}>"


def _blocking(method: Callable[..., Any], loop: asyncio.AbstractEventLoop) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run_coroutine_threadsafe(method(*args, **kwargs), loop).result()
        raise RuntimeError(
            f"{method.__name__}: blocking agent methods cannot be called from a coroutine; "
            "use `async def main(agent)` and await them"
        )

    return call
