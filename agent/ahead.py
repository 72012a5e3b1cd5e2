"""What a device's next task needs, made while the device is idle: a script host and a session.

After a task ends (and when a device is added) `prepare` starts, in the background: the reset
of the device (closing the last task's session), a script host (sandboxed, imported, models
built, waiting for its task) and, for devices whose session is costly to open
(`Device.open_ahead`: a browser context), the next session, opened once the reset is done. A
device whose session is free to open (Android: the reset is what costs) only gets the reset
done ahead.

The script host is forked from the device's zygote (agent/zygote.py), started with the first
host and again after it died; where there can be none (`zygote_possible`), or it cannot start
or fork, the host is started on its own (agent/hoststart.py), as it was before zygotes.

A browser context the last task never used (not one action: `OpeningSession.touched`) and that
it did not open with settings of its own is not reset: it is the next task's as it is.

The device is offered for work (the host's credits) once it is reset and its host is ready (or
failed): `preparing` says it is not yet, and `on_ready` is called when it is. The session opened
ahead is not waited for: a slow start page must not keep the device from work; a task that
comes first waits for it at its first action, as it would for its own. The next task takes them.
Whatever failed or went stale meanwhile (a host that died or never got ready, a context whose
browser went away) is made again for the task on the spot, as if nothing had been prepared: a
failed preparation costs the task time, never the task. A host serves one task; a host or
session that no task took is ended by `discard` (the daemon's stop).

The session opened ahead has the device's default settings. A task with browser settings of its
own (a user agent, a proxy, a profile, an address to attach to: `Assignment.browser`) cannot use
it: it is closed and the task's own opened at once, with those settings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agent.hoststart import HostStartError, StartedHost, start_host
from agent.opening import OpeningSession
from agent.protocol import Assignment
from agent.sandbox import Isolation, SandboxError
from agent.sweep import tag_fits
from agent.zygote import Zygote, start_zygote, zygote_possible
from drivers.base import Device, DeviceSession, SessionSettings

NEXT_LABEL = "(next)"
"""What a session opened ahead is called in the log until a task takes it."""
ZYGOTE_STARTS = 3
"""Failed starts of a device's zygote in a row after which its hosts start on their own."""


