"""The simulated phone's apps: a launcher, a login form, a scrollable list, settings and a browser.

An app holds its own state and builds its view tree from it on demand; the screen routes clicks
(by view key), typing (into `fields`), scrolls and back presses to the app in front.
"""

from __future__ import annotations

from drivers.sim.views import (
    BUTTON,
    EDIT_TEXT,
    FRAME,
    LINEAR,
    RECYCLER,
    SWITCH,
    TEXT_VIEW,
    Color,
    View,
)

WHITE: Color = (255, 255, 255)
BAR_HEIGHT = 120
MASK_CHAR = "\u2022"


class App:
    package = ""
    label = ""
    main_activity = ""
    color: Color = (96, 125, 139)
    launchable = True

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.focus: str | None = None
        self.activity = self.main_activity
        self.reset()

    def reset(self) -> None:
        """Back to the state of a freshly started process."""
        self.fields = {}
        self.focus = None
        self.activity = self.main_activity

    def rid(self, name: str) -> str:
        return f"{self.package}:id/{name}"

    def build(self, width: int, height: int) -> View:
        raise NotImplementedError

    def click(self, key: str) -> str | None:
        """React to a click on the view with this key; returns a package to launch, if any."""
        return None

    def scroll(self, key: str, dy: int) -> bool:
        """Scroll the view with this key by dy pixels; False when it was already at that end."""
        return False

    def submit(self) -> None:
        """The enter key in the focused field."""

    def back(self) -> bool:
        """Handle the back key inside the app; False lets the app's last screen close."""
        return False

    def bar(self, title: str, width: int) -> View:
        return View(
            TEXT_VIEW,
            (0, 0, width, BAR_HEIGHT),
            resource_id=self.rid("title"),
            text=title,
            background=self.color,
            text_color=WHITE,
            font_size=40,
        )

    def edit(
        self, key: str, bounds: tuple[int, int, int, int], hint: str, password: bool = False
    ) -> View:
        value = self.fields.get(key, "")
        return View(
            EDIT_TEXT,
            bounds,
            key=key,
            resource_id=self.rid(key),
            text=MASK_CHAR * len(value) if password else value,
            hint=hint,
            clickable=True,
            long_clickable=True,
            focusable=True,
            focused=self.focus == key,
            password=password,
        )


class LoginApp(App):
    package = "com.example.login"
    label = "Login"
    main_activity = ".MainActivity"
    color = (63, 81, 181)
    USER = "demo"
    PASSWORD = "secret"

    def reset(self) -> None:
        super().reset()
        self.error = False
        self.user = ""

    def build(self, width: int, height: int) -> View:
        margin = 60
        if self.activity == ".WelcomeActivity":
            children = [
                self.bar("Example Login", width),
                View(
                    TEXT_VIEW,
                    (margin, 240, width - margin, 340),
                    resource_id=self.rid("welcome"),
                    text=f"Welcome, {self.user}",
                    font_size=40,
                ),
                View(
                    BUTTON,
                    (margin, 400, width - margin, 500),
                    key="logout",
                    resource_id=self.rid("logout"),
                    text="Logout",
                    clickable=True,
                    focusable=True,
                    background=self.color,
                    text_color=WHITE,
                ),
            ]
        else:
            children = [
                self.bar("Example Login", width),
                self.edit("username", (margin, 240, width - margin, 340), "Username"),
                self.edit(
                    "password", (margin, 380, width - margin, 480), "Password", password=True
                ),
                View(
                    BUTTON,
                    (margin, 540, width - margin, 640),
                    key="login",
                    resource_id=self.rid("login"),
                    text="Login",
                    clickable=True,
                    focusable=True,
                    background=self.color,
                    text_color=WHITE,
                ),
            ]
            if self.error:
                children.append(
                    View(
                        TEXT_VIEW,
                        (margin, 680, width - margin, 740),
                        resource_id=self.rid("error"),
                        text="Wrong username or password",
                        text_color=(211, 47, 47),
                    )
                )
        return View(FRAME, (0, 0, width, height), background=WHITE, children=children)

    def click(self, key: str) -> str | None:
        if key == "login":
            self._login()
        elif key == "logout":
            self.reset()
        return None

    def _login(self) -> None:
        if (
            self.fields.get("username") == self.USER
            and self.fields.get("password") == self.PASSWORD
        ):
            self.user = self.USER
            self.activity = ".WelcomeActivity"
            self.focus = None
            self.error = False
        else:
            self.error = True

    def submit(self) -> None:
        if self.focus == "password":
            self._login()
        elif self.focus == "username":
            self.focus = "password"

    def back(self) -> bool:
        if self.activity == ".WelcomeActivity":
            self.reset()
            return True
        return False


