"""What the agent object needs from the process it runs in: a way to make calls to the daemon."""

from __future__ import annotations

from typing import Any, Protocol


class Transport(Protocol):
    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """One request to the daemon; returns its value or raises what it failed with."""
        ...

    def notify(self, method: str, params: dict[str, Any]) -> None:
        """A call with no reply (logging); safe from any thread, keeps the order of calls."""
        ...


class Namespace:
    """Base of the parts of the agent object; `def main(agent)` gets them wrapped as blocking."""

    __slots__ = ()
