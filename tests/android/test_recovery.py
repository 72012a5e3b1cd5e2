"""Discovery, health and the recovery ladder, through the real adb server with simulated phones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.base import ActionError, DeviceLost
from drivers.sim import free_port
from tests.android.conftest import DriverHarness, driver, on_phone, stop_sim
from tests.sim.conftest import AdbServer, SimHandle, bounded, poll


def test_phone_found_with_its_properties(harness: DriverHarness, sim_phone: SimHandle) -> None:
    device = harness.wait_state(sim_phone.serial, "available")
    rid = harness.rid(sim_phone.serial)
    assert harness.slots.added[rid] is device
    props = device.properties()
    assert props["model"] == "Sim" and props["brand"] == "DeviceAgent"
    assert (props["width"], props["height"], props["sdk_version"]) == (720, 1280, 33)
    assert props["health"] == "ok" and props["serial"] == sim_phone.serial


def test_phone_plugged_in_later_becomes_available(adb_server: AdbServer, tmp_path: Path) -> None:
    sim = SimHandle()
    try:
        port = free_port()
        serial = f"127.0.0.1:{port}"
        with driver(adb_server, tmp_path, [serial]) as h:
            assert serial not in h.fleet.devices
            sim.start(port)  # "plugged in": the daemon's connect loop reaches it
            h.wait_state(serial, "available")
    finally:
        stop_sim(adb_server, sim)


def test_phone_lost_mid_task_then_back_with_the_same_id(
    harness: DriverHarness, sim_phone: SimHandle
) -> None:
    rid = harness.rid(sim_phone.serial)
    session = harness.open(sim_phone.serial)
    on_phone(sim_phone, lambda p: p.go_offline())
    poll(lambda: harness.slots.lost == [rid])
    device = harness.device(sim_phone.serial)
    assert device.state() == "offline"
    with pytest.raises(DeviceLost, match=r"tap: the phone .* is gone"):
        session.call("tap", x=1, y=1)
    session.close()
    on_phone(sim_phone, lambda p: p.come_online())
    harness.wait_state(sim_phone.serial, "available")
    assert harness.rid(sim_phone.serial) == rid
    assert harness.slots.lost == [rid]  # told once


def test_uiautomator2_server_killed_mid_task_is_restarted(
    harness: DriverHarness, sim_phone: SimHandle
) -> None:
    session = harness.open(sim_phone.serial)
    on_phone(sim_phone, lambda p: p.kill_u2_server())
    assert not on_phone(sim_phone, lambda p: p.state.u2.running)
    session.call("launch_app", package="com.example.login")
    assert session.call("find", view_id="username")  # uiautomator2 restarted its server
    assert on_phone(sim_phone, lambda p: p.state.u2.running)
    session.close()


def test_ladder_quarantines_then_recovers(harness: DriverHarness, sim_phone: SimHandle) -> None:
    device = harness.wait_state(sim_phone.serial, "available")
    seen: set[str] = set()

    def health() -> bool:
        seen.add(device.health)
        return device.state() == "quarantined"

    on_phone(sim_phone, lambda p: p.hold_uiautomation())
    on_phone(sim_phone, lambda p: p.kill_u2_server())
    poll(health, interval=0.02)
    assert {"retry", "restart_uiautomator", "reconnect_adb"} <= seen | {device.health}
    assert "AccessibilityServiceAlreadyRegistered" in (device.last_error or "")
    on_phone(sim_phone, lambda p: p.hold_uiautomation(False))
    poll(lambda: device.state() == "available")
    assert device.health == "ok"


def test_unauthorized_phone_is_reported_then_comes_back(
    harness: DriverHarness, sim_phone: SimHandle
) -> None:
    device = harness.wait_state(sim_phone.serial, "available")
    on_phone(sim_phone, lambda p: p.require_authorization())
    poll(lambda: device.state() == "unauthorized")
    on_phone(sim_phone, lambda p: p.authorize())
    harness.wait_state(sim_phone.serial, "available")


def test_adb_server_killed_every_phone_found_again(
    adb_server: AdbServer, sim_phone: SimHandle, harness: DriverHarness
) -> None:
    second = SimHandle()
    try:
        second.start()
        adb_server.connect(second.serial)
        harness.wait_state(sim_phone.serial, "available")
        harness.wait_state(second.serial, "available")
        ids = {harness.rid(sim_phone.serial), harness.rid(second.serial)}
        assert adb_server.run("kill-server").returncode == 0
        devices = [harness.device(sim_phone.serial), harness.device(second.serial)]
        poll(lambda: all(device.state() == "offline" for device in devices))
        # the tracker restarts the server; only the configured address is re-connected by
        # the daemon (the other one was plugged in by hand, like a USB phone re-enumerating)
        harness.wait_state(sim_phone.serial, "available")
        adb_server.connect(second.serial)
        harness.wait_state(second.serial, "available")
        assert {harness.rid(sim_phone.serial), harness.rid(second.serial)} == ids
    finally:
        stop_sim(adb_server, second)


def test_action_errors_name_the_action_when_the_phone_is_slow(
    adb_server: AdbServer, sim_phone: SimHandle, tmp_path: Path
) -> None:
    with driver(adb_server, tmp_path, [sim_phone.serial], call_timeout_s=1.0) as h:
        session = h.open(sim_phone.serial)
        on_phone(sim_phone, lambda p: p.set_latency(3.0))
        with pytest.raises(ActionError, match="tap: "):
            session.call("tap", x=5, y=5)
        on_phone(sim_phone, lambda p: p.set_latency(0))
        device = h.device(sim_phone.serial)
        poll(lambda: device.health == "ok" and device.ready)
        session.call("tap", x=5, y=5)
        session.close()


def test_frozen_phone_is_offline_within_a_few_health_intervals(
    adb_server: AdbServer, tmp_path: Path
) -> None:
    """A phone process stopped with SIGSTOP: adb still lists it and its connection stays open,
    but nothing answers. It must be offline after one probe's call_timeout_s (5 s here), not
    after the ladder's first rung has also waited its connect_timeout_s (60 s here)."""
    port = free_port()
    serial = f"127.0.0.1:{port}"
    sim = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "sim", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sim.stdout is not None
        assert serial in bounded(sim.stdout.readline, timeout=30)
        with driver(adb_server, tmp_path, [serial], connect_timeout_s=60.0) as h:
            device = h.wait_state(serial, "available")
            os.kill(sim.pid, signal.SIGSTOP)
            poll(lambda: device.state() == "offline", timeout=30)
            os.kill(sim.pid, signal.SIGCONT)
            h.wait_state(serial, "available", timeout=120)
    finally:
        os.kill(sim.pid, signal.SIGCONT)
        adb_server.run("disconnect", serial)
        sim.terminate()
        sim.wait(30)
