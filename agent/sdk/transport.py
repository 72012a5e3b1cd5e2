"""What the agent object needs from the process it runs in: a way to make calls to the daemon."""

from __future__ import annotations

import inspect
from typing import Any, Protocol

from agent.sdk.unawaited import tracked


class Transport(Protocol):
    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """One request to the daemon; returns its value or raises what it failed with."""
        ...

    def notify(self, method: str, params: dict[str, Any]) -> None:
        """A call with no reply (logging); safe from any thread, keeps the order of calls."""
        ...


class Namespace:
    """Base of the parts of the agent object; `def main(agent)` gets them wrapped as blocking.

    A part declares where scripts reach it (`class Job(Namespace, path="agent.utils.job")`): its
    public coroutine methods are wrapped so that one never awaited fails the task naming it
    (agent/sdk/unawaited.py)."""

    __slots__ = ()

    def __init_subclass__(cls, path: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not path:
            return
        wrapped: dict[int, Any] = {}  # a camelCase alias stays the same object as its method
        for name, value in list(vars(cls).items()):
            if not name.startswith("_") and inspect.iscoroutinefunction(value):
                if id(value) not in wrapped:
                    wrapped[id(value)] = tracked(value, f"{path}.{value.__name__}")
                setattr(cls, name, wrapped[id(value)])
