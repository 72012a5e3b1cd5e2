"""The daemon and the coordinator as systemd `Type=notify` services: the real processes, each with
a real NOTIFY_SOCKET, announce READY, keep a STATUS line and ping the watchdog; a watchdog too
short for the daemon's loop is raised, and the log says so."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from scripts.devstack import Coordinator, Daemon, free_port, wait_until
from tests.notifysock import NotifySocket


def test_daemon_and_coordinator_notify_systemd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    coordinator_socket = NotifySocket(f"@device-coordinator-test-{uuid.uuid4().hex}")
    daemon_socket = NotifySocket(tmp_path / "daemon-notify")
    data = tmp_path / "coordinator"
    data.mkdir()
    # The coordinator process inherits the variables (a 4 s watchdog).
    monkeypatch.setenv("NOTIFY_SOCKET", coordinator_socket.address)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    coordinator = Coordinator(data_dir=data, port=free_port())
    coordinator.start()
    # The daemon gets a watchdog of 1 s, shorter than it honours, and its own socket.
    daemon = Daemon(
        dir=tmp_path / "daemon",
        coordinator=coordinator,
        browsers=[],
        env={"NOTIFY_SOCKET": daemon_socket.address, "WATCHDOG_USEC": "1000000"},
    )
    daemon.dir.mkdir()
    try:
        ready = coordinator_socket.wait_for(lambda m: "READY" in m, "the coordinator's READY=1")
        assert ready["STATUS"] == f"serving on 127.0.0.1:{coordinator.port}, 0 host(s) connected"
        coordinator_socket.wait_for(lambda m: "WATCHDOG" in m, "the coordinator's pings")

        daemon.start()
        ready = daemon_socket.wait_for(lambda m: "READY" in m, "the daemon's READY=1")
        assert ready["READY"] == "1"
        assert daemon_socket.messages[0]["STATUS"].startswith("starting: "), "status before READY"
        daemon_socket.wait_for(
            lambda m: m.get("STATUS") == "connected, 0/0 devices busy", "status: connected"
        )
        raised = daemon_socket.wait_for(lambda m: "WATCHDOG_USEC" in m, "the raised watchdog")
        assert raised["WATCHDOG_USEC"] == "2000000"
        assert daemon.proc is not None
        daemon.proc.wait_log("WatchdogSec=1s is shorter than the 2s this service needs")
        daemon_socket.wait_for(lambda m: m.get("WATCHDOG") == "1", "the daemon's pings")
        coordinator_socket.wait_for(
            lambda m: (
                m.get("STATUS") == f"serving on 127.0.0.1:{coordinator.port}, 1 host(s) connected"
            ),
            "the coordinator's status with the host",
        )

        # The coordinator goes away: the daemon says it reconnects, and keeps pinging (its loop
        # and its link's loop are fine: waiting for a coordinator is not being wedged).
        coordinator.stop()
        coordinator_socket.wait_for(lambda m: "STOPPING" in m, "the coordinator's STOPPING=1")
        reconnecting = daemon_socket.wait_for(
            lambda m: m.get("STATUS", "").startswith("reconnecting in "), "status: reconnecting"
        )
        at = daemon_socket.messages.index(reconnecting)
        wait_until(
            lambda: (
                daemon_socket.drain() is not None
                and {"WATCHDOG": "1"} in daemon_socket.messages[at + 1 :]
            ),
            "pings while reconnecting",
        )
        assert daemon.stop() == 0
        daemon_socket.wait_for(lambda m: "STOPPING" in m, "the daemon's STOPPING=1")
    finally:
        daemon.stop()
        coordinator.stop()
        coordinator_socket.close()
        daemon_socket.close()
