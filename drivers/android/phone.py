"""`Phone`: the blocking calls the driver makes on one Android device, each with a time limit.

It holds the phone's adbutils device (from the daemon's own adb client, whose sockets all have a
read timeout) and its uiautomator2 connection. uiautomator2 calls go through `rpc`, which passes
an explicit HTTP timeout (the library's default is 300 s); adb shell calls through `shell`, which
passes an explicit timeout (adbutils' default is 600 s). Only the phone's worker thread calls it.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Any

import uiautomator2 as u2  # type: ignore[import-untyped,unused-ignore]

from drivers.android.adb import AdbHost

log = logging.getLogger(__name__)


class DeviceAnswerError(Exception):
    """The device answered something the driver cannot use (garbage, the wrong type)."""


@dataclass
class ShellResult:
    output: str
    exit_code: int


class Phone:
    def __init__(self, host: AdbHost, serial: str) -> None:
        self.serial = serial
        self.timeout = host.settings.call_timeout_s
        self._host = host
        self.adb = host.client().device(serial)
        self._u2: u2.Device | None = None
        self.width = 0
        self.height = 0
        self.props: dict[str, str] = {}

    # ---- connection ------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect uiautomator2 (pushing its jar and starting its server when needed) and read
        the phone's properties and screen size."""
        self.adb = self._host.client().device(self.serial)
        self._u2 = u2.connect(self.adb)
        self.props = self._read_props()
        self.refresh_display()

    @property
    def connected(self) -> bool:
        return self._u2 is not None

    @property
    def u2(self) -> u2.Device:
        if self._u2 is None:
            raise DeviceAnswerError("uiautomator2 is not connected")
        return self._u2

    def restart_u2_server(self) -> None:
        """Kill the uiautomator2 server process on the phone and start it again."""
        device = self.u2
        device.stop_uiautomator(wait=False)
        device.start_uiautomator()
        self.refresh_display()

    def _read_props(self) -> dict[str, str]:
        props: dict[str, str] = {}
        for line in self.shell("getprop").output.splitlines():
            name, sep, value = line.partition("]: [")
            if sep and name.startswith("[") and value.endswith("]"):
                props[name[1:]] = value[:-1]
        return props

    def refresh_display(self) -> dict[str, Any]:
        """The uiautomator2 server's deviceInfo; keeps the screen size (rotation changes it)."""
        info = self.rpc("deviceInfo")
        if not isinstance(info, dict):
            raise DeviceAnswerError(f"deviceInfo answered {type(info).__name__}, not an object")
        width, height = info.get("displayWidth"), info.get("displayHeight")
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            raise DeviceAnswerError(f"deviceInfo gave a screen size of {width!r}x{height!r}")
        self.width, self.height = width, height
        return info

    # ---- calls -------------------------------------------------------------------------------

    def rpc(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """One uiautomator2 JSON-RPC call with an explicit HTTP timeout."""
        return self.u2.jsonrpc_call(method, list(params), timeout or self.timeout)

    def shell(self, command: str | list[str], timeout: float | None = None) -> ShellResult:
        result = self.adb.shell2(command, timeout=timeout or self.timeout, rstrip=True)
        return ShellResult(output=str(result.output), exit_code=int(result.returncode))

    def screencap(self) -> bytes:
        """A PNG of the screen through `adb shell screencap -p` (the fallback capture)."""
        data: bytes = self.adb.shell("screencap -p", timeout=self.timeout, encoding=None)
        return data

    def jpeg(self, quality: int) -> bytes | None:
        """uiautomator2's JPEG of the screen; None when the server gave none (it may, on
        secure screens or when the capture failed)."""
        answer = self.rpc("takeScreenshot", 1, quality)
        if not answer:
            return None
        if not isinstance(answer, str):
            raise DeviceAnswerError(f"takeScreenshot answered {type(answer).__name__}")
        try:
            return base64.b64decode(answer, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DeviceAnswerError(f"takeScreenshot answered invalid base64: {exc}") from exc

    def push(self, data: bytes, path: str) -> None:
        self.adb.sync.push(data, path, mode=0o644, check=True)

    def close(self) -> None:
        """Forget the uiautomator2 connection (its server keeps running on the phone)."""
        self._u2 = None
