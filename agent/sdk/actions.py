"""`agent.actions`: device control. Each method is one action run by the device's driver.

Units: device pixels and milliseconds. An action the device cannot do, or that fails, raises
`ActionFailed` with a message naming the action. Nodes (from `screen_content`, `find`) are dicts
with `class_name`, `package_name`, `view_id`, `text`, `description`, `hint_text`, the flags
(`clickable`, `enabled`, `focused`, `checked`, `scrollable`, `selected`, `visible`), `bounds`
{left, top, right, bottom} and `children`. Selectors are dicts of node fields to match, e.g.
`{"text": "OK"}` or `{"text_contains": "Sign", "class_name": "button"}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.sdk.records import Node
from agent.sdk.results import ScreenshotResult, TextResult
from agent.sdk.transport import Namespace, Transport


class Actions(Namespace, path="agent.actions"):
    __slots__ = ("_transport",)

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def _act(self, name: str, /, **params: Any) -> Any:
        # Unset optional arguments are left out so that the driver's defaults apply.
        sent = {k: v for k, v in params.items() if v is not None}
        return await self._transport.call(f"actions.{name}", sent)

    # ---- touch ----

    async def tap(self, x: float, y: float) -> None:
        """Tap at (x, y)."""
        await self._act("tap", x=x, y=y)

    async def double_tap(self, x: float, y: float, interval_ms: int = 100) -> None:
        """Two taps at (x, y), `interval_ms` apart."""
        await self._act("double_tap", x=x, y=y, interval_ms=interval_ms)

    async def hold(self, x: float, y: float, duration_ms: int) -> None:
        """Press at (x, y) for `duration_ms` (a long click)."""
        await self._act("hold", x=x, y=y, duration_ms=duration_ms)

    async def swipe(self, x1: float, y1: float, x2: float, y2: float, duration_ms: int) -> None:
        """Drag from (x1, y1) to (x2, y2) in `duration_ms`."""
        await self._act("swipe", x1=x1, y1=y1, x2=x2, y2=y2, duration_ms=duration_ms)

    async def swipe_poly(
        self, x: float, y: float, points: Sequence[Sequence[float]], duration_ms: int
    ) -> None:
        """Drag from (x, y) through `points` ([x, y] pairs) in `duration_ms`."""
        await self._act("swipe_poly", x=x, y=y, points=points, duration_ms=duration_ms)

    async def multi_tap(self, taps: Sequence[dict[str, float]]) -> None:
        """Taps one after another: each `{x, y, delay}` (delay in ms before that tap)."""
        await self._act("multi_tap", taps=taps)

    async def scroll(self, direction: str, scale: float = 0.9) -> None:
        """Scroll `direction` (up, down, left, right) by `scale` screens."""
        await self._act("scroll", direction=direction, scale=scale)

    # ---- keys and navigation ----

    async def go_home(self) -> Any:
        """The home screen (a browser: its start URL)."""
        return await self._act("go_home")

    async def go_back(self) -> Any:
        """Back (a browser: history back)."""
        return await self._act("go_back")

    async def recents(self) -> None:
        """The recent-apps screen (Android)."""
        await self._act("recents")

    async def dpad(self, direction: str) -> None:
        """A d-pad key: up, down, left, right, center (Android)."""
        await self._act("dpad", direction=direction)

    async def input_key(
        self, key: str, duration_ms: int | None = None, state: str | None = None
    ) -> None:
        """Press `key`; hold it `duration_ms`, or only press (`state="down"`) or release ("up")."""
        await self._act("input_key", key=key, duration_ms=duration_ms, state=state)

    # ---- text ----

    async def write_text(self, text: str, clear: bool = False) -> None:
        """Type `text` into the focused field, emptying it first when `clear`."""
        await self._act("write_text", text=text, clear=clear)

    async def copy_text(self, text: str) -> None:
        """Put `text` on the clipboard."""
        await self._act("copy_text", text=text)

    async def paste(self) -> None:
        """Paste the clipboard into the focused field."""
        await self._act("paste")

    async def reverse_copy(self) -> str:
        """The clipboard's text."""
        text: str = await self._act("reverse_copy")
        return text

    async def hide_keyboard(self) -> None:
        """Hide the on-screen keyboard."""
        await self._act("hide_keyboard")

    # ---- apps (Android) ----

    async def launch_app(self, package: str, clear_existing: bool = False) -> Any:
        """Start app `package`, clearing its data first when `clear_existing`."""
        return await self._act("launch_app", package=package, clear_existing=clear_existing)

    async def stop_app(self, package: str) -> Any:
        """Force-stop app `package`."""
        return await self._act("stop_app", package=package)

    async def list_apps(self) -> Any:
        """The installed apps."""
        return await self._act("list_apps")

    async def launch_intent(self, **intent: Any) -> Any:
        """Start an intent (action, data, package, extras, ... as keywords)."""
        return await self._act("launch_intent", **intent)

    async def shell(self, command: str) -> Any:
        """Run `command` with adb shell (Android only)."""
        return await self._act("shell", command=command)

    # ---- browser ----

    async def browse(self, url: str, clear_existing_data: bool = False) -> Any:
        """Open `url`; with `clear_existing_data`, in a fresh profile (no cookies, storage)."""
        return await self._act("browse", url=url, clear_existing_data=clear_existing_data)

    async def evaluate(self, js: str) -> Any:
        """Run JavaScript in the page; its JSON-serialisable result (browser only)."""
        return await self._act("evaluate", js=js)

    async def set_input_files(self, selector: str, files: Sequence[str]) -> None:
        """Attach files saved earlier with `save_file` to an <input type=file> (browser only)."""
        await self._act("set_input_files", selector=selector, files=files)

    # ---- screen ----

    async def screenshot(
        self,
        max_width: int,
        max_height: int,
        quality: int,
        crop: tuple[int, int, int, int] | None = None,
        keep: bool = False,
    ) -> ScreenshotResult:
        """A JPEG of the screen scaled down (never up) to fit max_width x max_height at
        `quality` (1-100); `crop` (x1, y1, x2, y2, original pixels) is applied first.
        `keep=True` also keeps it with the run (its artifacts, docs/timeline.md)."""
        raw = await self._act(
            "screenshot",
            max_width=max_width,
            max_height=max_height,
            quality=quality,
            crop=crop,
            keep=keep or None,
        )
        return ScreenshotResult.model_validate(raw)

    async def recognize_text(
        self, crop: tuple[int, int, int, int] | None = None, lang: str = "eng"
    ) -> TextResult:
        """The text on the screen, read by Tesseract OCR: `.text`, and `.blocks`, one per word
        with its box (x, y, width, height in screen pixels) and confidence (0-100). `crop`
        (x1, y1, x2, y2) reads only that region (boxes stay in screen pixels); `lang` is
        Tesseract's language name(s), e.g. "eng" or "eng+deu", installed on the host."""
        raw = await self._act("recognize_text", crop=crop, lang=lang)
        return TextResult.model_validate(raw)

    async def screen_content(self) -> Node | None:
        """The screen as a tree of nodes (the root node)."""
        root: Node | None = Node.of(await self._act("screen_content"))
        return root

    async def find(self, **selector: Any) -> list[Node]:
        """The visible nodes matching every given field, e.g. `find(text="OK")`."""
        return _nodes(await self._act("find", **selector))

    async def wait_for_node(
        self, selector: dict[str, Any], timeout_ms: int = 30000, interval_ms: int = 500
    ) -> list[Node]:
        """Wait until a node matches `selector`; the matching nodes. Fails after `timeout_ms`."""
        nodes = await self._act(
            "wait_for_node", selector=selector, timeout_ms=timeout_ms, interval_ms=interval_ms
        )
        return _nodes(nodes)

    async def wait_for_node_gone(
        self, selector: dict[str, Any], timeout_ms: int = 30000, interval_ms: int = 500
    ) -> None:
        """Wait until no node matches `selector`. Fails after `timeout_ms`."""
        await self._act(
            "wait_for_node_gone", selector=selector, timeout_ms=timeout_ms, interval_ms=interval_ms
        )

    async def node_action(self, node: Node | dict[str, Any], action: str, data: Any = None) -> Any:
        """Do `action` (click, long_click, set_text, ...) on a node found earlier."""
        return await self._act("node_action", node=node, action=action, data=data)

    # ---- files ----

    async def save_file(self, name: str, data: str, base64: bool = False) -> str:
        """Save a file on the device; `data` is text, or base64 of the bytes when `base64`.
        Android: pushed to /sdcard/Download, returns that path on the phone. Browser: kept in
        the task's own work dir (the script's current directory), returns the name to open it
        with (`open(name)`) or to give to `set_input_files`."""
        where: str = await self._act("save_file", name=name, data=data, base64=base64)
        return where

    # ---- network (Android) ----

    async def airplane(self, on: bool) -> bool:
        """Switch airplane mode on or off (Android); the new state. The phone is switched back
        off after the task if the script left it on."""
        state: bool = await self._act("airplane", on=on)
        return state

    # camelCase names of the original API
    doubleTap = double_tap
    swipePoly = swipe_poly
    multiTap = multi_tap
    goHome = go_home
    goBack = go_back
    inputKey = input_key
    writeText = write_text
    copyText = copy_text
    reverseCopy = reverse_copy
    hideKeyboard = hide_keyboard
    launchApp = launch_app
    stopApp = stop_app
    listApps = list_apps
    launchIntent = launch_intent
    setInputFiles = set_input_files
    screenContent = screen_content
    waitForNode = wait_for_node
    waitForNodeGone = wait_for_node_gone
    nodeAction = node_action
    saveFile = save_file
    recognizeText = recognize_text


def _nodes(value: Any) -> list[Node]:
    """A driver's list of nodes as records (anything else as it is)."""
    nodes: list[Node] = [Node.of(n) for n in value] if isinstance(value, list) else value
    return nodes
