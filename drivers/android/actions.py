"""Every `agent.actions.*` call an Android device can do: one params model and one function each.

`ACTIONS` maps an action name to its params model and its function; `AndroidSession.call`
validates the script's params with the model and runs the function in the phone's worker thread
(the functions block: adbutils and uiautomator2 are synchronous) under the model's time budget.
Coordinates are device pixels, durations milliseconds, as in /work/shared/spec/actions.md; the
params models are the browser driver's where the action is shared, so scripts port as they are.
"""

from __future__ import annotations

import binascii
import io
import math
import time
from base64 import b64decode, b64encode
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, field_validator
from uiautomator2._selector import Selector  # type: ignore[import-untyped,unused-ignore]

from drivers.android.config import AndroidSettings
from drivers.android.hierarchy import NodeSelector, Snapshot
from drivers.android.keys import DPAD, UnknownKey, keycode
from drivers.android.phone import DeviceAnswerError, Phone
from drivers.browser.actions import (
    MAX_DURATION_MS,
    MAX_WAIT_MS,
    CopyTextParams,
    DoubleTapParams,
    HoldParams,
    MultiTapParams,
    NodeActionParams,
    SaveFileParams,
    ScrollParams,
    SwipeParams,
    SwipePolyParams,
    WriteTextParams,
)
from drivers.images import ScreenshotRequest, ScreenshotResult, fit_size, render_screenshot
from drivers.nodes import Node
from drivers.ocr import RecognizeRequest
from drivers.registry import ActionTable

BROWSER_ONLY = frozenset({"evaluate", "set_input_files"})
"""Actions of the script API that only browsers can do (UnsupportedAction here)."""

DOWNLOAD_DIR = "/sdcard/Download"
SWIPE_STEP_MS = 5
"""uiautomator's swipe moves one step per ~5 ms: steps = duration / 5."""
MAX_SCROLL_PART = 0.8
"""The longest single scroll swipe, as a share of the screen (a swipe must start and end on it)."""
LONG_PRESS_MS = 500
CAPTURE_QUALITY = 80
"""The least JPEG quality the device captures at (uiautomator2's default); a script asking for
less gets the capture re-encoded."""
TYPE_MS_PER_CHAR = 2


class BadRequest(Exception):
    """The call was well-formed but cannot be done as asked; the message goes to the script."""


@dataclass
class Context:
    """What an action sees: the phone, the settings, and what this task did so far."""

    phone: Phone
    settings: AndroidSettings
    launched: set[str] = field(default_factory=set)
    """Packages this task started; reset force-stops them after the task."""
    airplane_set: bool = False
    """Whether this task switched airplane mode; reset switches it off after the task."""


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def extra_s(self) -> float:
        """Time the action needs beyond one device call (waits, long presses)."""
        return 0.0


ACTIONS = ActionTable()
action = ACTIONS.action


def extra_time_s(params: BaseModel) -> float:
    """How much longer than one call an action may take, from its own params."""
    if isinstance(params, Params):
        return params.extra_s()
    waited = getattr(params, "timeout_ms", 0) or 0
    pressed = getattr(params, "duration_ms", 0) or 0
    interval = getattr(params, "interval_ms", 0) or 0
    delays = sum(t.delay for t in getattr(params, "taps", []))
    typed = len(getattr(params, "text", "") or "") * TYPE_MS_PER_CHAR
    return float(waited + pressed + interval + delays + typed) / 1000


def on_screen(c: Context, x: float, y: float) -> tuple[int, int]:
    """A point in device pixels, refused when it is off the screen."""
    if not (0 <= x < c.phone.width and 0 <= y < c.phone.height):
        raise BadRequest(
            f"point ({x:g}, {y:g}) is outside the {c.phone.width}x{c.phone.height} screen"
        )
    return round(x), round(y)