class ListApp(App):
    package = "com.example.list"
    label = "Items"
    main_activity = ".ListActivity"
    color = (0, 137, 123)
    COUNT = 40
    ITEM_HEIGHT = 100

    def reset(self) -> None:
        super().reset()
        self.offset = 0
        self.chosen: int | None = None
        self._viewport = 0

    def build(self, width: int, height: int) -> View:
        top = BAR_HEIGHT
        self._viewport = height - top
        items = []
        for i in range(self.COUNT):
            item_top = top + i * self.ITEM_HEIGHT - self.offset
            item_bottom = item_top + self.ITEM_HEIGHT
            if item_bottom <= top or item_top >= height:
                continue
            items.append(
                View(
                    TEXT_VIEW,
                    (0, max(item_top, top), width, min(item_bottom, height)),
                    key=f"item:{i}",
                    resource_id=self.rid("item_title"),
                    text=f"Item {i + 1}",
                    clickable=True,
                    focusable=True,
                    selected=self.chosen == i,
                    background=(178, 223, 219) if self.chosen == i else None,
                )
            )
        bar = self.bar("Items", width)
        if self.chosen is not None:
            bar.text = f"Items - selected: Item {self.chosen + 1}"
        return View(
            FRAME,
            (0, 0, width, height),
            background=WHITE,
            children=[
                bar,
                View(
                    RECYCLER,
                    (0, top, width, height),
                    key="list",
                    resource_id=self.rid("list"),
                    scrollable=True,
                    focusable=True,
                    children=items,
                ),
            ],
        )

    def click(self, key: str) -> str | None:
        if key.startswith("item:"):
            self.chosen = int(key.removeprefix("item:"))
        return None

    def scroll(self, key: str, dy: int) -> bool:
        if key != "list":
            return False
        limit = max(0, self.COUNT * self.ITEM_HEIGHT - self._viewport)
        new = min(max(0, self.offset + dy), limit)
        moved = new != self.offset
        self.offset = new
        return moved


class SettingsApp(App):
    package = "com.android.settings"
    label = "Settings"
    main_activity = ".Settings"
    color = (69, 90, 100)

    def reset(self) -> None:
        super().reset()
        self.switches = {"wifi": True, "bluetooth": False}

    def build(self, width: int, height: int) -> View:
        rows = []
        for i, (key, title) in enumerate((("wifi", "Wi-Fi"), ("bluetooth", "Bluetooth"))):
            top = BAR_HEIGHT + 20 + i * 120
            on = self.switches[key]
            rows.append(
                View(
                    LINEAR,
                    (0, top, width, top + 110),
                    key=key,
                    clickable=True,
                    focusable=True,
                    children=[
                        View(TEXT_VIEW, (40, top, width - 200, top + 110), text=title),
                        View(
                            SWITCH,
                            (width - 180, top + 25, width - 40, top + 85),
                            key=key,
                            resource_id=self.rid(f"{key}_switch"),
                            text="ON" if on else "OFF",
                            checkable=True,
                            checked=on,
                            clickable=True,
                            focusable=True,
                        ),
                    ],
                )
            )
        return View(
            FRAME,
            (0, 0, width, height),
            background=WHITE,
            children=[self.bar("Settings", width), *rows],
        )

    def click(self, key: str) -> str | None:
        if key in self.switches:
            self.switches[key] = not self.switches[key]
        return None


class BrowserApp(App):
    package = "com.android.browser"
    label = "Browser"
    main_activity = ".BrowserActivity"
    color = (25, 118, 210)
    OFFLINE = "No internet: ERR_INTERNET_DISCONNECTED"

    def __init__(self) -> None:
        self.online = True
        """Whether the phone has a network (the screen keeps it; airplane mode clears it)."""
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.url = ""
        self.loaded = False

    def open_url(self, url: str) -> None:
        self.url = url
        self.loaded = self.online
        self.fields["url_bar"] = url
        self.focus = None

    def build(self, width: int, height: int) -> View:
        page = (f"Page: {self.url}" if self.loaded else self.OFFLINE) if self.url else "New tab"
        return View(
            FRAME,
            (0, 0, width, height),
            background=WHITE,
            children=[
                self.bar("Browser", width),
                self.edit(
                    "url_bar",
                    (20, BAR_HEIGHT + 20, width - 20, BAR_HEIGHT + 110),
                    "Search or type URL",
                ),
                View(
                    TEXT_VIEW,
                    (20, BAR_HEIGHT + 140, width - 20, BAR_HEIGHT + 240),
                    resource_id=self.rid("page"),
                    text=page,
                ),
            ],
        )

    def submit(self) -> None:
        if self.focus == "url_bar":
            self.open_url(self.fields.get("url_bar", ""))


class Launcher(App):
    package = "com.android.launcher3"
    label = "Home"
    main_activity = ".Launcher"
    launchable = False
    COLUMNS = 4

    def __init__(self, apps: list[App]) -> None:
        self.apps = apps
        super().__init__()

    def build(self, width: int, height: int) -> View:
        cell = width // self.COLUMNS
        icons = []
        for i, app in enumerate(self.apps):
            left = (i % self.COLUMNS) * cell
            top = 200 + (i // self.COLUMNS) * 220
            icons.append(
                View(
                    TEXT_VIEW,
                    (left + 12, top, left + cell - 12, top + 180),
                    key=f"launch:{app.package}",
                    resource_id=self.rid("icon"),
                    text=app.label,
                    description=app.label,
                    clickable=True,
                    long_clickable=True,
                    focusable=True,
                    background=app.color,
                    text_color=WHITE,
                    font_size=26,
                )
            )
        return View(
            FRAME,
            (0, 0, width, height),
            background=(38, 50, 56),
            children=[
                View(
                    TEXT_VIEW,
                    (0, 40, width, 140),
                    resource_id=self.rid("clock"),
                    text="Sim Phone",
                    text_color=WHITE,
                    font_size=44,
                ),
                View(
                    LINEAR,
                    (0, 180, width, height - 100),
                    resource_id=self.rid("workspace"),
                    children=icons,
                ),
            ],
        )

    def click(self, key: str) -> str | None:
        return key.removeprefix("launch:") if key.startswith("launch:") else None


def default_apps() -> list[App]:
    return [LoginApp(), ListApp(), SettingsApp(), BrowserApp()]
