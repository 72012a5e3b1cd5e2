"""The phone's screen: which app is in front, input (taps, swipes, keys, text), and drawing.

Everything that changes what the user sees goes through `Screen`, so the screenshot, the view
hierarchy and the shell's `dumpsys` all describe the same state.
"""

from __future__ import annotations

import base64
import io
from functools import cache

from PIL import Image, ImageDraw, ImageFont

from drivers.sim.apps import App, BrowserApp, Launcher, default_apps
from drivers.sim.views import BUTTON, EDIT_TEXT, SWITCH, View, finish_tree, hit_test

KEYCODES = {
    "HOME": 3,
    "BACK": 4,
    "DPAD_UP": 19,
    "DPAD_DOWN": 20,
    "DPAD_LEFT": 21,
    "DPAD_RIGHT": 22,
    "DPAD_CENTER": 23,
    "VOLUME_UP": 24,
    "VOLUME_DOWN": 25,
    "POWER": 26,
    "CAMERA": 27,
    "TAB": 61,
    "SPACE": 62,
    "ENTER": 66,
    "DEL": 67,
    "MENU": 82,
    "SEARCH": 84,
    "ESCAPE": 111,
    "FORWARD_DEL": 112,
    "VOLUME_MUTE": 164,
    "APP_SWITCH": 187,
    "SLEEP": 223,
    "WAKEUP": 224,
}

# The key names uiautomator2's pressKey accepts, as key codes.
U2_KEY_NAMES = {
    "home": 3,
    "back": 4,
    "left": 21,
    "right": 22,
    "up": 19,
    "down": 20,
    "center": 23,
    "menu": 82,
    "search": 84,
    "enter": 66,
    "delete": 67,
    "del": 67,
    "recent": 187,
    "volume_up": 24,
    "volume_down": 25,
    "volume_mute": 164,
    "camera": 27,
    "power": 26,
}


def parse_keycode(name: str) -> int | None:
    """A key as `input keyevent` takes it: a number, `KEYCODE_HOME` or `HOME`."""
    if name.isdigit():
        return int(name)
    return KEYCODES.get(name.upper().removeprefix("KEYCODE_"))


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


