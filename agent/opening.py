"""A device session that is still opening: the script host starts while the device gets ready.

Opening a device session (a fresh browser context, an Android reset) and starting the script's
process each take a few hundred milliseconds; doing them side by side takes the longer of the
two instead of their sum. The script's first action waits for the session to be open.

A task that never calls it leaves the session as it was opened: the next task may take it as is
(agent/ahead.py), without the reset a used one needs.

What the daemon tells the session before the script starts (`keep_files_in`: where a browser's
`save_file` writes) reaches the session once it is open, before the script's first call on it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from drivers.base import ActionError, DeviceLost, DeviceSession


class OpeningSession(DeviceSession):
    def __init__(self, opening: asyncio.Task[DeviceSession], reusable: bool = False) -> None:
        self._opening = opening
        self._reusable = reusable
        self._handed_on = False
        self.touched = False
        """Whether the task made any call on it (an action, a failure screenshot)."""
        self._files: tuple[Path, tuple[int, int] | None] | None = None

    def untouched(self) -> asyncio.Task[DeviceSession] | None:
        """The session opening or open, for the next task, if this one never used it and it
        was opened with the device's defaults (`reusable`); None when it must be reset."""
        if self.touched or not self._reusable:
            return None
        self._reusable = False  # handed on: closing this wrapper leaves it to its next task
        self._handed_on = True
        return self._opening

    def keep_files_in(self, folder: Path, owner: tuple[int, int] | None = None) -> None:
        self._files = (folder, owner)

    async def _session(self, action: str) -> DeviceSession:
        try:
            session = await asyncio.shield(self._opening)
        except ActionError:
            raise
        except Exception as exc:
            raise DeviceLost(action, f"the device could not be prepared: {exc}") from None
        if self._files is not None:
            session.keep_files_in(*self._files)
            self._files = None
        return session

    async def call(self, action: str, params: dict[str, Any]) -> Any:
        self.touched = True
        session = await self._session(action)
        return await session.call(action, params)

    async def close(self) -> None:
        if self._handed_on:
            return
        if not self._opening.done():
            self._opening.cancel()
        results = await asyncio.gather(self._opening, return_exceptions=True)
        if isinstance(results[0], DeviceSession):
            await results[0].close()
