"""The recovery ladder: what the driver does when a phone stops answering as it should.

Each rung is tried in order until one passes (each ends with a health probe):
1. `retry`: probe again: most glitches are one call (a phone that was just attached, or is back
   after a detach, is instead connected afresh: `connect`);
2. `restart_uiautomator`: stop and start the uiautomator2 server on the phone;
3. `reconnect_adb`: drop and re-make the adb connection (`adb disconnect/connect` for a phone
   over TCP, `adb reconnect` for USB), then connect uiautomator2 again;
4. quarantine: the phone is reported `quarantined` and left alone for a backoff (doubling from
   quarantine_initial_s to quarantine_max_s), then the ladder starts again from the top.
The rung being tried is the device's `health` (in its properties); the phone is not offered for
tasks from rung 2 on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from drivers.android.adb import AdbHost, AdbUnavailable
from drivers.android.phone import Phone

SETTLE_POLL_S = 0.2


def connect(phone: Phone, host: AdbHost) -> None:
    phone.connect()


def retry(phone: Phone, host: AdbHost) -> None:
    if phone.connected:
        phone.refresh_display()
    else:
        phone.connect()


def restart_uiautomator(phone: Phone, host: AdbHost) -> None:
    if phone.connected:
        phone.restart_u2_server()
    else:
        phone.connect()


def reconnect_adb(phone: Phone, host: AdbHost) -> None:
    serial = phone.serial
    phone.close()
    if _is_network(serial):
        host.connect(serial)
    else:
        result = host.run("-s", serial, "reconnect")
        if result.returncode != 0:
            raise AdbUnavailable(f"adb reconnect {serial}: {result.stderr.strip()}")
    deadline = time.monotonic() + host.settings.connect_timeout_s
    while host.devices().get(serial) != "device":
        if time.monotonic() > deadline:
            raise AdbUnavailable(f"{serial} did not come back after an adb reconnect")
        time.sleep(SETTLE_POLL_S)
    phone.connect()


def _is_network(serial: str) -> bool:
    host, _, port = serial.rpartition(":")
    return bool(host) and port.isdigit()


RUNGS: tuple[tuple[str, Callable[[Phone, AdbHost], None]], ...] = (
    ("retry", retry),
    ("restart_uiautomator", restart_uiautomator),
    ("reconnect_adb", reconnect_adb),
)


@dataclass
class Backoff:
    initial_s: float
    max_s: float
    current_s: float = 0.0

    def next(self) -> float:
        self.current_s = (
            self.initial_s if not self.current_s else min(self.max_s, self.current_s * 2)
        )
        return self.current_s

    def reset(self) -> None:
        self.current_s = 0.0
