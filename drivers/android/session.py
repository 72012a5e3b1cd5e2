"""One task's use of an Android phone: the dispatch of the script's actions to
drivers/android/actions.py, and the reset after the task.

Each action runs whole in the phone's worker thread under a time budget (one call timeout twice
over, plus what the action itself waits); reads are retried once when the phone failed under
them (see READS). Failures come back as `ActionError` naming the action;
a phone that has left adb comes back as `DeviceLost`; any other failure of the phone (a timeout,
garbage, a dead uiautomator2 server) also makes the device check its health (the recovery
ladder), so the next action finds it working again or the task learns it is lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, NoReturn

from drivers.android.actions import (
    ACTIONS,
    BROWSER_ONLY,
    AirplaneParams,
    BadRequest,
    Context,
    airplane,
    extra_time_s,
    press,
)
from drivers.android.hierarchy import HierarchyError
from drivers.android.keys import keycode
from drivers.base import ActionError, DeviceLost, DeviceSession, UnsupportedAction
from drivers.images import ImageError
from drivers.ocr import OcrError, RecognizeRequest, recognize

if TYPE_CHECKING:
    from drivers.android.device import AndroidDevice

log = logging.getLogger(__name__)

READS = frozenset(
    {"screenshot", "screen_content", "find", "wait_for_node", "wait_for_node_gone",
     "reverse_copy", "list_apps", "copy_text", "recognize_text"}
)  # fmt: skip
"""Actions done twice are done once: retried once when the phone failed under them (a
uiautomator2 server that died mid-request is restarted by the retry's first call). Gestures,
typing and app control are not retried: the first attempt may have happened."""
CALLS_PER_ACTION = 2
"""An action's budget is this many call timeouts (most make one to four quick calls)."""
MAX_MESSAGE = 300


def describe(exc: BaseException) -> str:
    """An exception as one short line for the script: its type and first line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


def reset(c: Context) -> None:
    """Between tasks: force-stop what the task launched, switch off airplane mode if the task
    touched it (the next task, and the daemon's health checks, need the network), then go home
    (as configured)."""
    if c.settings.reset_stop_apps:
        for package in sorted(c.launched):
            c.phone.shell(["am", "force-stop", package])
    if c.airplane_set:
        airplane(c, AirplaneParams(on=False))
    if c.settings.reset_go_home:
        press(c, keycode("HOME"))


class AndroidSession(DeviceSession):
    def __init__(self, device: AndroidDevice, task_id: str) -> None:
        self.device = device
        self.task_id = task_id
        self.context = Context(phone=device.phone, settings=device.settings)
        self._lock = asyncio.Lock()
        self._closed = False

    async def call(self, action: str, params: dict[str, Any]) -> Any:
        if action in BROWSER_ONLY:
            raise UnsupportedAction(action, "android")
        entry, parsed = ACTIONS.prepare(action, params)
        settings = self.device.settings
        budget = settings.call_timeout_s * CALLS_PER_ACTION + extra_time_s(parsed)
        async with self._lock:
            if self._closed:
                raise ActionError(action, "the session is closed")
            if self.device.lost:
                raise DeviceLost(action, f"the phone {self.device.slot} is gone")
            for attempt in (1, 2):
                try:
                    done = await self.device.run(entry.run, self.context, parsed, deadline_s=budget)
                    if isinstance(parsed, RecognizeRequest):
                        # The capture is the phone's part; reading it is CPU work of its own.
                        return await recognize(done, parsed)
                    return done
                except (BadRequest, ImageError, HierarchyError, OcrError) as exc:
                    raise ActionError(action, str(exc)) from exc
                except Exception as exc:
                    if attempt == 1 and action in READS and await self.device.attached():
                        log.info("task %s: retrying %s: %s", self.task_id, action, describe(exc))
                        continue
                    await self._failed(action, exc)
            raise AssertionError("unreachable")

    async def _failed(self, action: str, exc: Exception) -> NoReturn:
        what = describe(exc)
        if not await self.device.attached():
            raise DeviceLost(action, f"the phone {self.device.slot} is gone ({what})") from exc
        log.warning("task %s: %s failed on %s: %s", self.task_id, action, self.device.slot, what)
        self.device.suspect(what)
        raise ActionError(action, f"the phone did not answer as expected: {what}") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            async with self._lock:
                if not self.device.lost and self.device.ready:
                    budget = self.device.settings.call_timeout_s * CALLS_PER_ACTION
                    await self.device.run(reset, self.context, deadline_s=budget)
        except Exception as exc:
            log.warning("task %s: resetting %s failed: %s", self.task_id, self.device.slot, exc)
        finally:
            await self.device.session_closed(self)