class Screen:
    def __init__(self, width: int = 720, height: int = 1280, density: int = 320) -> None:
        self.width = width
        self.height = height
        self.density = density
        self.apps: dict[str, App] = {app.package: app for app in default_apps()}
        self.launcher = Launcher(list(self.apps.values()))
        self.stack: list[App] = []
        """Apps above the launcher, the one in front last."""
        self.running: dict[str, int] = {}
        self._next_pid = 4000
        self._start_process(self.launcher)
        self.screen_on = True
        self.clipboard = ""
        self.toast: str | None = None
        self._touch_down: tuple[float, float] | None = None

    # -- apps ---------------------------------------------------------------------------------

    @property
    def current(self) -> App:
        return self.stack[-1] if self.stack else self.launcher

    def packages(self) -> list[str]:
        return sorted([self.launcher.package, *self.apps])

    def _start_process(self, app: App) -> None:
        if app.package not in self.running:
            app.reset()
            self.running[app.package] = self._next_pid
            self._next_pid += 1

    def launch(self, package: str) -> bool:
        if package == self.launcher.package:
            self.go_home()
            return True
        app = self.apps.get(package)
        if app is None:
            return False
        self._start_process(app)
        if app in self.stack:
            self.stack.remove(app)
        self.stack.append(app)
        return True

    def open_url(self, url: str) -> None:
        browser = self.apps[BrowserApp.package]
        assert isinstance(browser, BrowserApp)
        self.launch(browser.package)
        browser.open_url(url)

    def force_stop(self, package: str) -> None:
        app = self.apps.get(package)
        if app is None:
            return
        self.running.pop(package, None)
        if app in self.stack:
            self.stack.remove(app)
        app.reset()

    def go_home(self) -> None:
        self.stack.clear()

    def set_online(self, online: bool) -> None:
        """Whether the phone has a network (airplane mode takes it away): pages opened
        without one show the browser's offline error."""
        browser = self.apps[BrowserApp.package]
        assert isinstance(browser, BrowserApp)
        browser.online = online

    def back(self) -> None:
        if self.stack and not self.current.back():
            self.stack.pop()

    # -- what is shown ------------------------------------------------------------------------

    def tree(self) -> View:
        if not self.screen_on:
            return finish_tree(
                View("android.widget.FrameLayout", (0, 0, self.width, self.height)), ""
            )
        app = self.current
        return finish_tree(app.build(self.width, self.height), app.package)

    def render(self) -> Image.Image:
        image = Image.new("RGB", (self.width, self.height), (0, 0, 0))
        if self.screen_on:
            draw = ImageDraw.Draw(image)
            for view in self.tree().walk():
                _draw_view(draw, view)
        return image

    def png(self) -> bytes:
        out = io.BytesIO()
        self.render().save(out, format="PNG", compress_level=1)
        return out.getvalue()

    def jpeg_base64(self, scale: float = 1.0, quality: int = 80) -> str:
        image = self.render()
        if 0 < scale < 1:
            image = image.resize(
                (max(1, int(self.width * scale)), max(1, int(self.height * scale)))
            )
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=max(1, min(100, quality)))
        return base64.b64encode(out.getvalue()).decode()

    # -- input --------------------------------------------------------------------------------

    def tap(self, x: float, y: float) -> None:
        if not self.screen_on:
            return
        app = self.current
        view = hit_test(self.tree(), x, y)
        if view is None:
            return
        if view.editable:
            app.focus = view.key
            return
        target = app.click(view.key)
        if target is not None:
            self.launch(target)

    def swipe(self, x1: float, y1: float, x2: float, y2: float) -> bool:
        """A drag from one point to another; scrolls what is under the start point."""
        if not self.screen_on:
            return False
        for view in reversed(list(self.tree().walk())):
            if view.scrollable and view.contains(x1, y1):
                return self.current.scroll(view.key, round(y1 - y2))
        return False

    def touch(self, action: int, x: float, y: float) -> None:
        """A raw motion event (0 down, 1 up, 2 move); a down then up in place is a tap."""
        if action == 0:
            self._touch_down = (x, y)
        elif action == 1 and self._touch_down is not None:
            x0, y0 = self._touch_down
            self._touch_down = None
            if abs(x - x0) < 20 and abs(y - y0) < 20:
                self.tap(x, y)
            else:
                self.swipe(x0, y0, x, y)

    def focused_field(self) -> tuple[App, str] | None:
        app = self.current
        if app.focus is None or not self.screen_on:
            return None
        return app, app.focus

    def type_text(self, text: str) -> bool:
        focused = self.focused_field()
        if focused is None:
            return False
        app, key = focused
        app.fields[key] = app.fields.get(key, "") + text
        return True

    def set_field(self, view: View, text: str) -> bool:
        if not view.editable:
            return False
        self.current.fields[view.key] = text
        return True

    def clear_focused(self) -> None:
        focused = self.focused_field()
        if focused is not None:
            app, key = focused
            app.fields[key] = ""

    def key(self, code: int) -> None:
        if code == KEYCODES["POWER"]:
            self.screen_on = not self.screen_on
        elif code == KEYCODES["WAKEUP"]:
            self.screen_on = True
        elif code == KEYCODES["SLEEP"]:
            self.screen_on = False
        elif not self.screen_on:
            return
        elif code in (KEYCODES["HOME"], KEYCODES["APP_SWITCH"]):
            self.go_home()
        elif code in (KEYCODES["BACK"], KEYCODES["ESCAPE"]):
            self.back()
        elif code == KEYCODES["ENTER"]:
            self.current.submit()
        elif code == KEYCODES["DEL"]:
            focused = self.focused_field()
            if focused is not None:
                app, key = focused
                app.fields[key] = app.fields.get(key, "")[:-1]
        elif code == KEYCODES["SPACE"]:
            self.type_text(" ")


def _text_box(
    draw: ImageDraw.ImageDraw, view: View, text: str, fill: tuple[int, int, int], centered: bool
) -> None:
    left, top, right, bottom = view.bounds
    font = _font(view.font_size)
    box = draw.textbbox((0, 0), text, font=font)
    x = (left + right - (box[2] - box[0])) / 2 if centered else left + 24
    y = (top + bottom - (box[3] - box[1])) / 2 - box[1]
    draw.text((x, y), text, fill=fill, font=font)


def _draw_view(draw: ImageDraw.ImageDraw, view: View) -> None:
    left, top, right, bottom = view.bounds
    if view.cls == EDIT_TEXT:
        border = (25, 118, 210) if view.focused else (158, 158, 158)
        draw.rectangle(
            view.bounds, fill=(255, 255, 255), outline=border, width=4 if view.focused else 2
        )
        if view.text:
            _text_box(draw, view, view.text, view.text_color, centered=False)
        else:
            _text_box(draw, view, view.hint, (158, 158, 158), centered=False)
        return
    if view.cls == SWITCH:
        track = (76, 175, 80) if view.checked else (189, 189, 189)
        draw.rounded_rectangle(view.bounds, radius=(bottom - top) // 2, fill=track)
        knob = right - (bottom - top) if view.checked else left
        draw.ellipse(
            (knob + 4, top + 4, knob + (bottom - top) - 4, bottom - 4), fill=(255, 255, 255)
        )
        return
    if view.background is not None:
        if view.cls == BUTTON or view.description:
            draw.rounded_rectangle(view.bounds, radius=16, fill=view.background)
        else:
            draw.rectangle(view.bounds, fill=view.background)
    if view.text:
        _text_box(
            draw,
            view,
            view.text,
            view.text_color,
            centered=view.cls == BUTTON or bool(view.description),
        )
