"""Simulated phones, and a daemon that attaches them through an adb server of its own."""

from __future__ import annotations

import sys
from pathlib import Path

from scripts.devstack import Coordinator, Daemon, Proc, android_config, free_port


def sim_phones(ports: list[int], logs: Path) -> list[Proc]:
    """One `device-agent sim` process per port (not started)."""
    return [
        Proc(
            [sys.executable, "-m", "agent.cli.main", "sim", "--port", str(port)],
            logs / f"sim-{port}.log",
        )
        for port in ports
    ]


def phone_daemon(
    workdir: Path,
    coordinator: Coordinator,
    host_id: str,
    ports: list[int],
    argv_prefix: list[str] | None = None,
) -> tuple[Daemon, int, dict[str, str]]:
    """A daemon (in workdir/daemon, not started) with only the phones on `ports`, its adb
    server's port and the environment that keeps that server's keys in `workdir`; the caller
    stops the server (scripts/devstack.py `kill_adb_server`)."""
    adb_port = free_port()
    adb_env = {"HOME": str(workdir / "adb-home")}
    (workdir / "adb-home").mkdir()
    (workdir / "daemon").mkdir()
    daemon = Daemon(
        dir=workdir / "daemon",
        coordinator=coordinator,
        host_id=host_id,
        browsers=[],
        extra=android_config(adb_port, [f"127.0.0.1:{port}" for port in ports]),
        env=adb_env,
        argv_prefix=argv_prefix or [],
    )
    return daemon, adb_port, adb_env
