"""One task's use of a browser device: its own browser context (cookies, storage, history) and the
dispatch of the script's actions to drivers/browser/actions.py.

Every action runs under a time budget (its params model says how long), one at a time, and its
failures come back as `ActionError` with a message for the script; a browser or tab that died
under the task comes back as `DeviceLost`.

A task's browser settings (drivers/browser/options.py) shape its context. With a profile, the
context starts from the profile's saved state and its state is saved again at close, while the
session holds the profile (drivers/browser/profiles.py). A session attached over CDP owns its
connection to that browser and closes it (which leaves that browser running).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from drivers.base import ActionError, DeviceLost, DeviceSession, UnsupportedAction
from drivers.browser import profiles
from drivers.browser.actions import ACTIONS, ANDROID_ONLY, BadRequest, budget_of
from drivers.browser.config import BrowserSettings, BrowserSlot
from drivers.browser.host import short_message
from drivers.browser.options import BrowserOptions, Viewport
from drivers.browser.taskfiles import TaskFileError
from drivers.browser.timeouts import describe_timeout
from drivers.images import ImageError
from drivers.ocr import OcrError

log = logging.getLogger(__name__)

# Which element has the keyboard: typing with none focused would silently go nowhere.
FOCUS_JS = """() => {
  const a = document.activeElement;
  return !!a && a !== document.body && a !== document.documentElement;
}"""


class BrowserSession(DeviceSession):
    """A task's browser context; `call` runs one action of the script at a time."""

    def __init__(
        self,
        slot: BrowserSlot,
        settings: BrowserSettings,
        browser: Browser,
        task_id: str,
        options: BrowserOptions | None = None,
        attached: bool = False,
    ) -> None:
        self.slot = slot
        self.settings = settings
        self.task_id = task_id
        self.options = options or BrowserOptions()
        self.viewport = self.options.viewport or Viewport(
            width=slot.viewport_width, height=slot.viewport_height
        )
        self._attached = attached
        """Whether `browser` is this session's own CDP connection (closed with it)."""
        self._profile: Path | None = None
        self._profile_lock: asyncio.Lock | None = None
        self.clipboard = ""
        """The session's clipboard for copy_text / paste / reverse_copy: a headless browser has
        no system clipboard the daemon could share with the page reliably."""
        self._browser = browser
        self._context: BrowserContext | None = None
        self._files: Path | None = None
        self._files_owner: tuple[int, int] | None = None
        self._own_files = False
        """Whether `_files` is the session's own temporary folder (removed at close)."""
        self._crashed = False
        self._closed = False
        self._lock = asyncio.Lock()

    async def hold_profile(self, path: Path, lock: asyncio.Lock) -> None:
        """Use the profile at `path` (waiting while another task uses it) until close."""
        await lock.acquire()
        self._profile, self._profile_lock = path, lock

    async def open(self) -> None:
        """Make the task's context (from its profile, if any) and load the slot's start page."""
        await self.new_context(restore=True)
        await self.goto(self.slot.start_url)

    # ---- used by the actions ---------------------------------------------------------------

    async def new_context(self, restore: bool = False) -> None:
        """Replace the context (and with it every cookie, storage and tab) by a fresh one;
        `restore`: one with the profile's saved cookies and storage."""
        await self._close_context()
        options = self.options.context_options()
        if restore and self._profile is not None:
            saved = await asyncio.to_thread(profiles.load, self._profile)
            if saved is not None:
                options["storage_state"] = saved
        creating = asyncio.ensure_future(
            self._browser.new_context(
                viewport={"width": self.viewport.width, "height": self.viewport.height},
                device_scale_factor=self.slot.device_scale_factor,
                **options,
            )
        )
        try:
            context = await asyncio.shield(creating)
        except asyncio.CancelledError:
            # Chromium makes the context whether or not we wait: keep it, so close() closes it
            # (a script that ends while its session opens would otherwise leak a context).
            await self._adopt(creating)
            raise
        context.set_default_timeout(self.settings.action_timeout_s * 1000)
        context.set_default_navigation_timeout(self.settings.navigation_timeout_s * 1000)
        context.on("page", self._watch)
        self._context = context
        await context.new_page()

    def page(self) -> Page:
        """The tab the script sees: the newest one (a link may have opened a popup)."""
        pages = [] if self._context is None else self._context.pages
        open_pages = [page for page in pages if not page.is_closed()]
        if not open_pages:
            raise BadRequest("the session has no open page")
        return open_pages[-1]

    async def goto(self, url: str) -> dict[str, Any]:
        page = self.page()
        response = await page.goto(url, timeout=self.settings.navigation_timeout_s * 1000)
        return {"url": page.url, "status": response.status if response is not None else None}

    def to_css(self, x: float, y: float) -> tuple[float, float]:
        """Device pixels on the screen to the page's CSS pixels; refuses points off the screen."""
        scale = self.slot.device_scale_factor
        width = round(self.viewport.width * scale)
        height = round(self.viewport.height * scale)
        if not (0 <= x < width and 0 <= y < height):
            raise BadRequest(f"point ({x:g}, {y:g}) is outside the {width}x{height} screen")
        return x / scale, y / scale

    async def require_focus(self) -> None:
        if not await self.page().evaluate(FOCUS_JS):
            raise BadRequest("no element has the keyboard focus; tap a text field first")

    def files_dir(self) -> Path:
        """The task's folder for save_file: its work dir when the daemon gave it one
        (`keep_files_in`), else a temporary folder removed when the session closes."""
        if self._files is None:
            self._files = Path(tempfile.mkdtemp(prefix=f"device-agent-{self.slot.name}-"))
            self._own_files = True
        return self._files

    @property
    def files_owner(self) -> tuple[int, int] | None:
        """(uid, gid) that files saved for the script must belong to, if not the daemon's."""
        return self._files_owner

    # ---- DeviceSession -----------------------------------------------------------------------

    def keep_files_in(self, folder: Path, owner: tuple[int, int] | None = None) -> None:
        if self._own_files and self._files is not None:
            shutil.rmtree(self._files, ignore_errors=True)
        self._files, self._files_owner, self._own_files = folder, owner, False

    async def call(self, action: str, params: dict[str, Any]) -> Any:
        if action in ANDROID_ONLY:
            raise UnsupportedAction(action, "browser")
        entry, parsed = ACTIONS.prepare(action, params)
        budget = budget_of(parsed, self.settings)
        async with self._lock:
            if self._closed:
                raise ActionError(action, "the session is closed")
            self._check_alive(action)
            try:
                async with asyncio.timeout(budget):
                    await self._ensure_page()
                    return await entry.run(self, parsed)
            except TimeoutError as exc:
                self._check_alive(action)
                raise ActionError(
                    action,
                    f"timed out after {budget:g} s: the page did not answer (it may be running "
                    "a script that never ends, or showing a dialog)",
                ) from exc
            except (BadRequest, ImageError, OcrError, TaskFileError) as exc:
                raise ActionError(action, str(exc)) from exc
            except PlaywrightTimeout as exc:
                self._check_alive(action)
                raise ActionError(action, describe_timeout(exc)) from exc
            except PlaywrightError as exc:
                self._check_alive(action)
                raise ActionError(action, short_message(exc)) from exc

    def usable(self) -> bool:
        return not self._closed and not self._crashed and self._browser.is_connected()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._save_profile()
            await self._close_context()
        except Exception:
            log.exception("task %s: closing the browser context failed", self.task_id)
        finally:
            if self._profile_lock is not None:
                self._profile_lock.release()
        if self._attached:
            try:
                budget = self.settings.action_timeout_s
                await asyncio.wait_for(self._browser.close(), timeout=budget)
            except (PlaywrightError, TimeoutError) as exc:
                log.warning("task %s: detaching from the browser failed: %s", self.task_id, exc)
        if self._files is not None and self._own_files:
            await asyncio.to_thread(shutil.rmtree, self._files, ignore_errors=True)

    # ---- internals ---------------------------------------------------------------------------

    def _watch(self, page: Page) -> None:
        page.on("crash", self._on_crash)

    def _on_crash(self, page: Page) -> None:
        log.warning("task %s: the page %s crashed", self.task_id, page.url)
        self._crashed = True

    def _check_alive(self, action: str) -> None:
        if not self._browser.is_connected():
            raise DeviceLost(action, "the browser closed or crashed")
        if self._crashed:
            raise DeviceLost(action, "the page crashed")

    async def _ensure_page(self) -> None:
        """A script may close the last tab (window.close()); give it a blank one again."""
        if self._context is not None and not self._context.pages:
            await self._context.new_page()

    async def _adopt(self, creating: asyncio.Future[BrowserContext]) -> None:
        """Wait (bounded) for a context whose making was cancelled, and keep it to be closed."""
        try:
            async with asyncio.timeout(self.settings.action_timeout_s):
                self._context = await creating
        except (PlaywrightError, TimeoutError) as exc:
            log.warning("task %s: a cancelled context was not made: %s", self.task_id, exc)

    async def _save_profile(self) -> None:
        """Keep the context's cookies and storage in its profile; a context that cannot tell
        (its browser died) leaves the profile as it was."""
        if self._profile is None or self._context is None:
            return
        try:
            state = await asyncio.wait_for(
                self._context.storage_state(), timeout=self.settings.action_timeout_s
            )
        except (PlaywrightError, TimeoutError) as exc:
            log.warning("task %s: the profile was not saved: %s", self.task_id, short_message(exc))
            return
        await asyncio.to_thread(profiles.save, self._profile, dict(state))

    async def _close_context(self) -> None:
        context, self._context = self._context, None
        if context is None:
            return
        try:
            await asyncio.wait_for(context.close(), timeout=self.settings.action_timeout_s)
        except (PlaywrightError, TimeoutError) as exc:
            log.warning("task %s: closing the context failed: %s", self.task_id, exc)
