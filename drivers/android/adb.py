"""The daemon's own adb server: which binary, which port, starting it, and talking to it.

Everything here blocks (subprocesses and sockets with short timeouts); callers run it in a thread.
adbutils starts `adb start-server` by itself when it cannot reach a server, on the port named by
ANDROID_ADB_SERVER_PORT with the first `adb` on PATH: `AdbHost.start` points that variable at
our port so such a restart can only ever bring back our server, never start a stray one on 5037.
"""

from __future__ import annotations

import logging
import os
import subprocess
from importlib.resources import files

import adbutils  # type: ignore[import-untyped,unused-ignore]

from drivers.android.config import AndroidSettings

log = logging.getLogger(__name__)

SERVER_START_TIMEOUT_S = 30.0
ADB_ERRORS = (adbutils.AdbError, OSError)
"""What a call to the adb server raises when the server or the device is gone (AdbTimeout and
AdbConnectionError are AdbErrors; a socket timeout is an OSError)."""


class AdbUnavailable(Exception):
    """The adb server cannot be started or reached; the message says why."""


def bundled_adb() -> str:
    """The adb binary shipped in adbutils' wheel."""
    return str(files("adbutils") / "binaries" / "adb")


class AdbHost:
    """One adb server on 127.0.0.1:`adb_port`, started and restarted by the daemon."""

    def __init__(self, settings: AndroidSettings) -> None:
        self.settings = settings
        self.adb = settings.adb_path or bundled_adb()
        self.port = settings.adb_port

    def client(self, timeout: float | None = None) -> adbutils.AdbClient:
        """A client whose every socket read gives up after `timeout` (default: call_timeout_s)."""
        return adbutils.AdbClient(
            host="127.0.0.1",
            port=self.port,
            socket_timeout=timeout or self.settings.call_timeout_s,
        )

    def run(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Run the adb binary against our server; raises AdbUnavailable on timeout or OSError."""
        try:
            return subprocess.run(
                [self.adb, "-P", str(self.port), *args],
                capture_output=True,
                text=True,
                timeout=timeout or self.settings.call_timeout_s,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AdbUnavailable(f"adb {' '.join(args)}: {exc}") from exc

    def start(self) -> None:
        """Start the server if it is not running (a no-op when it is)."""
        os.environ["ANDROID_ADB_SERVER_PORT"] = str(self.port)
        if self.alive():
            return
        result = self.run("start-server", timeout=SERVER_START_TIMEOUT_S)
        if result.returncode != 0:
            raise AdbUnavailable(
                f"{self.adb} start-server on port {self.port} failed: "
                f"{(result.stderr or result.stdout).strip()}"
            )
        log.info("adb server %s running on port %d", self.adb, self.port)

    def alive(self) -> bool:
        try:
            self.client(timeout=2.0).server_version()
        except ADB_ERRORS:
            return False
        return True

    def kill(self) -> None:
        """Stop the server (`adb kill-server`); never raises."""
        try:
            self.run("kill-server")
        except AdbUnavailable as exc:
            log.warning("adb kill-server failed: %s", exc)

    def devices(self) -> dict[str, str]:
        """serial -> adb state (device, offline, unauthorized, ...), as `adb devices` lists them."""
        return {info.serial: info.state for info in self.client().list()}

    def connect(self, address: str) -> bool:
        """`adb disconnect` (a stale offline entry makes connect a no-op) then `adb connect`."""
        client = self.client()
        client.disconnect(address)
        answer: str = client.connect(address, timeout=self.settings.call_timeout_s)
        return answer.startswith(("connected to", "already connected"))
