"""The notify protocol against a real NOTIFY_SOCKET, driven on a real event loop in this process:
status lines, watchdog pings, and no pings while the loop is blocked or the service unhealthy."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from pathlib import Path

import pytest

from agent import sdnotify
from agent.sdnotify import Notifier, from_environment, keep_alive
from scripts.devstack import poll_until
from tests.notifysock import NotifySocket

LOG = logging.getLogger("test_sdnotify")


def pings(messages: list[dict[str, str]]) -> int:
    return sum(m.get("WATCHDOG") == "1" for m in messages)


def all_pings(listener: NotifySocket) -> int:
    listener.drain()
    return pings(listener.messages)


def received(listener: NotifySocket, message: dict[str, str]) -> bool:
    listener.drain()
    return message in listener.messages


async def test_no_pings_while_the_loop_is_blocked_or_unhealthy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short watchdog (pings every 0.2 s) keeps the test short; the real floor is 2 s.
    watchdog_s = 0.4
    monkeypatch.setattr(sdnotify, "MIN_WATCHDOG_S", watchdog_s)
    listener = NotifySocket(tmp_path / "notify")
    notifier = Notifier(listener.address, LOG)
    problem: list[str] = []
    status = ["starting"]
    pinger = asyncio.create_task(
        keep_alive(
            notifier,
            watchdog_s,
            lambda: problem[0] if problem else None,
            lambda: status[0],
            LOG,
        )
    )
    try:
        await poll_until(lambda: all_pings(listener) >= 2, "two pings")
        assert {"STATUS": "starting"} in listener.messages
        status[0] = "connected, 1/2 devices busy"
        await poll_until(lambda: received(listener, {"STATUS": status[0]}), "new status")

        # Blocked: the loop runs nothing for two ping periods, so nothing can be sent.
        listener.drain()
        time.sleep(watchdog_s)  # noqa: ASYNC251 -- blocking the loop is the point
        assert pings(listener.drain()) == 0
        await poll_until(lambda: pings(listener.drain()) >= 1, "pings after the loop unblocks")

        # Running but unhealthy (a wedged link loop): the loop goes on, the pings stop. Each
        # tick sends a changed status first, then pings if healthy: from the log line until a
        # second new status arrives, a whole tick ran, and it sent no ping.
        problem.append("the link's loop is wedged")
        await poll_until(lambda: "not pinging systemd's watchdog" in caplog.text, "the log line")
        listener.drain()
        seen = len(listener.messages)
        for marker in ("tick 1", "tick 2"):
            status[0] = marker
            await poll_until(lambda: received(listener, {"STATUS": status[0]}), marker)
        assert pings(listener.messages[seen:]) == 0
        problem.clear()
        await poll_until(lambda: pings(listener.drain()) >= 1, "pings once healthy again")
    finally:
        pinger.cancel()
        await asyncio.gather(pinger, return_exceptions=True)
        notifier.close()
        listener.close()


def test_from_environment_takes_the_variables_and_honours_watchdog_pid() -> None:
    name = f"@device-agent-test-{uuid.uuid4().hex}"
    listener = NotifySocket(name)
    env = {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    notifier, watchdog_s = from_environment(LOG, env)
    try:
        assert watchdog_s == 30.0
        assert env == {}, "children must not inherit a way to speak for the service"
        assert notifier.send("READY=1", "STATUS=up")
        listener.wait_for(
            lambda m: m == {"READY": "1", "STATUS": "up"}, "READY on the abstract name"
        )
    finally:
        notifier.close()
        listener.close()
    other = {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    assert from_environment(LOG, other)[1] is None, "the watchdog is another process's"
    unset, watchdog_s = from_environment(LOG, {})
    assert not unset.enabled and watchdog_s is None
    assert not unset.send("READY=1")
