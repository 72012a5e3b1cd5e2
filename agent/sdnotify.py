"""systemd's notify protocol (sd_notify(3)) for a service started with `Type=notify`.

Speaks datagrams over the AF_UNIX socket in `$NOTIFY_SOCKET` (a path, or an abstract name
written `@name`): `READY=1` once the service is up, `STATUS=...` lines `systemctl status`
shows, `WATCHDOG=1` pings while it is healthy, `STOPPING=1`. With no `$NOTIFY_SOCKET` (not
started by systemd) nothing is sent. Used by the daemon and by the coordinator, which already
builds on `agent`'s protocol modules; no dependency is needed for a few lines of socket code.

The watchdog pinger (`keep_alive`) is a task on the event loop it guards: a loop that is
blocked cannot run it, so systemd stops hearing pings and restarts the service. It also asks
the caller's `healthy()` before each ping, so a loop that runs but whose work is wedged (the
daemon's link loop) is restarted too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping, MutableMapping

MIN_WATCHDOG_S = 2.0
"""The shortest watchdog timeout honoured. The loop may legitimately be busy for a few hundred
milliseconds (a SQLite commit, a large frame); a shorter `WatchdogSec=` would restart a healthy
service, so it is raised to this (with `WATCHDOG_USEC=`) and the log says so."""
STATUS_EVERY_S = 2.0
"""How often the status line is refreshed (and the watchdog pinged, if its half period is not
shorter): a countdown such as "reconnecting in 8 s" stays current."""
_ENV_NAMES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier:
    """Sends notify datagrams to one socket; every method is a no-op when it has none."""

    def __init__(self, address: str | None, log: logging.Logger) -> None:
        self._log = log
        self._address: str | None = None
        self._sock: socket.socket | None = None
        if address:
            # An abstract socket name is given with a leading '@' for its leading NUL byte.
            self._address = "\0" + address[1:] if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> bool:
        """Send `fields` (`KEY=value`) as one datagram; False if not sent. Never raises: systemd
        not listening must not stop the service (the first failure is logged)."""
        if self._sock is None or self._address is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            if not self._failed:
                self._log.warning("cannot notify systemd at %s: %s", self._address, exc)
            self._failed = True
            return False
        self._failed = False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def from_environment(
    log: logging.Logger, env: MutableMapping[str, str] | None = None
) -> tuple[Notifier, float | None]:
    """The notifier of `$NOTIFY_SOCKET` and the watchdog timeout in seconds (None: no
    watchdog, or one meant for another process, as `WATCHDOG_PID` says). The variables are
    taken out of the environment: Chromium, adb and scripts must not inherit a way to speak
    for the service."""
    env = os.environ if env is None else env
    values = {name: env.pop(name, None) for name in _ENV_NAMES}
    return Notifier(values["NOTIFY_SOCKET"], log), _watchdog_s(values, log)


def _watchdog_s(values: Mapping[str, str | None], log: logging.Logger) -> float | None:
    usec, pid = values["WATCHDOG_USEC"], values["WATCHDOG_PID"]
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        seconds = int(usec) / 1e6
    except ValueError:
        log.error("WATCHDOG_USEC=%r is not a number of microseconds: no watchdog pings", usec)
        return None
    return seconds if seconds > 0 else None


async def keep_alive(
    notifier: Notifier,
    watchdog_s: float | None,
    healthy: Callable[[], str | None],
    describe: Callable[[], str],
    log: logging.Logger,
) -> None:
    """Until cancelled: send `STATUS=describe()` whenever it changes and, with a watchdog,
    `WATCHDOG=1` at least every half timeout while `healthy()` returns None (else it returns
    what is wrong, logged once per spell)."""
    if watchdog_s is not None and watchdog_s < MIN_WATCHDOG_S:
        log.error(
            "WatchdogSec=%gs is shorter than the %gs this service needs between pings; "
            "raising it to %gs (WATCHDOG_USEC=%d)",
            watchdog_s,
            MIN_WATCHDOG_S,
            MIN_WATCHDOG_S,
            MIN_WATCHDOG_S * 1e6,
        )
        notifier.send(f"WATCHDOG_USEC={int(MIN_WATCHDOG_S * 1e6)}")
        watchdog_s = MIN_WATCHDOG_S
    tick = min(watchdog_s / 2, STATUS_EVERY_S) if watchdog_s is not None else STATUS_EVERY_S
    shown = ""
    unhealthy: str | None = None
    while True:
        status = describe()
        if status != shown and notifier.send(f"STATUS={status}"):
            shown = status
        if watchdog_s is not None:
            problem = healthy()
            if problem is None:
                notifier.send("WATCHDOG=1")
                if unhealthy is not None:
                    log.info("pinging systemd's watchdog again")
            elif unhealthy is None:
                log.error("not pinging systemd's watchdog: %s", problem)
            unhealthy = problem
        await asyncio.sleep(tick)
