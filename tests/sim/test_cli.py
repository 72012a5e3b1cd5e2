"""`device-agent sim`: one phone in its own process until SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

from drivers.sim import free_port
from tests.sim.conftest import AdbServer, bounded

# main.py wires the subcommand in; this harness builds the same parser around it.
HARNESS = (
    "import argparse, sys\n"
    "from agent.cli import sim\n"
    "parser = argparse.ArgumentParser()\n"
    "sim.register(parser.add_subparsers(dest='command', required=True))\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "sys.exit(args.handler(args))\n"
)


def test_sim_command_serves_until_sigterm(adb_server: AdbServer) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", HARNESS, "sim", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = bounded(proc.stdout.readline, timeout=30)
        serial = f"127.0.0.1:{port}"
        assert serial in line
        adb_server.connect(serial)
        assert adb_server.run("-s", serial, "shell", "echo", "hi").stdout.strip() == "hi"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        adb_server.run("disconnect", serial)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_sim_command_refuses_emulator_ports() -> None:
    result = subprocess.run(
        [sys.executable, "-c", HARNESS, "sim", "--port", "5555"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "5554-5585" in result.stderr
