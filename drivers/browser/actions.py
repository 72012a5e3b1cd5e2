"""Every `agent.actions.*` call a browser device can do: one params model and one function each.

`ACTIONS` maps an action name to its params model and its function; `BrowserSession.call`
validates the script's params with the model, runs the function under the model's time budget
and maps failures to `ActionError`. Adding an action is one `@action(...)` function here.

Coordinates are device pixels (CSS pixels times the slot's device scale factor), durations are
milliseconds, as in /work/shared/spec/actions.md.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import mimetypes
from base64 import b64decode
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import FilePayload
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.filenames import MAX_NAME_BYTES, safe_file_name
from drivers.browser import taskfiles
from drivers.browser.config import BrowserSettings
from drivers.browser.dom import (
    MAX_DEPTH,
    MAX_NODES,
    MAX_TEXT,
    SKIPPED_TAGS,
    WALK_JS,
    NodeSelector,
    Snapshot,
)
from drivers.images import ScreenshotRequest, render_screenshot
from drivers.nodes import Node
from drivers.ocr import QUEUE_GRACE_S, TIMEOUT_S, RecognizeRequest, recognize
from drivers.registry import ActionTable

if TYPE_CHECKING:
    from drivers.browser.session import BrowserSession

ANDROID_ONLY = frozenset(
    {"launch_app", "stop_app", "list_apps", "launch_intent", "shell", "recents", "dpad",
     "hide_keyboard", "airplane"}
)  # fmt: skip
"""Actions of the script API that only Android devices can do (UnsupportedAction here)."""

MAX_DURATION_MS = 60_000
MAX_WAIT_MS = 600_000
SWIPE_STEP_MS = 16
"""One mouse move per frame (~60 Hz) during a swipe."""
LONG_CLICK_MS = 600
"""How long node_action's long_click presses (a press this long is a long press on Android)."""
SNAPSHOT_ATTEMPTS = 3
NAVIGATED = "Execution context was destroyed"
TYPE_MS_PER_CHAR = 20
"""Budget added per typed character: each is its own key event round trip."""


class BadRequest(Exception):
    """The call was well-formed but cannot be done as asked; the message goes to the script."""


