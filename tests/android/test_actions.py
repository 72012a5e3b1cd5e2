"""Every Android action through the real adb server and uiautomator2, against one simulated phone.

The tests share one phone and one task session (module scope: connecting uiautomator2 pushes its
3.7 MB jar); each test starts from the home screen.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from drivers.base import ActionError, UnsupportedAction
from drivers.nodes import Node
from tests.android.conftest import DriverHarness, Session, driver, on_phone, stop_sim
from tests.sim.conftest import AdbServer, SimHandle, poll

LOGIN = "com.example.login"
LIST = "com.example.list"
NODE_KEYS = set(Node.__annotations__)


@pytest.fixture(scope="module")
def phone(adb_server: AdbServer) -> Iterator[SimHandle]:
    sim = SimHandle()
    try:
        sim.start()
        adb_server.connect(sim.serial)
        yield sim
    finally:
        stop_sim(adb_server, sim)


@pytest.fixture(scope="module")
def module_driver(
    adb_server: AdbServer, phone: SimHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DriverHarness]:
    with driver(adb_server, tmp_path_factory.mktemp("driver"), [phone.serial]) as h:
        yield h


@pytest.fixture(scope="module")
def module_session(module_driver: DriverHarness, phone: SimHandle) -> Iterator[Session]:
    session = module_driver.open(phone.serial)
    yield session
    session.close()


@pytest.fixture
def s(module_session: Session, phone: SimHandle) -> Session:
    module_session.call("go_home")
    return module_session


def current(phone: SimHandle) -> str:
    package: str = on_phone(phone, lambda p: p.state.screen.current.package)
    return package


def app(phone: SimHandle, package: str) -> Any:
    return on_phone(phone, lambda p: p.state.screen.apps[package])


def center(node: Node) -> tuple[float, float]:
    b = node["bounds"]
    return (b["left"] + b["right"]) / 2, (b["top"] + b["bottom"]) / 2


def test_login_by_taps_text_and_nodes(s: Session, phone: SimHandle) -> None:
    assert s.call("launch_app", package=LOGIN) == {"package": LOGIN}
    assert current(phone) == LOGIN
    (user,) = s.call("find", view_id="username")
    assert user["class_name"] == "android.widget.EditText" and user["hint_text"] == "Username"
    s.call("tap", x=center(user)[0], y=center(user)[1])
    s.call("write_text", text="demo")
    s.call("input_key", key="Enter")  # the sim's login form moves to the password field
    assert app(phone, LOGIN).focus == "password"
    s.call("write_text", text="secret")
    (button,) = s.call("find", text="Login", class_name="Button")
    s.call("node_action", node=button, action="click")
    (welcome,) = s.call("wait_for_node", selector={"text_contains": "Welcome"}, timeout_ms=5000)
    assert welcome["text"] == "Welcome, demo"
    s.call("wait_for_node_gone", selector={"text": "Login"}, timeout_ms=2000)
    s.call("go_back")
    assert app(phone, LOGIN).activity == ".MainActivity"


def test_write_text_clear_set_text_and_clipboard(s: Session, phone: SimHandle) -> None:
    s.call("launch_app", package=LOGIN, clear_existing=True)
    (user,) = s.call("find", view_id="com.example.login:id/username")
    s.call("node_action", node=user, action="set_text", data="first")
    assert app(phone, LOGIN).fields["username"] == "first"
    s.call("copy_text", text="kept")
    s.call("write_text", text="second", clear=True)
    assert app(phone, LOGIN).fields["username"] == "second"
    assert s.call("reverse_copy") == "kept"  # typing put the script's clipboard back
    s.call("paste")
    assert app(phone, LOGIN).fields["username"] == "secondkept"
    assert s.call("hide_keyboard") == {"hidden": False}


def test_typing_without_focus_is_refused(s: Session) -> None:
    with pytest.raises(ActionError, match="write_text: no view has the keyboard focus"):
        s.call("write_text", text="lost")


def test_gestures_on_the_list(s: Session, phone: SimHandle) -> None:
    s.call("launch_app", package=LIST)
    items = app(phone, LIST)
    s.call("scroll", direction="down")
    assert items.offset > 0  # like a browser: content further down came into view
    s.call("scroll", direction="up", scale=2.0)
    assert items.offset == 0
    s.call("swipe", x1=360, y1=1000, x2=360, y2=600, duration_ms=100)
    assert items.offset == 400
    s.call("swipe_poly", x=360, y=600, points=[[360, 800], [360, 1000]], duration_ms=100)
    assert items.offset == 0
    (third,) = s.call("find", text="Item 3")
    s.call("double_tap", x=center(third)[0], y=center(third)[1], interval_ms=50)
    assert items.chosen == 2
    (first,) = s.call("find", text="Item 1")
    s.call(
        "multi_tap",
        taps=[
            {"x": 360, "y": center(third)[1]},
            {**dict(zip("xy", center(first), strict=True)), "delay": 50},
        ],
    )
    assert items.chosen == 0


def test_hold_and_keys(s: Session, phone: SimHandle) -> None:
    (icon,) = s.call("find", description="Items")
    s.call("hold", x=center(icon)[0], y=center(icon)[1], duration_ms=600)
    assert current(phone) == LIST
    s.call("recents")
    assert current(phone) == "com.android.launcher3"
    s.call("dpad", direction="down")
    s.call("input_key", key="KEYCODE_BACK", duration_ms=600)


def test_bad_keys_and_points_get_clear_errors(s: Session) -> None:
    with pytest.raises(ActionError, match=r"input_key: unknown key 'Hyper'"):
        s.call("input_key", key="Hyper")
    with pytest.raises(ActionError, match=r"input_key: state='down' is not available"):
        s.call("input_key", key="A", state="down")
    with pytest.raises(ActionError, match=r"tap: point \(5000, 10\) is outside the 720x1280"):
        s.call("tap", x=5000, y=10)
    with pytest.raises(ActionError, match=r"swipe: point .* is outside"):
        s.call("swipe", x1=1, y1=1, x2=1, y2=99999, duration_ms=10)
    with pytest.raises(ActionError, match=r"tap: bad params: x: Input should be greater"):
        s.call("tap", x=-1, y=3)
    with pytest.raises(ActionError, match="dpad: bad params"):
        s.call("dpad", direction="sideways")
    s.call("tap", x=10, y=10)  # still usable


def test_apps_and_intents(s: Session, phone: SimHandle) -> None:
    apps = s.call("list_apps")
    assert {LOGIN, LIST, "com.android.settings"} <= set(apps)
    with pytest.raises(ActionError, match=r"launch_app: com\.example\.nope is not installed"):
        s.call("launch_app", package="com.example.nope")
    s.call("launch_intent", component="com.android.settings/.Settings")
    assert current(phone) == "com.android.settings"
    s.call("stop_app", package="com.android.settings")
    assert current(phone) == "com.android.launcher3"
    with pytest.raises(ActionError, match="launch_intent: am start failed"):
        s.call("launch_intent", component="com.example.login/.Missing")
    opened = s.call("browse", url="https://example.org/a")
    assert opened == {"url": "https://example.org/a", "package": "com.android.browser"}
    assert app(phone, "com.android.browser").url == "https://example.org/a"
    s.call("browse", url="https://example.org/b", clear_existing_data=True)
    assert app(phone, "com.android.browser").url == "https://example.org/b"


def test_screenshot_shapes(s: Session) -> None:
    shot = s.call("screenshot", max_width=360, max_height=360, quality=70)
    assert (shot["originalWidth"], shot["originalHeight"]) == (720, 1280)
    assert (shot["compressedWidth"], shot["compressedHeight"]) == (202, 360)
    image = Image.open(io.BytesIO(base64.b64decode(shot["screenshot"])))
    assert image.format == "JPEG" and image.size == (202, 360)
    cropped = s.call(
        "screenshot", max_width=1000, max_height=1000, quality=80, crop=[0, 0, 100, 50]
    )
    assert (cropped["compressedWidth"], cropped["compressedHeight"]) == (100, 50)
    with pytest.raises(ActionError, match=r"screenshot: crop .* is outside the 720x1280 screen"):
        s.call("screenshot", max_width=10, max_height=10, quality=80, crop=[0, 0, 800, 10])


def test_screenshot_falls_back_to_screencap(s: Session, phone: SimHandle) -> None:
    on_phone(phone, lambda p: setattr(p.state.screen, "jpeg_base64", lambda *a: ""))
    try:
        shot = s.call("screenshot", max_width=720, max_height=1280, quality=80)
    finally:
        on_phone(phone, lambda p: delattr(p.state.screen, "jpeg_base64"))
    assert (shot["compressedWidth"], shot["compressedHeight"]) == (720, 1280)


def test_screen_content_is_a_node_tree(s: Session) -> None:
    s.call("launch_app", package=LOGIN)
    root = s.call("screen_content")
    assert set(root) == NODE_KEYS
    assert root["package_name"] == LOGIN
    assert root["bounds"] == {"left": 0, "top": 0, "right": 720, "bottom": 1280}
    kids = root["children"]
    assert [k["view_id"].rsplit("/", 1)[-1] for k in kids] == [
        "title",
        "username",
        "password",
        "login",
    ]
    assert kids[3]["clickable"] and kids[3]["enabled"] and kids[3]["visible"]


def test_files_and_shell(s: Session, phone: SimHandle) -> None:
    assert s.call("save_file", name="a.txt", data="hello") == "/sdcard/Download/a.txt"
    raw = base64.b64encode(b"\x00\x01bin").decode()
    s.call("save_file", name="b.bin", data=raw, base64=True)
    fs = on_phone(phone, lambda p: p.state.fs)
    assert on_phone(phone, lambda p: fs.read("/sdcard/Download/a.txt")) == b"hello"
    assert on_phone(phone, lambda p: fs.read("/sdcard/Download/b.bin")) == b"\x00\x01bin"
    with pytest.raises(ActionError, match="save_file: bad params: name"):
        s.call("save_file", name="../x", data="x")
    assert s.call("shell", command="echo hi") == {"output": "hi", "exit_code": 0}
    assert s.call("shell", command="false")["exit_code"] == 1


def test_browser_only_actions_are_unsupported(s: Session) -> None:
    with pytest.raises(UnsupportedAction, match="'evaluate' is not available on android"):
        s.call("evaluate", js="1")
    with pytest.raises(UnsupportedAction, match="set_input_files"):
        s.call("set_input_files", selector="input", files=["a"])


def test_hierarchy_that_does_not_parse(s: Session, phone: SimHandle) -> None:
    s.call("launch_app", package=LOGIN, clear_existing=True)
    (user,) = s.call("find", view_id="username")
    s.call("tap", x=center(user)[0], y=center(user)[1])
    s.call("write_text", text="bad\x01")  # a control character: invalid in XML 1.0
    with pytest.raises(ActionError, match="screen_content: the device's UI hierarchy is not valid"):
        s.call("screen_content")
    s.call("write_text", text="fine", clear=True)
    assert s.call("find", text="fine")


def test_garbage_screenshots_are_errors_not_black_images(
    s: Session, phone: SimHandle, module_driver: DriverHarness
) -> None:
    not_image = base64.b64encode(b"this is not a JPEG").decode()
    on_phone(phone, lambda p: setattr(p.state.screen, "jpeg_base64", lambda *a: not_image))
    try:
        with pytest.raises(ActionError, match="screenshot: the captured screen is not a readable"):
            s.call("screenshot", max_width=100, max_height=100, quality=80)
        on_phone(phone, lambda p: setattr(p.state.screen, "jpeg_base64", lambda *a: "%%garbage"))
        with pytest.raises(ActionError, match="screenshot: the phone did not answer as expected"):
            s.call("screenshot", max_width=100, max_height=100, quality=80)
    finally:
        on_phone(phone, lambda p: delattr(p.state.screen, "jpeg_base64"))
    device = module_driver.device(phone.serial)
    poll(lambda: device.health == "ok" and device.ready)
    assert s.call("screenshot", max_width=100, max_height=100, quality=80)["screenshot"]


def test_recognize_text_reads_the_login_screen_and_a_crop(s: Session) -> None:
    s.call("launch_app", package=LOGIN, clear_existing=True)
    screen = s.call("recognize_text")
    assert (screen["width"], screen["height"]) == (720, 1280)
    assert "Example Login" in screen["text"]
    words = {block["text"]: block for block in screen["blocks"]}
    assert {"Example", "Username", "Password"} <= set(words)
    user = words["Username"]
    (field,) = s.call("find", view_id="username")
    bounds = field["bounds"]
    assert bounds["left"] <= user["x"] < user["x"] + user["width"] <= bounds["right"]
    assert bounds["top"] <= user["y"] < user["y"] + user["height"] <= bounds["bottom"]
    assert 0 < user["confidence"] <= 100

    (button,) = s.call("find", view_id="login")
    b = button["bounds"]
    crop = [b["left"], b["top"], b["right"], b["bottom"]]
    region = s.call("recognize_text", crop=crop)
    assert region["text"] == "Login"
    (word,) = region["blocks"]
    assert b["left"] <= word["x"] and word["y"] + word["height"] <= b["bottom"]  # screen pixels

    with pytest.raises(ActionError, match=r"recognize_text: crop .* is outside the 720x1280"):
        s.call("recognize_text", crop=[0, 0, 800, 100])
    with pytest.raises(ActionError, match=r"recognize_text: crop .* must have x1 < x2"):
        s.call("recognize_text", crop=[10, 10, 10, 100])
    with pytest.raises(ActionError, match=r"bad params: lang: .*no Tesseract data for klingon"):
        s.call("recognize_text", lang="klingon")
    with pytest.raises(ActionError, match=r"bad params: crop"):
        s.call("recognize_text", crop="all")
    assert s.call("find", view_id="login")  # the phone is as usable as before


def test_airplane_mode_cuts_the_network(s: Session, phone: SimHandle) -> None:
    def setting() -> str:
        answer = s.call("shell", command="settings get global airplane_mode_on")
        return str(answer["output"])

    assert setting() == "0"
    assert s.call("airplane", on=True) is True
    assert setting() == "1"
    assert s.call("shell", command="cmd connectivity airplane-mode")["output"] == "enabled"
    s.call("browse", url="https://example.org/")
    assert s.call("find", text="No internet: ERR_INTERNET_DISCONNECTED")
    assert s.call("airplane", on=False) is False
    assert setting() == "0"
    s.call("browse", url="https://example.org/")
    assert s.call("find", text="Page: https://example.org/")
    with pytest.raises(ActionError, match=r"airplane: bad params: on"):
        s.call("airplane", on="maybe")


def test_reset_after_the_task(
    module_driver: DriverHarness, module_session: Session, phone: SimHandle
) -> None:
    module_session.call("launch_app", package=LIST)
    module_session.call("airplane", on=True)
    module_session.close()
    assert current(phone) == "com.android.launcher3"
    assert not on_phone(phone, lambda p: p.state.airplane)  # the next task has a network
    assert LIST not in on_phone(phone, lambda p: dict(p.state.screen.running))
    with pytest.raises(ActionError, match="the session is closed"):
        module_session.call("tap", x=1, y=1)
    again = module_driver.open(phone.serial, task_id="task-2")
    assert again.call("shell", command="echo again")["output"] == "again"
    again.close()
