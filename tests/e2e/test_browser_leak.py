"""Browser contexts and renderer processes do not pile up when scripts end before their session
has opened (the opening is cancelled; what it made of the session must be closed too).

The slots' start page never answers (a listening socket nobody accepts on), so every session is
still opening, its context and tab made, when its trivial script ends. The daemon runs Chromium
through a wrapper that adds a DevTools port, so that the test can ask Chromium itself how many
browser contexts it holds, and find its renderer processes in /proc.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from scripts.devstack import (
    Coordinator,
    Daemon,
    add_tasks,
    create_job,
    free_port,
    wait_devices,
    wait_until,
)
from tests.e2e.test_faults import states

TRIVIAL = "def main(agent):\n    return {'ok': True}\n"
TASKS = 12
"""Every task meets the cancelled opening (the start page never answers), so a leak of one
context or renderer per task shows many times over."""
DEVICES = 3
SPARE_RENDERERS = 1
"""Chromium keeps one spare renderer process warm for the next tab, made or dropped as it sees
fit: the renderer count may differ from the baseline by that one process, never by more."""


def chromium_wrapper(directory: Path, port: int) -> Path:
    wrapper = directory / "chromium-devtools"
    wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/chromium --remote-debugging-port={port} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@contextmanager
def unanswered_page() -> Iterator[str]:
    """A URL whose server takes connections (the kernel's backlog) and never answers them."""
    with socket.create_server(("127.0.0.1", 0), backlog=4 * TASKS) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/"


def browser_contexts(port: int) -> int:
    """How many browser contexts Chromium holds (the default one is not listed)."""
    version = httpx.get(f"http://127.0.0.1:{port}/json/version", timeout=10).json()
    with connect(version["webSocketDebuggerUrl"], open_timeout=10) as cdp:
        cdp.send(json.dumps({"id": 1, "method": "Target.getBrowserContexts"}))
        reply = json.loads(cdp.recv(timeout=10))
    return len(reply["result"]["browserContextIds"])


def renderers(port: int) -> int:
    """Live renderer processes descending from the Chromium that listens on `port`."""
    parents: dict[int, int] = {}
    roots: set[int] = set()
    kinds: dict[int, bytes] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if stat[0] == "Z":
            continue
        pid = int(proc.name)
        parents[pid] = int(stat[1])
        kinds[pid] = cmdline
        if f"--remote-debugging-port={port}".encode() in cmdline and b"--type=" not in cmdline:
            roots.add(pid)

    def descends(pid: int) -> bool:
        while pid > 1:
            if pid in roots:
                return True
            pid = parents.get(pid, 0)
        return False

    return sum(1 for pid, cmd in kinds.items() if b"--type=renderer" in cmd and descends(pid))


@pytest.mark.timeout(600)
def test_trivial_tasks_leave_no_context_or_renderer(
    coordinator: Coordinator, make_daemon: Any, tmp_path: Path
) -> None:
    port = free_port()
    with unanswered_page() as start_url, coordinator.http() as http:
        daemon: Daemon = make_daemon(
            browsers=[
                {"name": f"browser-{i}", "start_url": start_url} for i in range(1, DEVICES + 1)
            ],
            extra=f'[browser]\nexecutable = "{chromium_wrapper(tmp_path, port)}"',
        )
        daemon.start()
        wait_devices(http, "host-1", DEVICES)
        contexts_before = browser_contexts(port)
        renderers_before = renderers(port)
        job = create_job(http, TRIVIAL, timeout_s=120)
        add_tasks(http, job["id"], *[{"input": {}}] * TASKS)
        tasks = wait_until(
            lambda: (
                t
                if len(t := states(http, job["id"])) == TASKS
                and all(v["state"] == "success" for v in t.values())
                else None
            ),
            f"{TASKS} tasks to succeed",
            480,
            every_s=0.5,
        )
        assert len(tasks) == TASKS
        wait_until(
            lambda: browser_contexts(port) <= contexts_before,
            f"Chromium's browser contexts back to {contexts_before}",
            60,
            every_s=0.5,
        )
        wait_until(
            lambda: renderers(port) <= renderers_before + SPARE_RENDERERS,
            f"Chromium's renderer processes back to {renderers_before} (+{SPARE_RENDERERS} spare)",
            60,
            every_s=0.5,
        )
        print(
            f"{TASKS} tasks: {browser_contexts(port)} context(s) (before: {contexts_before}), "
            f"{renderers(port)} renderer(s) (before: {renderers_before})"
        )