def steps_for(duration_ms: int) -> int:
    return max(2, duration_ms // SWIPE_STEP_MS)


# ---- touch -------------------------------------------------------------------------------


class PointParams(Params):
    x: float = Field(ge=0, description="Device pixels from the left edge of the screen.")
    y: float = Field(ge=0, description="Device pixels from the top edge of the screen.")


@action("tap", PointParams)
def tap(c: Context, p: PointParams) -> None:
    c.phone.rpc("click", *on_screen(c, p.x, p.y))


@action("double_tap", DoubleTapParams)
def double_tap(c: Context, p: DoubleTapParams) -> None:
    x, y = on_screen(c, p.x, p.y)
    c.phone.rpc("click", x, y)
    time.sleep(p.interval_ms / 1000)
    c.phone.rpc("click", x, y)


@action("hold", HoldParams)
def hold(c: Context, p: HoldParams) -> None:
    c.phone.rpc("click", *on_screen(c, p.x, p.y), p.duration_ms)


@action("swipe", SwipeParams)
def swipe(c: Context, p: SwipeParams) -> None:
    x1, y1 = on_screen(c, p.x1, p.y1)
    x2, y2 = on_screen(c, p.x2, p.y2)
    c.phone.rpc("swipe", x1, y1, x2, y2, steps_for(p.duration_ms))


@action("swipe_poly", SwipePolyParams)
def swipe_poly(c: Context, p: SwipePolyParams) -> None:
    points = [on_screen(c, x, y) for x, y in [(p.x, p.y), *p.points]]
    flat = [v for point in points for v in point]
    c.phone.rpc("swipePoints", flat, steps_for(p.duration_ms // max(1, len(points) - 1)))


@action("multi_tap", MultiTapParams)
def multi_tap(c: Context, p: MultiTapParams) -> None:
    spots = [(on_screen(c, t.x, t.y), t.delay) for t in p.taps]
    for (x, y), delay in spots:
        time.sleep(delay / 1000)
        c.phone.rpc("click", x, y)


@action("scroll", ScrollParams)
def scroll(c: Context, p: ScrollParams) -> None:
    """Like the browser: 'down' brings content further down into view, so the finger moves up
    (uiautomator2's swipe_ext("up")). More than `MAX_SCROLL_PART` of a screen takes several
    swipes."""
    width, height = c.phone.width, c.phone.height
    vertical = p.direction in ("up", "down")
    span = height if vertical else width
    sign = 1 if p.direction in ("down", "right") else -1
    parts = max(1, math.ceil(p.scale / MAX_SCROLL_PART))
    distance = span * p.scale / parts
    cx, cy = width / 2, height / 2
    for _ in range(parts):
        if vertical:
            start, end = (cx, cy + sign * distance / 2), (cx, cy - sign * distance / 2)
        else:
            start, end = (cx + sign * distance / 2, cy), (cx - sign * distance / 2, cy)
        c.phone.rpc("swipe", *map(round, (*start, *end)), steps_for(300))


# ---- keys and navigation -----------------------------------------------------------------


def press(c: Context, code: int, long: bool = False) -> None:
    if long:
        result = c.phone.shell(f"input keyevent --longpress {code}")
        if result.exit_code != 0:
            raise BadRequest(f"input keyevent failed: {result.output.strip()}")
    else:
        c.phone.rpc("pressKeyCode", code)


@action("go_home", Params)
def go_home(c: Context, p: Params) -> None:
    press(c, keycode("HOME"))


@action("go_back", Params)
def go_back(c: Context, p: Params) -> None:
    press(c, keycode("BACK"))


@action("recents", Params)
def recents(c: Context, p: Params) -> None:
    press(c, keycode("APP_SWITCH"))


class DpadParams(Params):
    direction: Literal["up", "down", "left", "right", "center"]


@action("dpad", DpadParams)
def dpad(c: Context, p: DpadParams) -> None:
    press(c, DPAD[p.direction])


class InputKeyParams(Params):
    key: str = Field(min_length=1, description="An Android or browser key name, or a key code.")
    duration_ms: int | None = Field(
        default=None, ge=0, le=MAX_DURATION_MS, description="Hold the key this long."
    )
    state: Literal["down", "up"] | None = Field(
        default=None, description="Not on Android: a key is always pressed and released."
    )

    def extra_s(self) -> float:
        return (self.duration_ms or 0) / 1000


@action("input_key", InputKeyParams)
def input_key(c: Context, p: InputKeyParams) -> None:
    if p.state is not None:
        raise BadRequest(
            f"state={p.state!r} is not available on android devices: a key is pressed and "
            "released in one go (use duration_ms for a long press)"
        )
    try:
        code = keycode(p.key)
    except UnknownKey as exc:
        raise BadRequest(str(exc)) from None
    press(c, code, long=(p.duration_ms or 0) >= LONG_PRESS_MS)


# ---- text and clipboard ------------------------------------------------------------------


def require_focus(c: Context) -> None:
    if not c.phone.rpc("exist", dict(Selector(focused=True))):
        raise BadRequest("no view has the keyboard focus; tap a text field first")


def clipboard(c: Context) -> str:
    text = c.phone.rpc("getClipboard")
    if text is not None and not isinstance(text, str):
        raise DeviceAnswerError(f"getClipboard answered {type(text).__name__}")
    return text or ""


@action("write_text", WriteTextParams)
def write_text(c: Context, p: WriteTextParams) -> None:
    """Typed through the clipboard (uiautomator2's way without its IME, which needs an app
    install): the script's clipboard is put back afterwards."""
    require_focus(c)
    if p.clear:
        c.phone.rpc("clearInputText")
    saved = clipboard(c)
    c.phone.rpc("setClipboard", None, p.text)
    try:
        c.phone.rpc("pasteClipboard")
    finally:
        c.phone.rpc("setClipboard", None, saved)


@action("copy_text", CopyTextParams)
def copy_text(c: Context, p: CopyTextParams) -> None:
    c.phone.rpc("setClipboard", None, p.text)


@action("paste", Params)
def paste(c: Context, p: Params) -> None:
    require_focus(c)
    c.phone.rpc("pasteClipboard")


@action("reverse_copy", Params)
def reverse_copy(c: Context, p: Params) -> str:
    return clipboard(c)


@action("hide_keyboard", Params)
def hide_keyboard(c: Context, p: Params) -> dict[str, bool]:
    """Back closes an open keyboard, but with none open it navigates back: so ask the input
    method service first (uiautomator2's own way needs its IME installed)."""
    shown = "mInputShown=true" in c.phone.shell("dumpsys input_method").output
    if shown:
        press(c, keycode("BACK"))
    return {"hidden": shown}


# ---- apps --------------------------------------------------------------------------------

PACKAGE = r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$"


class PackageParams(Params):
    package: str = Field(pattern=PACKAGE, description="An application id, e.g. com.example.app.")


class LaunchAppParams(PackageParams):
    clear_existing: bool = Field(default=False, description="Clear the app's data first.")


def installed(c: Context) -> list[str]:
    result = c.phone.shell("pm list packages")
    if result.exit_code != 0:
        raise DeviceAnswerError(f"pm list packages failed: {result.output.strip()[:200]}")
    return sorted(
        line.removeprefix("package:").strip()
        for line in result.output.splitlines()
        if line.startswith("package:")
    )


@action("launch_app", LaunchAppParams)
def launch_app(c: Context, p: LaunchAppParams) -> dict[str, str]:
    if p.clear_existing:
        result = c.phone.shell(["pm", "clear", p.package])
        if "Success" not in result.output:
            raise BadRequest(
                f"cannot clear {p.package}: {result.output.strip() or 'not installed'}"
            )
    result = c.phone.shell(
        ["monkey", "-p", p.package, "-c", "android.intent.category.LAUNCHER", "1"]
    )
    if result.exit_code != 0 or "No activities found" in result.output:
        raise BadRequest(f"{p.package} is not installed or has no launcher activity")
    c.launched.add(p.package)
    return {"package": p.package}


@action("stop_app", PackageParams)
def stop_app(c: Context, p: PackageParams) -> None:
    c.phone.shell(["am", "force-stop", p.package])
    c.launched.discard(p.package)


@action("list_apps", Params)
def list_apps(c: Context, p: Params) -> list[str]:
    return installed(c)


class LaunchIntentParams(Params):
    action: str | None = Field(default=None, description="e.g. android.intent.action.VIEW")
    data: str | None = Field(default=None, description="The intent's data URI.")
    package: str | None = Field(default=None, pattern=PACKAGE)
    component: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.]+/[A-Za-z0-9_.$]+$", description="pkg/.Activity"
    )
    category: str | None = None
    mime_type: str | None = None
    extras: dict[str, str | int | float | bool] = Field(default_factory=dict)
    flags: int | None = Field(default=None, ge=0)

    @field_validator("extras")
    @classmethod
    def _plain_keys(
        cls, extras: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        for key in extras:
            if not key or any(ch.isspace() for ch in key):
                raise ValueError(f"extra key {key!r} must be a non-empty word")
        return extras


def _extra(key: str, value: str | int | float | bool) -> list[str]:
    if isinstance(value, bool):
        return ["--ez", key, "true" if value else "false"]
    if isinstance(value, int):
        return ["--el", key, str(value)]
    if isinstance(value, float):
        return ["--ef", key, repr(value)]
    return ["--es", key, value]


def start_activity(c: Context, args: list[str]) -> str:
    result = c.phone.shell(["am", "start", *args])
    output = result.output.strip()
    if result.exit_code != 0 or "Error" in output:
        raise BadRequest(f"am start failed: {output[:500]}")
    return output


@action("launch_intent", LaunchIntentParams)
def launch_intent(c: Context, p: LaunchIntentParams) -> dict[str, str]:
    if not (p.action or p.component):
        raise BadRequest("give an action or a component (package/.Activity)")
    args: list[str] = []
    for flag, value in (("-a", p.action), ("-d", p.data), ("-c", p.category), ("-t", p.mime_type)):
        if value is not None:
            args += [flag, value]
    if p.component is not None:
        args += ["-n", p.component]
    if p.package is not None:
        args += ["-p", p.package]
    if p.flags is not None:
        args += ["-f", str(p.flags)]
    for key, extra in p.extras.items():
        args += _extra(key, extra)
    output = start_activity(c, args)
    package = (p.component or "").split("/")[0] or p.package
    if package:
        c.launched.add(package)
    return {"output": output}


class BrowseParams(Params):
    url: str = Field(min_length=1, description="The URL to open in the phone's browser.")
    clear_existing_data: bool = Field(
        default=False, description="Clear the browser app's data (cookies, storage) first."
    )

    @field_validator("url")
    @classmethod
    def _has_scheme(cls, url: str) -> str:
        if "://" not in url and not url.startswith(("about:", "data:")):
            raise ValueError("must be a full URL with a scheme, e.g. https://example.org")
        return url


def foreground_package(c: Context) -> str:
    info = c.phone.refresh_display()
    package = info.get("currentPackageName")
    if not isinstance(package, str) or not package:
        raise DeviceAnswerError("deviceInfo named no current package")
    return package


@action("browse", BrowseParams)
def browse(c: Context, p: BrowseParams) -> dict[str, str]:
    """`am start -a VIEW -d URL` (uiautomator2's open_url). To clear data the browser must be
    known: it is whichever app took the URL, so open, clear that app, and open again."""
    view = ["-a", "android.intent.action.VIEW", "-d", p.url]
    start_activity(c, view)
    package = foreground_package(c)
    if p.clear_existing_data:
        c.phone.shell(["pm", "clear", package])
        start_activity(c, view)
    c.launched.add(package)
    return {"url": p.url, "package": package}


# ---- seeing the screen -------------------------------------------------------------------


def as_captured(jpeg: bytes, p: ScreenshotRequest, quality: int) -> ScreenshotResult | None:
    """The device's own JPEG when it already is what was asked (no crop, fits the box, encoded
    at the asked quality): decoding and encoding it again would only cost time."""
    if p.crop is not None or p.quality != quality:
        return None
    try:
        with Image.open(io.BytesIO(jpeg)) as opened:
            if opened.format != "JPEG":
                return None
            width, height = opened.size
    except (UnidentifiedImageError, OSError):
        return None  # render_screenshot says what is wrong with it
    if fit_size(width, height, p.max_width, p.max_height) != (width, height):
        return None
    return ScreenshotResult(
        screenshot=b64encode(jpeg).decode("ascii"),
        compressed_width=width,
        compressed_height=height,
        original_width=width,
        original_height=height,
    )


@action("screenshot", ScreenshotRequest)
def screenshot(c: Context, p: ScreenshotRequest) -> dict[str, object]:
    """uiautomator2's JPEG; adb screencap when it gives none. A capture that is not an image is
    an error, never a black picture."""
    quality = max(p.quality, CAPTURE_QUALITY)
    image = c.phone.jpeg(quality)
    if image is None:
        image = c.phone.screencap()
    else:
        ready = as_captured(image, p, quality)
        if ready is not None:
            return ready.as_result()
    return render_screenshot(image, p).as_result()


@action("recognize_text", RecognizeRequest)
def capture_for_text(c: Context, p: RecognizeRequest) -> bytes:
    """The device half of recognize_text: the screen at full size and best quality (the
    session reads its text in the OCR pool, off the phone's thread)."""
    image = c.phone.jpeg(100)
    return image if image is not None else c.phone.screencap()


def snapshot(c: Context) -> Snapshot:
    xml = c.phone.rpc("dumpWindowHierarchy", False, 50)
    if not isinstance(xml, str):
        raise DeviceAnswerError(f"dumpWindowHierarchy answered {type(xml).__name__}, not XML")
    return Snapshot(xml, c.phone.width, c.phone.height)


@action("screen_content", Params)
def screen_content(c: Context, p: Params) -> Node | None:
    return snapshot(c).root


@action("find", NodeSelector)
def find(c: Context, p: NodeSelector) -> list[Node]:
    return p.find(snapshot(c))


class AndroidWaitParams(Params):
    selector: NodeSelector
    timeout_ms: int = Field(default=30_000, ge=0, le=MAX_WAIT_MS)
    interval_ms: int = Field(default=500, ge=50, le=MAX_DURATION_MS)

    def extra_s(self) -> float:
        return self.timeout_ms / 1000


def _wait(c: Context, p: AndroidWaitParams, present: bool) -> list[Node]:
    deadline = time.monotonic() + p.timeout_ms / 1000
    while True:
        nodes = p.selector.find(snapshot(c))
        if bool(nodes) == present:
            return nodes
        left = deadline - time.monotonic()
        if left <= 0:
            wanted = p.selector.model_dump(exclude_none=True)
            what = "appeared" if present else "went away"
            raise BadRequest(f"no node matching {wanted} {what} within {p.timeout_ms} ms")
        time.sleep(min(p.interval_ms / 1000, left))


@action("wait_for_node", AndroidWaitParams)
def wait_for_node(c: Context, p: AndroidWaitParams) -> list[Node]:
    return _wait(c, p, present=True)


@action("wait_for_node_gone", AndroidWaitParams)
def wait_for_node_gone(c: Context, p: AndroidWaitParams) -> None:
    _wait(c, p, present=False)


@action("node_action", NodeActionParams)
def node_action(c: Context, p: NodeActionParams) -> None:
    b = p.node.bounds
    x, y = on_screen(c, (b.left + b.right) / 2, (b.top + b.bottom) / 2)
    if p.action == "click":
        c.phone.rpc("click", x, y)
    elif p.action == "long_click":
        c.phone.rpc("click", x, y, LONG_PRESS_MS + 100)
    else:
        if p.data is None:
            raise BadRequest("set_text needs data: the text to put in the node")
        c.phone.rpc("click", x, y)
        write_text(c, WriteTextParams(text=p.data, clear=True))


# ---- files and shell ---------------------------------------------------------------------


@action("save_file", SaveFileParams)
def save_file(c: Context, p: SaveFileParams) -> str:
    if p.base64:
        try:
            content = b64decode(p.data, validate=True)
        except binascii.Error as exc:
            raise BadRequest(f"data is not valid base64: {exc}") from exc
    else:
        content = p.data.encode()
    path = f"{DOWNLOAD_DIR}/{p.name}"
    c.phone.push(content, path)
    return path


class AirplaneParams(Params):
    on: bool = Field(description="True switches airplane mode on, False off.")


def airplane_mode(c: Context) -> bool:
    """Whether airplane mode is on, as the phone's settings say."""
    return c.phone.shell(["settings", "get", "global", "airplane_mode_on"]).output.strip() == "1"


@action("airplane", AirplaneParams)
def airplane(c: Context, p: AirplaneParams) -> bool:
    """`cmd connectivity airplane-mode` (Android 10 and later, no root needed, and it tells the
    radios, unlike writing the setting alone); the new state as the phone reports it."""
    c.airplane_set = True
    switch = "enable" if p.on else "disable"
    result = c.phone.shell(["cmd", "connectivity", "airplane-mode", switch])
    if result.exit_code != 0:
        raise BadRequest(f"the phone refused airplane mode: {result.output or result.exit_code}")
    state = airplane_mode(c)
    if state != p.on:
        raise BadRequest(f"airplane mode is still {'on' if state else 'off'} after switching it")
    return state


class ShellParams(Params):
    command: str = Field(min_length=1, description="A command line for the phone's shell.")


@action("shell", ShellParams)
def shell(c: Context, p: ShellParams) -> dict[str, object]:
    result = c.phone.shell(p.command)
    return {"output": result.output, "exit_code": result.exit_code}
