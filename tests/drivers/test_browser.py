"""The browser driver against a real headless Chromium and a real local HTTP site."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
from base64 import b64decode, b64encode
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from PIL import Image
from playwright.async_api import Error as PlaywrightError

from drivers.base import ActionError, DeviceLost, DeviceSession, UnsupportedAction
from drivers.browser.config import BrowserSettings, BrowserSlot
from drivers.browser.device import BrowserDevice
from drivers.browser.host import ChromiumHost
from drivers.browser.session import BrowserSession
from scripts.devstack import poll_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

T = TypeVar("T")
DEADLINE_S = 30.0
SETTINGS = BrowserSettings()


async def eventually(check: Callable[[], Awaitable[T]], what: str) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline."""
    value: T = await poll_until(check, what, DEADLINE_S)
    return value


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def host() -> AsyncIterator[ChromiumHost]:
    chromium = ChromiumHost(SETTINGS)
    await chromium.start()
    assert chromium.running, chromium.launch_error
    yield chromium
    await chromium.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def device(host: ChromiumHost) -> AsyncIterator[BrowserDevice]:
    browser_device = BrowserDevice(BrowserSlot(name="browser-1"), host, SETTINGS)
    await browser_device.start()
    yield browser_device
    await browser_device.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def session(device: BrowserDevice, site: str) -> AsyncIterator[BrowserSession]:
    opened = await device.open_session("task-1")
    assert isinstance(opened, BrowserSession)
    await opened.call("browse", {"url": site})
    yield opened
    await opened.close()


def walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node["children"] for n in walk(child))]


async def node_by_id(session: DeviceSession, view_id: str) -> dict[str, Any]:
    tree = await session.call("screen_content", {})
    matches = [node for node in walk(tree) if node["view_id"] == view_id]
    assert len(matches) == 1, f"expected one #{view_id}, found {len(matches)}"
    return matches[0]


def center(node: dict[str, Any]) -> dict[str, float]:
    bounds = node["bounds"]
    return {
        "x": (bounds["left"] + bounds["right"]) / 2,
        "y": (bounds["top"] + bounds["bottom"]) / 2,
    }


async def tap_node(session: BrowserSession, view_id: str) -> None:
    await session.call("tap", center(await node_by_id(session, view_id)))


async def events(session: BrowserSession) -> list[str]:
    result: list[str] = await session.call("evaluate", {"js": "window.events"})
    return result


# ---- the device ----------------------------------------------------------------------------


async def test_device_reports_state_and_properties(device: BrowserDevice) -> None:
    assert device.kind == "browser"
    assert device.slot == "browser-1"
    assert device.state() == "available"
    props = device.properties()
    assert props["brand"] == "Chromium"
    assert props["model"] == "headless"
    assert props["browser_version"]
    assert (props["width"], props["height"]) == (1280, 720)


async def test_browse_returns_url_and_status(session: BrowserSession, site: str) -> None:
    result = await session.call("browse", {"url": site + "second"})
    assert result == {"url": site + "second", "status": 200}
    missing = await session.call("browse", {"url": site + "nowhere"})
    assert missing["status"] == 404


async def test_browse_to_a_dead_server_is_an_action_error(session: BrowserSession) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(ActionError, match=r"browse: .*ERR_CONNECTION_REFUSED"):
        await session.call("browse", {"url": f"http://127.0.0.1:{port}/"})


# ---- seeing the screen ---------------------------------------------------------------------


async def test_screen_content_is_the_dom_as_nodes(session: BrowserSession, site: str) -> None:
    tree = await session.call("screen_content", {})
    assert tree["class_name"] == "html"
    assert tree["package_name"] == site.split("/")[2]
    nodes = walk(tree)
    tags = {node["class_name"] for node in nodes}
    assert "script" not in tags and "head" not in tags and "style" not in tags
    assert all(node["text"] != "hidden text" for node in nodes)

    button = await node_by_id(session, "go")
    assert button["class_name"] == "button"
    assert button["text"] == "Go"
    assert button["bounds"] == {"left": 100, "top": 100, "right": 300, "bottom": 180}
    assert button["clickable"] and button["enabled"] and button["visible"]
    assert not button["focused"] and not button["checked"] and not button["selected"]
    assert button["children"] == []

    name = await node_by_id(session, "name")
    assert name["hint_text"] == "your name"
    icon = await node_by_id(session, "icon")
    assert icon["description"] == "settings" and icon["clickable"]
    body = next(node for node in nodes if node["class_name"] == "body")
    assert body["children"][0]["view_id"] == "go"
    assert tree["scrollable"]


