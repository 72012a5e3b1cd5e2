"""The coordinator under systemd (`Type=notify`): uvicorn's server, telling systemd it is ready.

READY=1 once the app has started and the sockets listen; a STATUS= line saying how many hosts
are connected; WATCHDOG=1 pings from a task on the serving event loop (a blocked loop cannot
send them, so systemd restarts it); STOPPING=1 when the shutdown begins. Nothing is sent
without `$NOTIFY_SOCKET` (agent/sdnotify.py). The shutdown first runs `drain` (the host
sessions' orderly close, coordinator/drain.py), then uvicorn's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable

import uvicorn

from agent.sdnotify import from_environment, keep_alive

log = logging.getLogger(__name__)


class NotifyingServer(uvicorn.Server):
    """A uvicorn server that speaks sd_notify; `describe()` is the status line, `drain()`
    runs first when it shuts down."""

    def __init__(
        self,
        config: uvicorn.Config,
        describe: Callable[[], str],
        drain: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(config)
        self._describe = describe
        self._drain = drain
        self._notifier, self._watchdog_s = from_environment(log)
        self._pinger: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started or not self._notifier.enabled:
            return
        self._notifier.send("READY=1", f"STATUS={self._describe()}")
        self._pinger = asyncio.create_task(
            keep_alive(self._notifier, self._watchdog_s, lambda: None, self._describe, log)
        )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        self._notifier.send("STOPPING=1", "STATUS=stopping: closing host sessions")
        if self.started:
            await self._drain()
        await super().shutdown(sockets)
        self._notifier.close()
