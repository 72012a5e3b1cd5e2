"""uiautomator2 against the sim, the way the Android driver uses it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import uiautomator2 as u2  # type: ignore[import-untyped,unused-ignore]

from tests.sim.conftest import AdbServer, SimHandle, bounded


def connect(adb_server: AdbServer, sim_phone: SimHandle) -> u2.Device:
    device = adb_server.client().device(sim_phone.serial)
    return bounded(u2.connect, device)


def current_package(sim_phone: SimHandle) -> str:
    package: str = sim_phone.do(lambda phone: phone.state.screen.current.package)
    return package


def test_connect_pushes_jar_and_starts_server(adb_server: AdbServer, sim_phone: SimHandle) -> None:
    d = connect(adb_server, sim_phone)
    assert sim_phone.do(lambda phone: phone.state.u2.running)
    assert sim_phone.do(lambda phone: phone.state.fs.stat("/data/local/tmp/u2.jar")) is not None
    info = bounded(lambda: d.info)
    assert info["displayWidth"] == 720 and info["displayHeight"] == 1280
    assert info["currentPackageName"] == "com.android.launcher3"
    assert bounded(d.screenshot).size == (720, 1280)


def test_login_flow_by_taps_and_text(adb_server: AdbServer, sim_phone: SimHandle) -> None:
    d = connect(adb_server, sim_phone)
    bounded(d.app_start, "com.example.login")
    assert bounded(lambda: d(text="Login").exists)
    root = ET.fromstring(bounded(d.dump_hierarchy).encode())
    ids = {node.get("resource-id") for node in root.iter("node")}
    assert {"com.example.login:id/username", "com.example.login:id/password"} <= ids
    username = bounded(lambda: d(resourceId="com.example.login:id/username").info)
    assert username["className"] == "android.widget.EditText"
    bounded(d.click, 360, 290)
    bounded(d.send_keys, "demo")
    bounded(d.click, 360, 430)
    bounded(d.send_keys, "secret")
    assert bounded(lambda: d(focused=True).info)["resourceName"] == "com.example.login:id/password"
    bounded(lambda: d(text="Login").click())
    assert 'text="Welcome, demo"' in bounded(d.dump_hierarchy)
    assert (
        bounded(lambda: d(resourceId="com.example.login:id/welcome").get_text()) == "Welcome, demo"
    )
    assert not bounded(lambda: d(text="Login").exists)


def test_wrong_password_shows_error_and_set_text(
    adb_server: AdbServer, sim_phone: SimHandle
) -> None:
    d = connect(adb_server, sim_phone)
    bounded(d.app_start, "com.example.login")
    bounded(lambda: d(resourceId="com.example.login:id/username").set_text("demo"))
    bounded(lambda: d(resourceId="com.example.login:id/password").set_text("nope"))
    bounded(lambda: d(text="Login").click())
    assert bounded(lambda: d(resourceId="com.example.login:id/error").wait(timeout=5))
    assert bounded(lambda: d(resourceId="com.example.login:id/username").get_text()) == "demo"


def test_apps_keys_and_clipboard(adb_server: AdbServer, sim_phone: SimHandle) -> None:
    d = connect(adb_server, sim_phone)
    bounded(d.app_start, "com.example.login")
    assert bounded(d.app_current)["package"] == "com.example.login"
    bounded(d.press, "home")
    assert current_package(sim_phone) == "com.android.launcher3"
    bounded(lambda: d(description="Items").click())
    assert current_package(sim_phone) == "com.example.list"
    bounded(d.press, "back")
    assert current_package(sim_phone) == "com.android.launcher3"
    bounded(d.app_start, "com.example.login")
    bounded(d.app_stop, "com.example.login")
    assert current_package(sim_phone) == "com.android.launcher3"
    assert "com.example.login" not in bounded(d.app_list_running)
    assert "com.example.list" in bounded(d.app_list)
    bounded(d.set_clipboard, "copied text")
    assert bounded(lambda: d.clipboard) == "copied text"


def test_scrolling_list(adb_server: AdbServer, sim_phone: SimHandle) -> None:
    d = connect(adb_server, sim_phone)
    bounded(d.app_start, "com.example.list")
    assert not bounded(lambda: d(text="Item 30").exists)
    assert bounded(lambda: d(scrollable=True).scroll.to(text="Item 30"))
    bounded(lambda: d(text="Item 30").click())
    assert bounded(lambda: d(text="Item 30").info)["selected"]
    bounded(d.swipe_ext, "down")
    assert bounded(lambda: d.xpath('//*[@resource-id="com.example.list:id/list"]').exists)


def test_unknown_jsonrpc_method_and_absent_view_are_errors(
    adb_server: AdbServer, sim_phone: SimHandle
) -> None:
    d = connect(adb_server, sim_phone)
    with pytest.raises(u2.RPCUnknownError, match="noSuchMethod"):
        bounded(lambda: d.jsonrpc.noSuchMethod())
    with pytest.raises(u2.UiObjectNotFoundError):
        bounded(lambda: d(text="absent").info)