async def test_screen_content_caps_the_node_count(session: BrowserSession, site: str) -> None:
    await session.call("browse", {"url": site + "huge"})
    nodes = walk(await session.call("screen_content", {}))
    assert 1000 < len(nodes) <= 5000


async def test_screenshot_fits_the_box_and_decodes(session: BrowserSession) -> None:
    shot = await session.call("screenshot", {"max_width": 320, "max_height": 240, "quality": 70})
    assert set(shot) == {
        "screenshot",
        "compressedWidth",
        "compressedHeight",
        "originalWidth",
        "originalHeight",
    }
    assert (shot["originalWidth"], shot["originalHeight"]) == (1280, 720)
    assert (shot["compressedWidth"], shot["compressedHeight"]) == (320, 180)
    image = Image.open(io.BytesIO(b64decode(shot["screenshot"])))
    assert image.format == "JPEG" and image.size == (320, 180)


async def test_screenshot_never_upscales_and_crops(session: BrowserSession) -> None:
    big = await session.call("screenshot", {"max_width": 1080, "max_height": 1920, "quality": 80})
    assert (big["compressedWidth"], big["compressedHeight"]) == (1080, 608)
    full = await session.call("screenshot", {"max_width": 4000, "max_height": 4000, "quality": 80})
    assert (full["compressedWidth"], full["compressedHeight"]) == (1280, 720)
    crop = await session.call(
        "screenshot",
        {"max_width": 1000, "max_height": 1000, "quality": 80, "crop": [100, 100, 300, 180]},
    )
    assert (crop["compressedWidth"], crop["compressedHeight"]) == (200, 80)
    assert Image.open(io.BytesIO(b64decode(crop["screenshot"]))).size == (200, 80)


async def test_screenshot_bad_crop_and_quality_are_action_errors(session: BrowserSession) -> None:
    with pytest.raises(ActionError, match=r"screenshot: crop .* outside the 1280x720 screen"):
        await session.call(
            "screenshot",
            {"max_width": 100, "max_height": 100, "quality": 80, "crop": [0, 0, 2000, 10]},
        )
    with pytest.raises(ActionError, match=r"screenshot: bad params: quality"):
        await session.call("screenshot", {"max_width": 100, "max_height": 100, "quality": 0})


async def test_find_returns_matching_visible_nodes(session: BrowserSession) -> None:
    found = await session.call("find", {"text": "Go"})
    assert [node["view_id"] for node in found] == ["go"]
    assert found[0]["children"] == []
    assert [n["view_id"] for n in await session.call("find", {"text_contains": "ait"})] == [
        "status"
    ]
    assert len(await session.call("find", {"class_name": "BUTTON"})) == 2
    assert [n["view_id"] for n in await session.call("find", {"description": "settings"})] == [
        "icon"
    ]
    assert await session.call("find", {"text": "hidden text"}) == []
    with pytest.raises(ActionError, match=r"find: bad params: .*at least one"):
        await session.call("find", {})


async def test_wait_for_node_and_gone(session: BrowserSession) -> None:
    await tap_node(session, "later")
    arrived = await session.call(
        "wait_for_node", {"selector": {"view_id": "late"}, "timeout_ms": 20_000, "interval_ms": 50}
    )
    assert arrived[0]["text"] == "arrived late"
    assert await session.call("wait_for_node_gone", {"selector": {"text": "Go"}}) is None
    with pytest.raises(ActionError, match=r"wait_for_node: no node matching .*nope.* within 200"):
        await session.call("wait_for_node", {"selector": {"text": "nope"}, "timeout_ms": 200})
    with pytest.raises(ActionError, match="wait_for_node_gone: no node matching"):
        await session.call(
            "wait_for_node_gone", {"selector": {"view_id": "late"}, "timeout_ms": 100}
        )


