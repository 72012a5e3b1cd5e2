"""The one Chromium process a daemon shares between all its browser devices.

Each task gets its own browser context (see session.py), so tasks never share cookies or storage
while paying for a single browser process. If Chromium crashes or is killed, the next
`browser()` call (made when a session opens) launches a new one. If a launch fails, a background
loop keeps retrying so that devices reported offline come back by themselves. A task that asks
to attach to another Chromium (`browser_address`) gets its own CDP connection from `connect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from playwright.async_api import Browser, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from drivers.browser.config import BrowserSettings
from drivers.browser.profiles import Profiles

log = logging.getLogger(__name__)

RETRY_INTERVAL_S = 30.0
"""Pause between launch attempts after a failed launch."""
STOP_TIMEOUT_S = 10.0

# Sensible for a headless farm browser: no first-run UI, no GPU, no /dev/shm exhaustion in
# containers, and no throttling of background tabs (several devices share the one browser).
LAUNCH_ARGS = [
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
]


class BrowserUnavailable(Exception):
    """Chromium could not be launched; the message says why."""


class ChromiumHost:
    """Owns the Playwright driver and the shared Chromium; launches it lazily and again after a
    crash."""

    def __init__(self, settings: BrowserSettings) -> None:
        self._settings = settings
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._lock = asyncio.Lock()
        self._retry: asyncio.Task[None] | None = None
        self._stopped = False
        self.version: str | None = None
        """Chromium's version once it has been launched."""
        self.launch_error: str | None = None
        """Why the last launch failed; None once a launch has succeeded."""
        self.profiles = Profiles(settings.profiles_dir)

    @property
    def running(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    async def start(self) -> None:
        """Launch Chromium now; on failure, record the error and keep retrying in the background."""
        self._stopped = False
        try:
            await self.browser()
        except BrowserUnavailable:
            self._schedule_retry()

    async def browser(self) -> Browser:
        """The running browser, launching a new one if there is none or the last one died."""
        async with self._lock:
            if self._stopped:
                raise BrowserUnavailable("the browser host is stopped")
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            try:
                self._browser = await asyncio.wait_for(
                    self._launch(), timeout=self._settings.launch_timeout_s + 5
                )
            except (PlaywrightError, OSError, TimeoutError) as exc:
                self.launch_error = short_message(exc) or type(exc).__name__
                log.error("cannot launch %s: %s", self._settings.executable, self.launch_error)
                await self._stop_playwright()
                self._schedule_retry()
                raise BrowserUnavailable(f"cannot launch Chromium: {self.launch_error}") from exc
            self.launch_error = None
            self.version = self._browser.version
            log.info("launched Chromium %s", self.version)
            return self._browser

    async def connect(self, address: str) -> Browser:
        """A new CDP connection to the Chromium at `address`; its owner closes it."""
        async with self._lock:
            if self._stopped:
                raise BrowserUnavailable("the browser host is stopped")
            playwright = await self._driver()
        timeout = self._settings.launch_timeout_s
        try:
            return await asyncio.wait_for(
                playwright.chromium.connect_over_cdp(address, timeout=timeout * 1000),
                timeout=timeout + 5,
            )
        except (PlaywrightError, OSError, TimeoutError) as exc:
            why = short_message(exc) or f"timed out after {timeout:g} s"
            raise BrowserUnavailable(f"cannot attach to {address}: {why}") from exc

    async def _driver(self) -> Playwright:
        if self._playwright is None:
            self._playwright = await async_playwright().start()
        return self._playwright

    async def _launch(self) -> Browser:
        playwright = await self._driver()
        browser = await playwright.chromium.launch(
            executable_path=self._settings.executable,
            headless=self._settings.headless,
            args=LAUNCH_ARGS,
            timeout=self._settings.launch_timeout_s * 1000,
        )
        browser.on("disconnected", self._disconnected)
        return browser

    def _schedule_retry(self) -> None:
        if self._stopped or (self._retry is not None and not self._retry.done()):
            return
        self._retry = asyncio.get_running_loop().create_task(self._retry_until_launched())

    async def _retry_until_launched(self) -> None:
        while not self._stopped and self.launch_error is not None:
            await asyncio.sleep(RETRY_INTERVAL_S)
            with contextlib.suppress(BrowserUnavailable):
                await self.browser()

    def _disconnected(self, _: Browser) -> None:
        if not self._stopped:  # closing it on a stop is no news
            log.warning("Chromium disconnected")

    async def stop(self) -> None:
        """Close Chromium and the Playwright driver; never raises."""
        self._stopped = True
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
            self._retry = None
        async with self._lock:
            if self._browser is not None:
                try:
                    await asyncio.wait_for(self._browser.close(), timeout=STOP_TIMEOUT_S)
                except (PlaywrightError, TimeoutError) as exc:
                    log.warning("closing Chromium failed: %s", short_message(exc))
                self._browser = None
            await self._stop_playwright()

    async def _stop_playwright(self) -> None:
        if self._playwright is None:
            return
        try:
            await asyncio.wait_for(self._playwright.stop(), timeout=STOP_TIMEOUT_S)
        except (PlaywrightError, TimeoutError) as exc:
            log.warning("stopping Playwright failed: %s", short_message(exc))
        self._playwright = None


def short_message(exc: BaseException) -> str:
    """Playwright messages carry a long call log after the first line; scripts need only the
    first."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
