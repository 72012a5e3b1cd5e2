"""A browser device: one configured slot (a viewport size and a start page) of the shared
Chromium, taking one task at a time in a fresh browser context (shaped by the task's browser
settings, if it has any: drivers/browser/options.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from playwright.async_api import Error as PlaywrightError

from agent.protocol import DeviceKind, DeviceState
from drivers.base import ActionError, Device, DeviceLost, DeviceSession, SessionSettings
from drivers.browser.actions import BadRequest
from drivers.browser.config import BrowserSettings, BrowserSlot
from drivers.browser.host import BrowserUnavailable, ChromiumHost, short_message
from drivers.browser.profiles import ProfileError
from drivers.browser.session import BrowserSession

log = logging.getLogger(__name__)


class BrowserDevice(Device):
    kind: DeviceKind = "browser"
    open_ahead = True  # a fresh context takes a few hundred ms of Chromium's time

    def __init__(self, slot: BrowserSlot, host: ChromiumHost, settings: BrowserSettings) -> None:
        self.slot = slot.name
        self.config = slot
        self._host = host
        self._settings = settings
        self._session: BrowserSession | None = None

    async def start(self) -> None:
        """Make sure the shared Chromium runs; a failed launch leaves the device offline."""
        await self._host.start()

    def state(self) -> DeviceState:
        return "offline" if self._host.launch_error is not None else "available"

    def properties(self) -> dict[str, Any]:
        scale = self.config.device_scale_factor
        return {
            "brand": "Chromium",
            "model": "headless" if self._settings.headless else "headed",
            "browser_version": self._host.version,
            "width": round(self.config.viewport_width * scale),
            "height": round(self.config.viewport_height * scale),
            "device_scale_factor": scale,
            "sdk_version": None,
        }

    async def open_session(
        self, task_id: str, settings: SessionSettings | None = None
    ) -> DeviceSession:
        """A fresh context on the slot's start page, with the task's settings; relaunches
        Chromium if it has died. A task that names a profile waits while another uses it."""
        options = None if settings is None else settings.browser
        address = None if options is None else options.browser_address
        try:
            if address is not None:
                browser = await self._host.connect(address)
            else:
                browser = await self._host.browser()
        except BrowserUnavailable as exc:
            if address is not None:  # the other browser is the task's business, not the device's
                raise ActionError("open_session", str(exc)) from exc
            raise DeviceLost("open_session", str(exc)) from exc
        session = BrowserSession(
            self.config, self._settings, browser, task_id, options, attached=address is not None
        )
        budget = self._settings.navigation_timeout_s + self._settings.action_timeout_s
        try:
            if settings is not None and settings.browser.profile is not None:
                path = self._host.profiles.path(settings.job_id, settings.browser.profile)
                await session.hold_profile(path, self._host.profiles.lock(path))
            async with asyncio.timeout(budget):
                await session.open()
        except asyncio.CancelledError:
            # The task ended before its session opened: what was made of it is closed too.
            await session.close()
            raise
        except ProfileError as exc:
            await session.close()
            raise ActionError("open_session", str(exc)) from exc
        except (PlaywrightError, TimeoutError, BadRequest) as exc:
            await session.close()
            if address is None and not browser.is_connected():
                raise DeviceLost("open_session", "the browser closed or crashed") from exc
            message = str(exc) if isinstance(exc, BadRequest) else short_message(exc)
            message = message or f"timed out after {budget:g} s"
            raise ActionError(
                "open_session", f"cannot open {self.config.start_url}: {message}"
            ) from exc
        self._session = session
        log.info("task %s: browser session opened on %s", task_id, self.slot)
        return session

    async def stop(self) -> None:
        """Close the running task's session, if any; the shared Chromium is the host's to stop."""
        if self._session is not None:
            await self._session.close()
            self._session = None