# ---- touching and typing -------------------------------------------------------------------


async def test_tap_on_the_button_changes_the_page(session: BrowserSession) -> None:
    assert (await node_by_id(session, "status"))["text"] == "waiting"
    await tap_node(session, "go")

    async def status() -> bool:
        return bool((await node_by_id(session, "status"))["text"] == "clicked")

    await eventually(status, "the status to read 'clicked'")
    assert await session.call("evaluate", {"js": "document.getElementById('status').textContent"})


async def test_tap_outside_the_screen_is_refused(session: BrowserSession) -> None:
    with pytest.raises(ActionError, match=r"tap: point \(1280, 10\) is outside the 1280x720"):
        await session.call("tap", {"x": 1280, "y": 10})


async def test_write_text_types_into_the_focused_input(session: BrowserSession) -> None:
    with pytest.raises(ActionError, match="write_text: no element has the keyboard focus"):
        await session.call("write_text", {"text": "lost"})
    await tap_node(session, "name")
    assert (await node_by_id(session, "name"))["focused"]
    await session.call("write_text", {"text": "hello world"})
    assert (await node_by_id(session, "name"))["text"] == "hello world"
    await session.call("write_text", {"text": "bye", "clear": True})
    value = await session.call("evaluate", {"js": "document.getElementById('name').value"})
    assert value == "bye"


async def test_input_key(session: BrowserSession) -> None:
    await tap_node(session, "name")
    await session.call("input_key", {"key": "x"})
    await session.call("input_key", {"key": "enter"})
    await session.call("input_key", {"key": "Shift", "state": "down"})
    await session.call("input_key", {"key": "KeyY"})
    await session.call("input_key", {"key": "Shift", "state": "up"})
    assert "key:Enter" in await events(session)
    assert (await node_by_id(session, "name"))["text"] == "xY"
    with pytest.raises(ActionError, match=r'input_key: .*Unknown key: "NoSuchKey"'):
        await session.call("input_key", {"key": "NoSuchKey"})


async def test_copy_text_and_paste(session: BrowserSession) -> None:
    await session.call("copy_text", {"text": "from the clipboard"})
    assert await session.call("reverse_copy", {}) == "from the clipboard"
    await tap_node(session, "name")
    await session.call("paste", {})
    assert (await node_by_id(session, "name"))["text"] == "from the clipboard"


async def test_double_tap_and_hold(session: BrowserSession) -> None:
    await session.call("double_tap", {"x": 150, "y": 350})
    assert "dblclick" in await events(session)
    await session.call("evaluate", {"js": "window.events = []"})
    await session.call("hold", {"x": 120, "y": 320, "duration_ms": 300})
    assert await events(session) == ["down:120,320", "up:120,320"]


async def test_swipe_moves_the_pointer_from_start_to_end(session: BrowserSession) -> None:
    await session.call("swipe", {"x1": 110, "y1": 310, "x2": 490, "y2": 480, "duration_ms": 200})
    seen = await events(session)
    assert seen[0] == "down:110,310" and seen[-1] == "up:490,480"
    assert seen.count("move") >= 2


async def test_swipe_poly_and_multi_tap(session: BrowserSession) -> None:
    await session.call(
        "swipe_poly",
        {"x": 110, "y": 310, "points": [[300, 400], [490, 320]], "duration_ms": 100},
    )
    seen = await events(session)
    assert seen[0] == "down:110,310" and seen[-1] == "up:490,320"
    assert seen.count("move") >= 4
    await session.call("evaluate", {"js": "window.events = []"})
    await session.call(
        "multi_tap", {"taps": [{"x": 120, "y": 320}, {"x": 130, "y": 330, "delay": 50}]}
    )
    assert await events(session) == ["down:120,320", "up:120,320", "down:130,330", "up:130,330"]