class Ahead:
    """The next task's script host and session for one device."""

    def __init__(
        self,
        device: Device,
        isolation: Isolation,
        log: logging.Logger,
        on_ready: Callable[[], None],
    ) -> None:
        self._device = device
        self._isolation = isolation
        self._log = log
        self._on_ready = on_ready
        self._host: asyncio.Task[StartedHost] | None = None
        self._session: asyncio.Task[DeviceSession | None] | None = None
        self._reset: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._zygote: Zygote | None = None
        self._zygote_failures = 0 if zygote_possible(isolation) else ZYGOTE_STARTS

    @property
    def preparing(self) -> bool:
        """Whether the device is still being reset or its next host started."""
        return any(t is not None and not t.done() for t in (self._host, self._reset))

    def prepare(self, previous: DeviceSession | None = None) -> None:
        """Start making what the next task needs; `previous` (the last task's session) is
        closed first, which resets the device."""
        if self._host is None:
            self._host = asyncio.create_task(self._next_host())
        if isinstance(previous, OpeningSession) and self._session is None:
            kept = previous.untouched()
            if kept is not None:
                self._log.debug("the last task did not use its session: the next one takes it")
                self._session, previous = kept, None
        if previous is not None:
            self._reset = asyncio.create_task(previous.close())
        if self._session is None:
            self._session = asyncio.create_task(self._next_session(self._reset))
        self._watch = asyncio.create_task(self._announce(self._host, self._reset))

    async def _next_host(self) -> StartedHost:
        """A host forked from the device's zygote, or started on its own where there is none.
        A zygote that cannot start or fork fails the host: the next task starts its own."""
        zygote = await self._running_zygote()
        if zygote is None:
            return await start_host(self._isolation, self._log)
        try:
            return await zygote.fork()
        except BaseException:
            self._zygote = None
            await zygote.close()
            raise

    async def _running_zygote(self) -> Zygote | None:
        """The device's zygote, started now if it has none or it died; None where there can be
        none, or after ZYGOTE_STARTS failed starts in a row."""
        if self._zygote is not None and not self._zygote.alive():
            self._log.warning("the device's zygote died: starting a new one")
            dead, self._zygote = self._zygote, None
            await dead.close()
        if self._zygote is None and self._zygote_failures < ZYGOTE_STARTS:
            try:
                self._zygote = await start_zygote(self._isolation, self._log)
            except (HostStartError, SandboxError, OSError) as exc:
                self._zygote_failures += 1
                if self._zygote_failures == ZYGOTE_STARTS:
                    self._log.warning(
                        "the device's zygote failed to start %d times: its script hosts start "
                        "on their own from now on",
                        ZYGOTE_STARTS,
                    )
                raise HostStartError(f"the device's zygote cannot start: {exc}") from None
            self._zygote_failures = 0
        return self._zygote

    async def _announce(self, *making: asyncio.Task[object] | None) -> None:
        await asyncio.wait([t for t in making if t is not None])
        if not self.preparing:
            self._on_ready()

    async def host(self, task_id: str) -> StartedHost | None:
        """The host started ahead, ready and able to serve `task_id`; None when the task must
        start its own (none was started, it failed, died, or the id does not fit its tag)."""
        starting, self._host = self._host, None
        if starting is None:
            return None
        try:
            host = await asyncio.shield(starting)
        except asyncio.CancelledError:
            self._host = starting  # still nobody's: the next task (or discard) takes it
            raise
        except Exception as exc:
            self._log.warning("task %s: the script host started ahead failed: %s", task_id, exc)
            return None
        if host.usable() and tag_fits(task_id):
            self._log.debug("task %s: runs in the script host started ahead", task_id)
            return host
        self._log.warning("task %s: the script host started ahead is not usable", task_id)
        await host.end(self._isolation.settings.kill_grace_s)
        return None

    def session(self, task: Assignment) -> OpeningSession:
        """The task's session: the one opened ahead if it is usable and the task asks for no
        settings of its own, else a fresh one; the script's first action waits for it."""
        prepared, self._session = self._session, None
        settings = None
        if task.browser is not None:
            settings = SessionSettings(job_id=task.job_id, browser=task.browser)
        return OpeningSession(
            asyncio.create_task(self._take_session(prepared, task.task_id, settings, self._reset)),
            reusable=settings is None and self._device.open_ahead,
        )

    async def discard(self) -> None:
        """End what no task took."""
        if self._watch is not None:
            self._watch.cancel()
        tasks = [t for t in (self._host, self._session, self._reset) if t is not None]
        self._host = self._session = self._reset = None
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, StartedHost):
                await result.end(self._isolation.settings.kill_grace_s)
            elif isinstance(result, DeviceSession):
                await result.close()
        zygote, self._zygote = self._zygote, None
        if zygote is not None:
            await zygote.close()

    async def _next_session(self, reset: asyncio.Task[None] | None) -> DeviceSession | None:
        if reset is not None:
            await asyncio.shield(reset)
        if not self._device.open_ahead:
            return None
        return await self._device.open_session(NEXT_LABEL)

    async def _take_session(
        self,
        prepared: asyncio.Task[DeviceSession | None] | None,
        task_id: str,
        settings: SessionSettings | None,
        reset: asyncio.Task[None] | None,
    ) -> DeviceSession:
        if settings is not None:
            if prepared is not None:
                await self._drop(prepared)
            if reset is not None:
                # The device is reset (the last task's profile saved) before it is used again.
                await asyncio.shield(reset)
            return await self._device.open_session(task_id, settings)
        if prepared is not None:
            try:
                session = await prepared
            except Exception as exc:
                self._log.warning("task %s: the session opened ahead failed: %s", task_id, exc)
                session = None
            if session is not None and session.usable():
                session.bind(task_id)
                return session
            if session is not None:
                await session.close()
        return await self._device.open_session(task_id)

    async def _drop(self, prepared: asyncio.Task[DeviceSession | None]) -> None:
        """Stop opening (or close) a session opened ahead that the task cannot use."""
        prepared.cancel()
        result = (await asyncio.gather(prepared, return_exceptions=True))[0]
        if isinstance(result, DeviceSession):
            await result.close()
