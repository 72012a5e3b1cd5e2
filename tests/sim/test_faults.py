"""The sim's fault hooks, seen through the real adb server, adbutils and uiautomator2."""

from __future__ import annotations

import concurrent.futures

import adbutils  # type: ignore[import-untyped,unused-ignore]
import pytest
import uiautomator2 as u2  # type: ignore[import-untyped,unused-ignore]

from tests.sim.conftest import AdbServer, SimHandle, bounded


def test_offline_then_back_after_reconnect(adb_server: AdbServer, sim_phone: SimHandle) -> None:
    device = adb_server.client().device(sim_phone.serial)
    assert device.shell("echo before", timeout=10) == "before"
    sim_phone.do(lambda phone: phone.go_offline())
    adb_server.wait_state(sim_phone.serial, "offline", None)
    with pytest.raises(adbutils.AdbError):
        device.shell("echo during", timeout=10)
    sim_phone.do(lambda phone: phone.come_online())
    adb_server.connect(sim_phone.serial)
    assert device.shell("echo after", timeout=10) == "after"


def test_killed_u2_server_stops_answering_and_is_restarted(
    adb_server: AdbServer, sim_phone: SimHandle
) -> None:
    device = adb_server.client().device(sim_phone.serial)
    d = bounded(u2.connect, device)
    sim_phone.do(lambda phone: phone.kill_u2_server())
    assert not sim_phone.do(lambda phone: phone.state.u2.running)
    # /ping has nowhere to go: the device refuses tcp:9008.
    with pytest.raises(adbutils.AdbError):
        device.create_connection(adbutils.Network.TCP, 9008)
    # uiautomator2 notices on its next call, relaunches app_process and retries.
    assert bounded(lambda: d.info)["displayWidth"] == 720
    assert sim_phone.do(lambda phone: phone.state.u2.running)
    # A fresh connect finds it alive and does not start a second one.
    assert bounded(lambda: bounded(u2.connect, device).info)["sdkInt"] == 33


def test_unauthorized_until_allowed(adb_server: AdbServer, sim_phone: SimHandle) -> None:
    sim_phone.do(lambda phone: phone.require_authorization())
    adb_server.run("disconnect", sim_phone.serial)
    adb_server.run("connect", sim_phone.serial)
    adb_server.wait_state(sim_phone.serial, "unauthorized")
    sim_phone.do(lambda phone: phone.authorize())
    adb_server.wait_state(sim_phone.serial, "device")
    device = adb_server.client().device(sim_phone.serial)
    assert device.shell("echo allowed", timeout=10) == "allowed"


def test_slow_answers(adb_server: AdbServer, sim_phone: SimHandle) -> None:
    device = adb_server.client().device(sim_phone.serial)
    sim_phone.do(lambda phone: phone.set_latency(5.0))
    with pytest.raises(concurrent.futures.TimeoutError):
        bounded(device.shell, "echo slow", timeout=0.5)
    sim_phone.do(lambda phone: phone.set_latency(0.05))
    assert device.shell("echo fine", timeout=10) == "fine"


def test_uiautomation_held_by_another_client(adb_server: AdbServer, sim_phone: SimHandle) -> None:
    device = adb_server.client().device(sim_phone.serial)
    sim_phone.do(lambda phone: phone.hold_uiautomation())
    with pytest.raises(u2.AccessibilityServiceAlreadyRegisteredError):
        bounded(u2.connect, device)
    sim_phone.do(lambda phone: phone.hold_uiautomation(False))
    assert bounded(lambda: bounded(u2.connect, device).info)["sdkInt"] == 33