async def test_node_action_clicks_and_sets_text(session: BrowserSession) -> None:
    [button] = await session.call("find", {"view_id": "go"})
    await session.call("node_action", {"node": button, "action": "click"})

    async def clicked() -> bool:
        return bool(await session.call("find", {"text": "clicked"}))

    await eventually(clicked, "the node click to change the status")
    [name] = await session.call("find", {"view_id": "name"})
    await session.call("node_action", {"node": name, "action": "set_text", "data": "first"})
    await session.call("node_action", {"node": name, "action": "set_text", "data": "second"})
    assert (await node_by_id(session, "name"))["text"] == "second"
    with pytest.raises(ActionError, match="node_action: set_text needs data"):
        await session.call("node_action", {"node": name, "action": "set_text"})
    with pytest.raises(ActionError, match=r"node_action: bad params: action"):
        await session.call("node_action", {"node": name, "action": "explode"})


async def test_scroll_moves_the_view(session: BrowserSession) -> None:
    async def scrolled(axis: str, at_least: int) -> bool:
        return bool(await session.call("evaluate", {"js": f"window.scroll{axis}"}) >= at_least)

    # 0.9 of the 720 px viewport: 648 px once any smooth scrolling has finished.
    await session.call("scroll", {"direction": "down"})
    await eventually(lambda: scrolled("Y", 640), "the page to scroll down")
    await session.call("scroll", {"direction": "right", "scale": 0.5})
    await eventually(lambda: scrolled("X", 640), "the page to scroll right")

    async def back_at_top() -> bool:
        return bool(await session.call("evaluate", {"js": "window.scrollY"}) == 0)

    await session.call("scroll", {"direction": "up", "scale": 2})
    await eventually(back_at_top, "the page to scroll back up")


async def test_go_back_and_go_home(session: BrowserSession, site: str) -> None:
    await tap_node(session, "next")

    async def on_second() -> bool:
        return bool(await session.call("find", {"view_id": "second"}))

    await eventually(on_second, "the second page")
    assert await session.call("go_back", {}) == {"url": site}
    home = await session.call("go_home", {})
    assert home["url"] == "about:blank"


# ---- browser only --------------------------------------------------------------------------


async def test_evaluate(session: BrowserSession) -> None:
    assert await session.call("evaluate", {"js": "1 + 2"}) == 3
    result = await session.call("evaluate", {"js": "() => ({a: [1, 'x', null], b: true})"})
    assert result == {"a": [1, "x", None], "b": True}
    with pytest.raises(ActionError, match=r"evaluate: .*boom"):
        await session.call("evaluate", {"js": "() => { throw new Error('boom') }"})
    with pytest.raises(ActionError, match="evaluate: the result is not JSON-serialisable"):
        await session.call("evaluate", {"js": "NaN"})


async def test_save_file_and_set_input_files(
    device: BrowserDevice, site: str, tmp_path: Path
) -> None:
    session = await device.open_session("task-files")
    work = tmp_path / "work"
    work.mkdir()
    session.keep_files_in(work)
    await session.call("browse", {"url": site})
    assert await session.call("save_file", {"name": "note.txt", "data": "hello"}) == "note.txt"
    assert await asyncio.to_thread((work / "note.txt").read_text) == "hello"
    raw = b"\x00\x01binary"
    data = b64encode(raw).decode()
    assert await session.call("save_file", {"name": "b.bin", "data": data, "base64": True})
    assert await asyncio.to_thread((work / "b.bin").read_bytes) == raw

    await session.call("set_input_files", {"selector": "#file", "files": ["note.txt"]})
    chosen = await session.call("evaluate", {"js": "document.getElementById('file').files[0].name"})
    assert chosen == "note.txt"

    with pytest.raises(ActionError, match=r"save_file: bad params: name: .*plain file name"):
        await session.call("save_file", {"name": "../escape.txt", "data": "x"})
    with pytest.raises(ActionError, match=r"save_file: bad params: name: .*plain file name"):
        await session.call("save_file", {"name": "two\nlines.txt", "data": "x"})
    with pytest.raises(ActionError, match="save_file: data is not valid base64"):
        await session.call("save_file", {"name": "x", "data": "%%%", "base64": True})
    with pytest.raises(ActionError, match="set_input_files: no such saved file"):
        await session.call("set_input_files", {"selector": "#file", "files": ["absent.txt"]})
    # The folder is the script's: a name it planted as a symlink is neither followed nor read.
    secret = tmp_path / "secret.txt"
    secret.write_text("host only")
    (work / "link.txt").symlink_to(secret)
    with pytest.raises(ActionError, match=r"save_file: link\.txt is not a regular file"):
        await session.call("save_file", {"name": "link.txt", "data": "overwritten"})
    with pytest.raises(ActionError, match=r"set_input_files: link\.txt is not"):
        await session.call("set_input_files", {"selector": "#file", "files": ["link.txt"]})
    assert secret.read_text() == "host only"

    await session.close()
    assert (work / "note.txt").is_file()  # the work dir is the daemon's to remove, with the task