class Params(BaseModel):
    """Base of every action's params: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")

    def budget_s(self, settings: BrowserSettings) -> float:
        """The longest the whole action may take."""
        return settings.action_timeout_s


ACTIONS = ActionTable()
action = ACTIONS.action


def budget_of(params: BaseModel, settings: BrowserSettings) -> float:
    if isinstance(params, Params):
        return params.budget_s(settings)
    return settings.action_timeout_s


# ---- navigation --------------------------------------------------------------------------


class NavigationParams(Params):
    def budget_s(self, settings: BrowserSettings) -> float:
        return settings.navigation_timeout_s + settings.action_timeout_s


class BrowseParams(NavigationParams):
    url: str = Field(description="An http(s), about: or data: URL.")
    clear_existing_data: bool = Field(
        default=False, description="Start from a fresh context: no cookies, storage or history."
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.lower().startswith(("http://", "https://", "about:", "data:")):
            raise ValueError("must start with http://, https://, about: or data:")
        return url


@action("browse", BrowseParams)
async def browse(s: BrowserSession, p: BrowseParams) -> dict[str, Any]:
    if p.clear_existing_data:
        await s.new_context()
    return await s.goto(p.url)


@action("go_home", NavigationParams)
async def go_home(s: BrowserSession, p: NavigationParams) -> dict[str, Any]:
    return await s.goto(s.slot.start_url)


@action("go_back", NavigationParams)
async def go_back(s: BrowserSession, p: NavigationParams) -> dict[str, Any]:
    page = s.page()
    await page.go_back(timeout=s.settings.navigation_timeout_s * 1000)
    return {"url": page.url}


# ---- touch (mouse) -----------------------------------------------------------------------


class PointParams(Params):
    x: float = Field(ge=0, description="Device pixels from the left edge of the viewport.")
    y: float = Field(ge=0, description="Device pixels from the top edge of the viewport.")


class DoubleTapParams(PointParams):
    interval_ms: int = Field(default=100, ge=0, le=MAX_DURATION_MS)

    def budget_s(self, settings: BrowserSettings) -> float:
        return settings.action_timeout_s + self.interval_ms / 1000


class HoldParams(PointParams):
    duration_ms: int = Field(ge=0, le=MAX_DURATION_MS)

    def budget_s(self, settings: BrowserSettings) -> float:
        return settings.action_timeout_s + self.duration_ms / 1000


class SwipeParams(Params):
    x1: float = Field(ge=0)
    y1: float = Field(ge=0)
    x2: float = Field(ge=0)
    y2: float = Field(ge=0)
    duration_ms: int = Field(ge=0, le=MAX_DURATION_MS)

    def budget_s(self, settings: BrowserSettings) -> float:
        return settings.action_timeout_s + self.duration_ms / 1000


class SwipePolyParams(Params):
    x: float = Field(ge=0)
    y: float = Field(ge=0)
    points: list[tuple[float, float]] = Field(
        min_length=1, description="[x, y] pairs the drag goes through after (x, y)."
    )
    duration_ms: int = Field(ge=0, le=MAX_DURATION_MS)

    def budget_s(self, settings: BrowserSettings) -> float:
        return settings.action_timeout_s + self.duration_ms / 1000


class TapSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    x: float = Field(ge=0)
    y: float = Field(ge=0)
    delay: int = Field(default=0, ge=0, le=MAX_DURATION_MS, description="ms before this tap.")


class MultiTapParams(Params):
    taps: list[TapSpec] = Field(min_length=1)

    def budget_s(self, settings: BrowserSettings) -> float:
        return settings.action_timeout_s + sum(t.delay for t in self.taps) / 1000


class ScrollParams(Params):
    direction: Literal["up", "down", "left", "right"] = Field(
        description="Where the view moves: 'down' brings content further down into view."
    )
    scale: float = Field(default=0.9, gt=0, le=10, description="How far, in viewport sizes.")


@action("tap", PointParams)
async def tap(s: BrowserSession, p: PointParams) -> None:
    x, y = s.to_css(p.x, p.y)
    await s.page().mouse.click(x, y)


@action("double_tap", DoubleTapParams)
async def double_tap(s: BrowserSession, p: DoubleTapParams) -> None:
    x, y = s.to_css(p.x, p.y)
    mouse = s.page().mouse
    await mouse.move(x, y)
    await mouse.down(click_count=1)
    await mouse.up(click_count=1)
    await asyncio.sleep(p.interval_ms / 1000)
    # The second press must say click_count=2 for the page to see a dblclick.
    await mouse.down(click_count=2)
    await mouse.up(click_count=2)


@action("hold", HoldParams)
async def hold(s: BrowserSession, p: HoldParams) -> None:
    x, y = s.to_css(p.x, p.y)
    await s.page().mouse.click(x, y, delay=p.duration_ms)


async def drag(s: BrowserSession, points: list[tuple[float, float]], duration_ms: int) -> None:
    """Press at the first point, move through the others (one move per frame), release."""
    css = [s.to_css(x, y) for x, y in points]
    segments = list(pairwise(css))
    steps = max(2, duration_ms // SWIPE_STEP_MS // len(segments))
    pause = duration_ms / 1000 / (steps * len(segments))
    mouse = s.page().mouse
    await mouse.move(*css[0])
    await mouse.down()
    for (x1, y1), (x2, y2) in segments:
        for i in range(1, steps + 1):
            await asyncio.sleep(pause)
            await mouse.move(x1 + (x2 - x1) * i / steps, y1 + (y2 - y1) * i / steps)
    await mouse.up()


@action("swipe", SwipeParams)
async def swipe(s: BrowserSession, p: SwipeParams) -> None:
    await drag(s, [(p.x1, p.y1), (p.x2, p.y2)], p.duration_ms)


@action("swipe_poly", SwipePolyParams)
async def swipe_poly(s: BrowserSession, p: SwipePolyParams) -> None:
    await drag(s, [(p.x, p.y), *p.points], p.duration_ms)


@action("multi_tap", MultiTapParams)
async def multi_tap(s: BrowserSession, p: MultiTapParams) -> None:
    spots = [(s.to_css(t.x, t.y), t.delay) for t in p.taps]
    for (x, y), delay in spots:
        await asyncio.sleep(delay / 1000)
        await s.page().mouse.click(x, y)


@action("scroll", ScrollParams)
async def scroll(s: BrowserSession, p: ScrollParams) -> None:
    width, height = s.viewport.width, s.viewport.height
    dx = {"left": -width, "right": width}.get(p.direction, 0) * p.scale
    dy = {"up": -height, "down": height}.get(p.direction, 0) * p.scale
    mouse = s.page().mouse
    # Wheel events go to the element under the pointer: aim at the middle of the screen.
    await mouse.move(width / 2, height / 2)
    await mouse.wheel(dx, dy)


# ---- keyboard and clipboard --------------------------------------------------------------

_NAMED_KEYS = [
    "Enter", "Tab", "Backspace", "Delete", "Escape", "Space", "Insert", "Home", "End", "PageUp",
    "PageDown", "ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Shift", "Control", "Alt",
    "Meta", "ControlOrMeta", "CapsLock", *(f"F{n}" for n in range(1, 13)),
]  # fmt: skip
_KEY_NAMES = {name.lower(): name for name in _NAMED_KEYS}


def playwright_key(key: str) -> str:
    """Named keys case-insensitively ('enter' -> 'Enter'), in combos too ('control+a')."""
    return "+".join(_KEY_NAMES.get(part.lower(), part) for part in key.split("+"))


class InputKeyParams(Params):
    key: str = Field(min_length=1, description="A Playwright key name, e.g. Enter, Control+A.")
    duration_ms: int | None = Field(
        default=None, ge=0, le=MAX_DURATION_MS, description="How long to hold the key."
    )
    state: Literal["down", "up"] | None = Field(
        default=None, description="Only press ('down') or only release ('up') the key."
    )

    def budget_s(self, settings: BrowserSettings) -> float:
        return settings.action_timeout_s + (self.duration_ms or 0) / 1000


class WriteTextParams(Params):
    text: str
    clear: bool = Field(default=False, description="Empty the focused field first.")

    def budget_s(self, settings: BrowserSettings) -> float:
        return settings.action_timeout_s + len(self.text) * TYPE_MS_PER_CHAR / 1000


class CopyTextParams(Params):
    text: str


@action("input_key", InputKeyParams)
async def input_key(s: BrowserSession, p: InputKeyParams) -> None:
    keyboard = s.page().keyboard
    key = playwright_key(p.key)
    if p.state == "down":
        await keyboard.down(key)
    elif p.state == "up":
        await keyboard.up(key)
    else:
        await keyboard.press(key, delay=p.duration_ms or 0)


@action("write_text", WriteTextParams)
async def write_text(s: BrowserSession, p: WriteTextParams) -> None:
    await s.require_focus()
    keyboard = s.page().keyboard
    if p.clear:
        await keyboard.press("ControlOrMeta+a")
        await keyboard.press("Backspace")
    await keyboard.type(p.text)


@action("copy_text", CopyTextParams)
async def copy_text(s: BrowserSession, p: CopyTextParams) -> None:
    s.clipboard = p.text


@action("paste", Params)
async def paste(s: BrowserSession, p: Params) -> None:
    await s.require_focus()
    await s.page().keyboard.insert_text(s.clipboard)


@action("reverse_copy", Params)
async def reverse_copy(s: BrowserSession, p: Params) -> str:
    return s.clipboard


# ---- seeing the screen -------------------------------------------------------------------


@action("screenshot", ScreenshotRequest)
async def screenshot(s: BrowserSession, p: ScreenshotRequest) -> dict[str, object]:
    png = await s.page().screenshot(type="png", timeout=s.settings.action_timeout_s * 1000)
    # Decoding, scaling and encoding take tens of milliseconds: keep them off the event loop.
    result = await asyncio.to_thread(render_screenshot, png, p)
    return result.as_result()


class RecognizeParams(RecognizeRequest, Params):
    def budget_s(self, settings: BrowserSettings) -> float:
        return settings.action_timeout_s + TIMEOUT_S + QUEUE_GRACE_S


@action("recognize_text", RecognizeParams)
async def recognize_text(s: BrowserSession, p: RecognizeParams) -> dict[str, Any]:
    # A JPEG at quality 100 reads as well as a PNG and is faster to make and to decode.
    image = await s.page().screenshot(
        type="jpeg", quality=100, timeout=s.settings.action_timeout_s * 1000
    )
    return await recognize(image, p)


async def snapshot(s: BrowserSession) -> Snapshot:
    args = [s.slot.device_scale_factor, MAX_NODES, MAX_DEPTH, MAX_TEXT, list(SKIPPED_TAGS)]
    for attempt in range(1, SNAPSHOT_ATTEMPTS + 1):
        page = s.page()
        try:
            raw: str = await page.evaluate(WALK_JS, args)
            return Snapshot(raw)
        except PlaywrightError as exc:
            # A navigation replaced the document under the walk, or the tab closed (the one
            # under it is now current): look again.
            navigated = NAVIGATED in str(exc)
            if not (navigated or page.is_closed()) or attempt == SNAPSHOT_ATTEMPTS:
                raise
            if navigated:
                await page.wait_for_load_state("domcontentloaded")
    raise AssertionError("unreachable")


class WaitParams(Params):
    selector: NodeSelector
    timeout_ms: int = Field(default=30_000, ge=0, le=MAX_WAIT_MS)
    interval_ms: int = Field(default=500, ge=50, le=MAX_DURATION_MS)

    def budget_s(self, settings: BrowserSettings) -> float:
        return self.timeout_ms / 1000 + settings.action_timeout_s


@action("screen_content", Params)
async def screen_content(s: BrowserSession, p: Params) -> Node | None:
    return (await snapshot(s)).root


@action("find", NodeSelector)
async def find(s: BrowserSession, p: NodeSelector) -> list[Node]:
    return p.find(await snapshot(s))


async def _wait(s: BrowserSession, p: WaitParams, present: bool) -> list[Node]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + p.timeout_ms / 1000
    while True:
        nodes = p.selector.find(await snapshot(s))
        if bool(nodes) == present:
            return nodes
        if loop.time() >= deadline:
            wanted = p.selector.model_dump(exclude_none=True)
            what = "appeared" if present else "went away"
            raise BadRequest(f"no node matching {wanted} {what} within {p.timeout_ms} ms")
        await asyncio.sleep(min(p.interval_ms / 1000, max(0.0, deadline - loop.time())))


class NodeBounds(BaseModel):
    left: int
    top: int
    right: int
    bottom: int


class NodeRef(BaseModel):
    """A node from screen_content / find; only its bounds matter to act on it."""

    bounds: NodeBounds


class NodeActionParams(Params):
    node: NodeRef
    action: Literal["click", "long_click", "set_text"]
    data: str | None = Field(default=None, description="The text for set_text.")


@action("node_action", NodeActionParams)
async def node_action(s: BrowserSession, p: NodeActionParams) -> None:
    b = p.node.bounds
    x, y = s.to_css((b.left + b.right) / 2, (b.top + b.bottom) / 2)
    mouse, keyboard = s.page().mouse, s.page().keyboard
    if p.action == "click":
        await mouse.click(x, y)
    elif p.action == "long_click":
        await mouse.click(x, y, delay=LONG_CLICK_MS)
    else:
        if p.data is None:
            raise BadRequest("set_text needs data: the text to put in the node")
        await mouse.click(x, y)
        await keyboard.press("ControlOrMeta+a")
        await keyboard.press("Backspace")
        await keyboard.type(p.data)


@action("wait_for_node", WaitParams)
async def wait_for_node(s: BrowserSession, p: WaitParams) -> list[Node]:
    return await _wait(s, p, present=True)


@action("wait_for_node_gone", WaitParams)
async def wait_for_node_gone(s: BrowserSession, p: WaitParams) -> None:
    await _wait(s, p, present=False)


# ---- browser only ------------------------------------------------------------------------


class EvaluateParams(Params):
    js: str = Field(min_length=1, description="A JavaScript expression or function to run.")


def plain_file_name(name: str) -> str:
    """`name` if it is already a safe name (agent/filenames.py): refused, not reduced, so that
    save_file and set_input_files can never disagree on what a name means."""
    if safe_file_name(name) != name:
        raise ValueError(
            f"{name!r} must be a plain file name: no folders, no '..', no control characters, "
            f"at most {MAX_NAME_BYTES} bytes"
        )
    return name


class SaveFileParams(Params):
    name: str = Field(min_length=1, max_length=200, description="A plain file name, no folders.")
    data: str
    base64: bool = Field(default=False, description="`data` is base64 of the file's bytes.")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        return plain_file_name(name)


INPUT_KIND_JS = """e => e instanceof HTMLInputElement
  ? `input type=${e.type}` : e.tagName.toLowerCase()"""
"""What an element is, for set_input_files: `input type=file`, `input type=text`, `div`, ..."""


class SetInputFilesParams(Params):
    selector: str = Field(min_length=1, description="CSS selector of an <input type=file>.")
    files: list[str] = Field(description="Names of files saved earlier with save_file.")

    @field_validator("files")
    @classmethod
    def _plain_names(cls, files: list[str]) -> list[str]:
        return [plain_file_name(name) for name in files]

    def budget_s(self, settings: BrowserSettings) -> float:
        # Finding the input and setting its files each have Playwright's action timeout, which
        # must run out before this budget so that its message (what was awaited) is the one.
        return 2 * settings.action_timeout_s


@action("evaluate", EvaluateParams)
async def evaluate(s: BrowserSession, p: EvaluateParams) -> Any:
    result = await s.page().evaluate(p.js)
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"the result is not JSON-serialisable: {exc}") from exc
    return result


@action("save_file", SaveFileParams)
async def save_file(s: BrowserSession, p: SaveFileParams) -> str:
    """Into the task's folder, the script's current directory: the name it returns is what the
    script opens (`open(name)`) and what set_input_files takes."""
    if p.base64:
        try:
            content = b64decode(p.data, validate=True)
        except binascii.Error as exc:
            raise BadRequest(f"data is not valid base64: {exc}") from exc
    else:
        content = p.data.encode()
    await asyncio.to_thread(taskfiles.write, s.files_dir() / p.name, content, s.files_owner)
    return p.name


@action("set_input_files", SetInputFilesParams)
async def set_input_files(s: BrowserSession, p: SetInputFilesParams) -> None:
    payloads: list[FilePayload] = []
    for name in p.files:
        content = await asyncio.to_thread(taskfiles.read, s.files_dir() / name)
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        payloads.append({"name": name, "mimeType": mime, "buffer": content})
    page = s.page()
    timeout_ms = s.settings.action_timeout_s * 1000
    element = await page.wait_for_selector(p.selector, state="attached", timeout=timeout_ms)
    assert element is not None, "state=attached waits for an element or raises"
    kind = await element.evaluate(INPUT_KIND_JS)
    if kind != "input type=file":
        # Playwright would retry a wrong kind of element until its timeout, saying only that.
        raise BadRequest(
            f"{p.selector!r} is <{kind}>, not an <input type=file>: files can only be set on a "
            "file input"
        )
    await element.set_input_files(payloads, timeout=timeout_ms)
