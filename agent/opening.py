"""A device session that is still opening: the script host starts while the device gets ready.

Opening a device session (a fresh browser context, an Android reset) and starting the script's
process each take a few hundred milliseconds; doing them side by side takes the longer of the
two instead of their sum. The script's first action waits for the session to be open.
"""

from __future__ import annotations

import asyncio
from typing import Any

from drivers.base import ActionError, DeviceLost, DeviceSession


class OpeningSession(DeviceSession):
    def __init__(self, opening: asyncio.Task[DeviceSession]) -> None:
        self._opening = opening

    async def _session(self, action: str) -> DeviceSession:
        try:
            return await asyncio.shield(self._opening)
        except ActionError:
            raise
        except Exception as exc:
            raise DeviceLost(action, f"the device could not be prepared: {exc}") from None

    async def call(self, action: str, params: dict[str, Any]) -> Any:
        session = await self._session(action)
        return await session.call(action, params)

    async def close(self) -> None:
        if not self._opening.done():
            self._opening.cancel()
        results = await asyncio.gather(self._opening, return_exceptions=True)
        if isinstance(results[0], DeviceSession):
            await results[0].close()