async def test_recognize_text_reads_the_page_and_a_crop(session: BrowserSession, site: str) -> None:
    await session.call("browse", {"url": site + "text"})
    page = await session.call("recognize_text", {})
    assert (page["width"], page["height"]) == (1280, 720)
    assert "Invoice 4711" in page["text"] and "Total due 93 EUR" in page["text"]
    words = {block["text"]: block for block in page["blocks"]}
    heading = await node_by_id(session, "heading")
    assert heading["bounds"]["left"] <= words["Invoice"]["x"] < heading["bounds"]["right"]
    assert heading["bounds"]["top"] <= words["Invoice"]["y"] < heading["bounds"]["bottom"]
    assert all(0 <= block["confidence"] <= 100 for block in page["blocks"])

    total = (await node_by_id(session, "total"))["bounds"]
    crop = [total["left"], total["top"], total["right"], total["bottom"]]
    region = await session.call("recognize_text", {"crop": crop})
    assert region["text"] == "Total due 93 EUR"
    assert min(block["y"] for block in region["blocks"]) >= total["top"]  # screen pixels

    with pytest.raises(ActionError, match=r"recognize_text: crop .* is outside the 1280x720"):
        await session.call("recognize_text", {"crop": [0, 0, 5000, 10]})
    with pytest.raises(ActionError, match=r"recognize_text: bad params: lang: .*no Tesseract data"):
        await session.call("recognize_text", {"lang": "xyz"})
    with pytest.raises(ActionError, match=r"recognize_text: bad params: lang: .*must be Tesseract"):
        await session.call("recognize_text", {"lang": "../eng"})
    with pytest.raises(UnsupportedAction, match="'airplane' is not available on browser"):
        await session.call("airplane", {"on": True})
    await session.call("browse", {"url": "about:blank"})  # the device is as usable as before
    assert await session.call("recognize_text", {}) == {
        "text": "", "blocks": [], "confidence": 0.0, "width": 1280, "height": 720
    }  # fmt: skip


# ---- errors --------------------------------------------------------------------------------


async def test_android_only_action_is_unsupported(session: BrowserSession) -> None:
    with pytest.raises(UnsupportedAction) as caught:
        await session.call("launch_app", {"package": "com.example"})
    assert "launch_app" in str(caught.value) and "browser" in str(caught.value)
    with pytest.raises(UnsupportedAction, match="shell"):
        await session.call("shell", {"command": "ls"})


