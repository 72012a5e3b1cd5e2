"""The local devices of `device-agent script run`: which ones (`--device`, `--sim`, `--devices`)
and, for the run, the daemon's device settings that attach them.

- `browser` (the default): N headless Chromium slots.
- `android:SERIAL`: one phone the adb server already lists in state `device` (the server on
  127.0.0.1:$ANDROID_ADB_SERVER_PORT, else 5037, the port adb itself uses); checked before
  anything starts, and the daemon attaches only that serial, whatever else the server lists.
  That server is left running, as it was found.
- `--sim`: N simulated phones (drivers/sim) behind a private adb server (its own port and keys
  in the run's temp dir), as tests/android and `device-agent sim` run them; the phones and the
  server are stopped when the run ends.

Apart from agent/localrun.py so that the command line can check `--device` without loading the
in-process coordinator and daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from agent.config import DevicesSettings
from drivers.android.config import AndroidSettings
from drivers.browser.config import BrowserSlot

MAX_DEVICES = 16
ADB_DEFAULT_PORT = 5037
ADB_TIMEOUT_S = 15.0
ADB_START_TIMEOUT_S = 30.0
ANDROID_TIMINGS = {
    "debounce_s": 0.1,
    "reconnect_interval_s": 0.5,
    "track_interval_s": 2.0,
    "quarantine_initial_s": 2.0,
}
"""A local run waits for its phone: react within a fraction of a second, not the daemon's pace."""


class LocalDeviceError(Exception):
    """A device choice that cannot be used; str() names the argument and says why."""


@dataclass(frozen=True)
class DeviceChoice:
    """What `--device`/`--sim` asked for: kind "browser", "android" (with `serial`) or "sim"."""

    kind: str
    serial: str | None = None

    @property
    def label(self) -> str:
        return f"android:{self.serial}" if self.kind == "android" else self.kind


BROWSER = DeviceChoice("browser")
SIM = DeviceChoice("sim")


def parse_device(value: str) -> DeviceChoice:
    """`browser` or `android:SERIAL`; ValueError (with the message to show) otherwise."""
    if value == "browser":
        return DeviceChoice("browser")  # not the default object: argparse sees it was given
    kind, sep, serial = value.partition(":")
    if kind == "android" and sep:
        if not serial.strip() or serial != serial.strip():
            raise ValueError(f"{value!r}: give the phone's serial, as `adb devices` lists it")
        return DeviceChoice("android", serial)
    if kind == "android":
        raise ValueError(
            f"{value!r}: say which phone: android:SERIAL (the serial `adb devices` lists), "
            "or --sim for a simulated one"
        )
    raise ValueError(f"unknown device {value!r}: use browser, android:SERIAL or --sim")


@dataclass(frozen=True)
class LocalDevices:
    """The daemon's settings for the run's devices, and how to name them to the author."""

    devices: DevicesSettings
    android: AndroidSettings
    names: list[str]


def check_devices(choice: DeviceChoice, count: int) -> None:
    """LocalDeviceError when the choice cannot be used; blocks (asks the adb server)."""
    if not 1 <= count <= MAX_DEVICES:
        raise LocalDeviceError(f"--devices {count}: give 1 to {MAX_DEVICES}")
    if choice.kind == "android":
        if count != 1:
            raise LocalDeviceError(
                f"--devices {count}: --device {choice.label} is one phone; "
                "use --sim for several simulated ones"
            )
        assert choice.serial is not None
        _check_attached(_adb_port(), choice.serial)


@contextlib.asynccontextmanager
async def local_devices(
    choice: DeviceChoice, count: int, root: Path
) -> AsyncIterator[LocalDevices]:
    """The devices of the run, up for as long as the block runs. LocalDeviceError before
    anything is started when the choice cannot be used."""
    await asyncio.to_thread(check_devices, choice, count)
    if choice.kind == "browser":
        names = [f"local-browser-{i + 1}" for i in range(count)] if count > 1 else ["local-browser"]
        slots = [BrowserSlot(name=name) for name in names]
        yield LocalDevices(DevicesSettings(browser=slots), AndroidSettings(), names)
    elif choice.kind == "android":
        assert choice.serial is not None
        android = AndroidSettings(
            enabled=True, adb_port=_adb_port(), serials=[choice.serial], **ANDROID_TIMINGS
        )
        yield LocalDevices(DevicesSettings(), android, [choice.serial])
    else:
        async with _simulated_phones(count, root / "adb-home") as (port, serials):
            android = AndroidSettings(
                enabled=True, adb_port=port, connect=serials, serials=serials, **ANDROID_TIMINGS
            )
            yield LocalDevices(DevicesSettings(), android, serials)


def _adb_port() -> int:
    value = os.environ.get("ANDROID_ADB_SERVER_PORT", "")
    return int(value) if value.isdigit() and 0 < int(value) < 65536 else ADB_DEFAULT_PORT


def _check_attached(port: int, serial: str) -> None:
    """The serial is listed in state `device` by the adb server on `port`. The server is only
    asked, never started (adbutils would start one on a refused connection)."""
    import adbutils  # type: ignore[import-untyped,unused-ignore]

    where = f"the adb server on 127.0.0.1:{port}"
    try:
        socket.create_connection(("127.0.0.1", port), timeout=ADB_TIMEOUT_S).close()
        listed = {
            d.serial: d.state
            for d in adbutils.AdbClient("127.0.0.1", port, socket_timeout=ADB_TIMEOUT_S).list()
        }
    except (OSError, adbutils.AdbError) as exc:
        raise LocalDeviceError(
            f"--device android:{serial}: cannot reach {where} ({exc}); start it with "
            "`adb start-server` (or set ANDROID_ADB_SERVER_PORT), or use --sim"
        ) from None
    state = listed.get(serial)
    if state == "device":
        return
    attached = ", ".join(f"{s} ({st})" for s, st in sorted(listed.items())) or "none"
    why = "is not attached to" if state is None else f"is {state!r} at"
    raise LocalDeviceError(
        f"--device android:{serial}: the phone {why} {where} (attached: {attached})"
    )


@contextlib.asynccontextmanager
async def _simulated_phones(count: int, adb_home: Path) -> AsyncIterator[tuple[int, list[str]]]:
    """`count` simulated phones and a private adb server (port, the phones' serials); the
    daemon `adb connect`s them itself. Everything is stopped on the way out."""
    from drivers.android.adb import bundled_adb
    from drivers.sim import SimPhone, free_port

    await asyncio.to_thread(adb_home.mkdir, parents=True, exist_ok=True)
    # Its keys (HOME) and its log (TMPDIR) stay in the run's temp dir.
    env = {**os.environ, "HOME": str(adb_home), "TMPDIR": str(adb_home)}
    port = free_port()

    def adb(*args: str, timeout: float = ADB_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [bundled_adb(), "-P", str(port), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    phones = [SimPhone() for _ in range(count)]
    try:
        for phone in phones:
            await phone.start(free_port())
        started = await asyncio.to_thread(adb, "start-server", timeout=ADB_START_TIMEOUT_S)
        if started.returncode != 0:
            raise LocalDeviceError(
                f"--sim: the adb server did not start: {(started.stderr or started.stdout).strip()}"
            )
        yield port, [phone.serial for phone in phones]
    finally:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            await asyncio.to_thread(adb, "kill-server")
        for phone in phones:
            await phone.stop()
