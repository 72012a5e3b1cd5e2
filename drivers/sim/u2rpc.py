"""The JSON-RPC methods of the uiautomator2 on-device server, acting on the sim's screen.

Names, parameters and result shapes are what uiautomator2 3.x sends and expects; errors carry the
Java exception names uiautomator2 recognises (UiObjectNotFoundException).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from drivers.sim.screen import U2_KEY_NAMES, Screen
from drivers.sim.selectors import SelectorError, describe, find_all
from drivers.sim.views import View, hierarchy_xml

NOT_FOUND = -32002
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
POLL_INTERVAL = 0.1
MAX_WAIT_MS = 120_000


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _not_found(selector: dict[str, Any]) -> RpcError:
    return RpcError(
        NOT_FOUND, f"androidx.test.uiautomator.UiObjectNotFoundException: {describe(selector)}"
    )


Handler = Callable[..., Awaitable[Any]]


class U2Methods:
    def __init__(self, screen: Screen, product_name: str, sdk: int) -> None:
        self._screen = screen
        self._product_name = product_name
        self._sdk = sdk
        self._handlers: dict[str, Handler] = {
            "deviceInfo": self.device_info,
            "click": self.click,
            "longClick": self.long_click,
            "injectInputEvent": self.inject_input_event,
            "swipe": self.swipe,
            "swipePoints": self.swipe_points,
            "drag": self.swipe,
            "pressKey": self.press_key,
            "pressKeyCode": self.press_key_code,
            "wakeUp": self.wake_up,
            "sleep": self.sleep,
            "setOrientation": self.set_orientation,
            "freezeRotation": self.freeze_rotation,
            "getClipboard": self.get_clipboard,
            "setClipboard": self.set_clipboard,
            "pasteClipboard": self.paste_clipboard,
            "clearInputText": self.clear_input_text,
            "getLastToast": self.get_last_toast,
            "clearLastToast": self.clear_last_toast,
            "makeToast": self.make_toast,
            "takeScreenshot": self.take_screenshot,
            "dumpWindowHierarchy": self.dump_window_hierarchy,
            "exist": self.exist,
            "count": self.count,
            "objInfo": self.obj_info,
            "objInfoOfAllInstances": self.obj_info_all,
            "waitForExists": self.wait_for_exists,
            "waitUntilGone": self.wait_until_gone,
            "getText": self.get_text,
            "setText": self.set_text,
            "clearTextField": self.clear_text_field,
            "scrollForward": self.scroll_forward,
            "scrollBackward": self.scroll_backward,
            "scrollToBeginning": self.scroll_to_beginning,
            "scrollToEnd": self.scroll_to_end,
            "scrollTo": self.scroll_to,
        }

    async def call(self, method: str, params: Any) -> Any:
        handler = self._handlers.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")
        if isinstance(params, dict) and not params:
            args: list[Any] = []
        elif isinstance(params, list):
            args = params
        elif params is None:
            args = []
        else:
            raise RpcError(
                INVALID_PARAMS, "params must be an array (named params are not supported)"
            )
        try:
            return await handler(*args)
        except TypeError as exc:
            raise RpcError(INVALID_PARAMS, f"Invalid params for {method}: {exc}") from exc
        except SelectorError as exc:
            raise RpcError(INVALID_PARAMS, f"Invalid selector for {method}: {exc}") from exc

    # -- device -------------------------------------------------------------------------------

    async def device_info(self) -> dict[str, Any]:
        screen = self._screen
        dp = screen.density / 160
        return {
            "currentPackageName": screen.current.package,
            "displayHeight": screen.height,
            "displayRotation": 0,
            "displaySizeDpX": round(screen.width / dp),
            "displaySizeDpY": round(screen.height / dp),
            "displayWidth": screen.width,
            "productName": self._product_name,
            "screenOn": screen.screen_on,
            "sdkInt": self._sdk,
            "naturalOrientation": True,
        }

    async def wake_up(self) -> None:
        self._screen.screen_on = True

    async def sleep(self) -> None:
        self._screen.screen_on = False

    async def set_orientation(self, value: str) -> None:
        if value not in ("natural", "n", "0"):
            raise RpcError(INVALID_PARAMS, f"orientation {value!r}: the sim only has natural")

    async def freeze_rotation(self, freeze: bool = True) -> None:
        return None

    # -- gestures -----------------------------------------------------------------------------

    async def click(self, *args: Any) -> bool:
        if args and isinstance(args[0], dict):
            return self._click_views(args[0])
        x, y = float(args[0]), float(args[1])
        self._screen.tap(x, y)
        return True

    async def long_click(self, *args: Any) -> bool:
        return await self.click(*args)

    def _click_views(self, selector: dict[str, Any]) -> bool:
        views = find_all(self._screen.tree(), selector)
        if not views:
            return False
        left, top, right, bottom = views[0].bounds
        self._screen.tap((left + right) / 2, (top + bottom) / 2)
        return True

    async def inject_input_event(self, action: int, x: float, y: float, meta: int = 0) -> bool:
        self._screen.touch(int(action), float(x), float(y))
        return True

    async def swipe(self, fx: float, fy: float, tx: float, ty: float, steps: int = 10) -> bool:
        self._screen.swipe(float(fx), float(fy), float(tx), float(ty))
        return True

    async def swipe_points(self, points: list[float], steps: int = 10) -> bool:
        if len(points) < 4 or len(points) % 2:
            raise RpcError(INVALID_PARAMS, "swipePoints needs at least two x,y pairs")
        self._screen.swipe(points[0], points[1], points[-2], points[-1])
        return True

    async def press_key(self, name: str) -> bool:
        code = U2_KEY_NAMES.get(str(name).lower())
        if code is None:
            return False
        self._screen.key(code)
        return True

    async def press_key_code(self, code: int, meta: int = 0) -> bool:
        self._screen.key(int(code))
        return True

    # -- text and clipboard -------------------------------------------------------------------

    async def get_clipboard(self) -> str | None:
        return self._screen.clipboard or None

    async def set_clipboard(self, label: str | None, text: str) -> None:
        self._screen.clipboard = str(text)

    async def paste_clipboard(self) -> None:
        self._screen.type_text(self._screen.clipboard)

    async def clear_input_text(self) -> None:
        self._screen.clear_focused()

    async def get_last_toast(self) -> str | None:
        return self._screen.toast

    async def clear_last_toast(self) -> None:
        self._screen.toast = None

    async def make_toast(self, text: str, duration_ms: float = 1000) -> bool:
        self._screen.toast = str(text)
        return True

    # -- screen content -----------------------------------------------------------------------

    async def take_screenshot(self, scale: float = 1.0, quality: int = 80) -> str:
        return self._screen.jpeg_base64(float(scale), int(quality))

    async def dump_window_hierarchy(
        self, compressed: bool = False, max_depth: int = 50, root_in_active: bool | None = None
    ) -> str:
        return hierarchy_xml(self._screen.tree(), int(max_depth))

    # -- selectors ----------------------------------------------------------------------------

    def _find(self, selector: dict[str, Any]) -> list[View]:
        return find_all(self._screen.tree(), selector)

    def _first(self, selector: dict[str, Any]) -> View:
        views = self._find(selector)
        if not views:
            raise _not_found(selector)
        return views[0]

    async def exist(self, selector: dict[str, Any]) -> bool:
        return bool(self._find(selector))

    async def count(self, selector: dict[str, Any]) -> int:
        return len(self._find(selector))

    async def obj_info(self, selector: dict[str, Any]) -> dict[str, Any]:
        return self._first(selector).info()

    async def obj_info_all(self, selector: dict[str, Any]) -> list[dict[str, Any]]:
        return [view.info() for view in self._find(selector)]

    async def _wait(self, selector: dict[str, Any], timeout_ms: int, present: bool) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(int(timeout_ms), MAX_WAIT_MS) / 1000
        while True:
            if bool(self._find(selector)) == present:
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(POLL_INTERVAL)

    async def wait_for_exists(self, selector: dict[str, Any], timeout_ms: int = 0) -> bool:
        return await self._wait(selector, timeout_ms, present=True)

    async def wait_until_gone(self, selector: dict[str, Any], timeout_ms: int = 0) -> bool:
        return await self._wait(selector, timeout_ms, present=False)

    async def get_text(self, selector: dict[str, Any]) -> str:
        return self._first(selector).text

    async def set_text(self, selector: dict[str, Any], text: str) -> bool:
        return self._screen.set_field(self._first(selector), str(text))

    async def clear_text_field(self, selector: dict[str, Any]) -> None:
        self._screen.set_field(self._first(selector), "")

    # -- scrolling ----------------------------------------------------------------------------

    def _scroll(self, selector: dict[str, Any], vertical: bool, forward: bool) -> bool:
        view = self._first(selector)
        if not vertical:
            return False
        left, top, right, bottom = view.bounds
        x = (left + right) / 2
        span = (bottom - top) * 0.8
        start = bottom - (bottom - top) * 0.1
        if forward:
            return self._screen.swipe(x, start, x, start - span)
        return self._screen.swipe(x, start - span, x, start)

    async def scroll_forward(
        self, selector: dict[str, Any], vertical: bool = True, steps: int = 55
    ) -> bool:
        return self._scroll(selector, bool(vertical), forward=True)

    async def scroll_backward(
        self, selector: dict[str, Any], vertical: bool = True, steps: int = 55
    ) -> bool:
        return self._scroll(selector, bool(vertical), forward=False)

    async def scroll_to_beginning(
        self,
        selector: dict[str, Any],
        vertical: bool = True,
        max_swipes: int = 500,
        steps: int = 55,
    ) -> bool:
        for _ in range(int(max_swipes)):
            if not self._scroll(selector, bool(vertical), forward=False):
                break
        return True

    async def scroll_to_end(
        self,
        selector: dict[str, Any],
        vertical: bool = True,
        max_swipes: int = 500,
        steps: int = 55,
    ) -> bool:
        for _ in range(int(max_swipes)):
            if not self._scroll(selector, bool(vertical), forward=True):
                break
        return True

    async def scroll_to(
        self, selector: dict[str, Any], target: dict[str, Any], vertical: bool = True
    ) -> bool:
        for _ in range(500):
            if self._find(target):
                return True
            if not self._scroll(selector, bool(vertical), forward=True):
                return bool(self._find(target))
        return False