async def test_unknown_action(session: BrowserSession) -> None:
    with pytest.raises(ActionError, match="unknown action 'fly'"):
        await session.call("fly", {})


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"x": "left", "y": 10}, "x"),
        ({"x": 10}, "y"),
        ({"x": -1, "y": 10}, "x"),
        ({"x": 10, "y": 10, "force": True}, "force"),
    ],
)
async def test_bad_params_name_the_action_and_field(
    session: BrowserSession, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(ActionError, match=rf"^tap: bad params: {field}: "):
        await session.call("tap", params)


async def test_browse_refuses_other_schemes(session: BrowserSession) -> None:
    with pytest.raises(ActionError, match=r"browse: bad params: url: .*http://"):
        await session.call("browse", {"url": "file:///etc/passwd"})


async def test_runaway_script_times_out_and_the_session_still_closes(
    host: ChromiumHost, site: str
) -> None:
    quick = BrowserSettings(action_timeout_s=2)
    device = BrowserDevice(BrowserSlot(name="browser-2"), host, quick)
    session = await device.open_session("task-loop")
    await session.call("browse", {"url": site})
    with pytest.raises(ActionError, match=r"evaluate: timed out after 2 s"):
        await session.call("evaluate", {"js": "() => { while (true) {} }"})
    await session.close()
    with pytest.raises(ActionError, match="the session is closed"):
        await session.call("screen_content", {})


# ---- isolation and recovery ----------------------------------------------------------------


async def test_each_session_gets_a_fresh_context(device: BrowserDevice, site: str) -> None:
    first = await device.open_session("task-a")
    await first.call("browse", {"url": site})
    await first.call(
        "evaluate", {"js": "document.cookie = 'seen=1'; localStorage.setItem('k', 'v'); 1"}
    )
    assert await first.call("evaluate", {"js": "document.cookie"}) == "seen=1"
    await first.call("browse", {"url": site + "second"})
    assert await first.call("evaluate", {"js": "localStorage.getItem('k')"}) == "v"
    await first.close()

    second = await device.open_session("task-b")
    try:
        start = await second.call("evaluate", {"js": "location.href"})
        assert start == "about:blank"
        await second.call("browse", {"url": site})
        assert await second.call("evaluate", {"js": "document.cookie"}) == ""
        assert await second.call("evaluate", {"js": "localStorage.getItem('k')"}) is None
        await second.call("evaluate", {"js": "document.cookie = 'again=1'; 1"})
        await second.call("browse", {"url": site, "clear_existing_data": True})
        assert await second.call("evaluate", {"js": "document.cookie"}) == ""
    finally:
        await second.close()


async def test_device_scale_factor_maps_device_pixels(host: ChromiumHost, site: str) -> None:
    slot = BrowserSlot(
        name="retina", viewport_width=800, viewport_height=600, device_scale_factor=2
    )
    device = BrowserDevice(slot, host, SETTINGS)
    assert (device.properties()["width"], device.properties()["height"]) == (1600, 1200)
    session = await device.open_session("task-dpr")
    try:
        await session.call("browse", {"url": site})
        button = await node_by_id(session, "go")
        assert button["bounds"] == {"left": 200, "top": 200, "right": 600, "bottom": 360}
        await session.call("tap", center(button))

        async def clicked() -> bool:
            return bool((await node_by_id(session, "status"))["text"] == "clicked")

        await eventually(clicked, "the tap at device pixels to click the button")
        shot = await session.call(
            "screenshot", {"max_width": 9999, "max_height": 9999, "quality": 50}
        )
        assert (shot["originalWidth"], shot["originalHeight"]) == (1600, 1200)
    finally:
        await session.close()


async def test_a_popup_becomes_the_page_the_script_sees(session: BrowserSession) -> None:
    await session.call("evaluate", {"js": "window.open('/second'); 1"})

    async def on_second() -> bool:
        return bool(await session.call("find", {"view_id": "second"}))

    await eventually(on_second, "the popup to be the current page")
    await session.call("evaluate", {"js": "window.close(); 1"})

    async def back_on_main() -> bool:
        return bool(await session.call("find", {"view_id": "go"}))

    await eventually(back_on_main, "the first tab to be current again")


async def test_crashed_page_is_device_lost_and_the_device_recovers(
    device: BrowserDevice, site: str
) -> None:
    session = await device.open_session("task-crash")
    assert isinstance(session, BrowserSession)
    await session.call("browse", {"url": site})
    page = session.page()
    cdp = await page.context.new_cdp_session(page)
    # A crashed page never answers, so the call is left pending while the crash is awaited.
    crash = asyncio.ensure_future(cdp.send("Page.crash"))

    async def lost() -> bool:
        try:
            await session.call("screen_content", {})
        except DeviceLost as exc:
            return "the page crashed" in str(exc)
        except ActionError:
            return False
        return False

    await eventually(lost, "the crash to be reported as DeviceLost")
    crash.cancel()
    with contextlib.suppress(asyncio.CancelledError, PlaywrightError):
        await crash
    await session.close()
    again = await device.open_session("task-after-crash")
    try:
        await again.call("browse", {"url": site})
        assert (await node_by_id(again, "go"))["text"] == "Go"
    finally:
        await again.close()


async def test_crashed_browser_is_device_lost_then_relaunched(site: str) -> None:
    chromium = ChromiumHost(SETTINGS)
    device = BrowserDevice(BrowserSlot(name="crashy"), chromium, SETTINGS)
    try:
        await device.start()
        session = await device.open_session("task-before")
        await session.call("browse", {"url": site})
        first_browser = await chromium.browser()
        cdp = await first_browser.new_browser_cdp_session()
        # The browser dies before it can answer, so the call itself may fail.
        with contextlib.suppress(PlaywrightError):
            await cdp.send("Browser.crash")

        async def gone() -> bool:
            return not chromium.running

        await eventually(gone, "Chromium to disconnect")
        with pytest.raises(DeviceLost, match="screen_content: the browser closed or crashed"):
            await session.call("screen_content", {})
        await session.close()

        assert device.state() == "available"
        again = await device.open_session("task-after")
        try:
            await again.call("browse", {"url": site})
            assert (await node_by_id(again, "go"))["text"] == "Go"
            assert await chromium.browser() is not first_browser
        finally:
            await again.close()
    finally:
        await device.stop()
        await chromium.stop()


async def test_browser_that_cannot_launch_makes_the_device_offline(tmp_path: Path) -> None:
    broken = BrowserSettings(executable=str(tmp_path / "no-such-chromium"), launch_timeout_s=5)
    chromium = ChromiumHost(broken)
    device = BrowserDevice(BrowserSlot(), chromium, broken)
    try:
        await device.start()
        assert device.state() == "offline"
        assert chromium.launch_error
        with pytest.raises(DeviceLost, match="open_session: cannot launch Chromium"):
            await device.open_session("task-x")
    finally:
        await chromium.stop()


async def test_cancelled_opening_leaves_no_context(host: ChromiumHost) -> None:
    """An opening cancelled at every point of its way (each turn of the loop in turn, inside
    `new_context` among them) leaves no browser context in Chromium."""
    device = BrowserDevice(BrowserSlot(name="browser-cancel"), host, SETTINGS)
    browser = await host.browser()
    cdp = await browser.new_browser_cdp_session()

    async def contexts() -> int:
        reply = await cdp.send("Target.getBrowserContexts")
        return len(reply["browserContextIds"])

    before = await contexts()
    for turns in range(60):
        opening = asyncio.create_task(device.open_session(f"task-{turns}"))
        for _ in range(turns):
            await asyncio.sleep(0)  # one turn of the loop: the cancel lands one step later
        opening.cancel()
        results = await asyncio.gather(opening, return_exceptions=True)
        if isinstance(results[0], DeviceSession):
            await results[0].close()
    await eventually(lambda: poll_contexts(contexts, before), f"{before} browser contexts")
    await cdp.detach()


async def poll_contexts(contexts: Callable[[], Awaitable[int]], before: int) -> bool:
    return await contexts() <= before


async def test_timeouts_say_what_was_awaited_and_a_non_file_input_is_refused(
    host: ChromiumHost, site: str
) -> None:
    quick = BrowserSettings(action_timeout_s=2)
    device = BrowserDevice(BrowserSlot(name="browser-3"), host, quick)
    session = await device.open_session("task-wait")
    try:
        await session.call("browse", {"url": site})
        await session.call("save_file", {"name": "note.txt", "data": "hello"})
        with pytest.raises(ActionError) as wrong_kind:
            await session.call("set_input_files", {"selector": "#name", "files": ["note.txt"]})
        assert str(wrong_kind.value) == (
            "set_input_files: '#name' is <input type=text>, not an <input type=file>: "
            "files can only be set on a file input"
        )
        with pytest.raises(ActionError) as missing:
            await session.call("set_input_files", {"selector": "#nope", "files": ["note.txt"]})
        assert str(missing.value).startswith(
            'set_input_files: timed out after 2000 ms waiting for locator("#nope")'
        )
        assert "nothing on the page matches it; check the selector" in str(missing.value)
    finally:
        await session.close()
