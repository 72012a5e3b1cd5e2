"""Which phones the adb server sees: a thread that follows `host:track-devices`.

adb sends the whole device list (serial and state) on every change. The tracker reports each list
as it comes; its read times out every `track_interval_s`, after which it simply asks again, so a
missed change costs at most that long. When the adb server dies, adbutils raises instead of
reporting the devices absent: the tracker then reports an empty list (every phone is gone),
starts the server again and re-lists.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable

import adbutils  # type: ignore[import-untyped,unused-ignore]

from drivers.android.adb import ADB_ERRORS, AdbHost, AdbUnavailable

log = logging.getLogger(__name__)

Report = Callable[[dict[str, str]], None]


def parse_device_list(text: str) -> dict[str, str]:
    """`serial<TAB>state` lines to {serial: state}; malformed lines are skipped."""
    devices = {}
    for line in text.splitlines():
        serial, sep, state = line.strip().partition("\t")
        if sep and serial and state:
            devices[serial] = state.strip()
    return devices


class Tracker:
    def __init__(self, host: AdbHost, report: Report) -> None:
        self._host = host
        self._report = report
        self._stopping = threading.Event()
        self._conn: adbutils.AdbConnection | None = None
        self._thread = threading.Thread(target=self._run, name="adb-tracker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop following; the thread ends at once (its socket is shut)."""
        self._stopping.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(OSError, adbutils.AdbError):
                conn.conn.shutdown(socket.SHUT_RDWR)

    def _run(self) -> None:
        interval = self._host.settings.track_interval_s
        server_down = False
        while not self._stopping.is_set():
            try:
                self._host.start()
                if server_down:
                    log.info("adb server is back")
                    server_down = False
                self._follow(interval)
            except adbutils.AdbTimeout:
                continue
            except (AdbUnavailable, *ADB_ERRORS) as exc:
                if self._stopping.is_set():
                    return
                if not server_down:
                    log.warning("adb server lost (%s): every phone is gone until it is back", exc)
                    server_down = True
                self._report({})
                self._stopping.wait(min(interval, 1.0))

    def _follow(self, interval: float) -> None:
        conn = self._host.client(timeout=interval).make_connection()
        self._conn = conn
        try:
            conn.send_command("host:track-devices")
            conn.check_okay()
            while not self._stopping.is_set():
                self._report(parse_device_list(conn.read_string_block()))
        finally:
            self._conn = None
            conn.close()
