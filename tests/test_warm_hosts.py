"""Script hosts started ahead of their task: a task finds nothing of the one before it on the
same device, its processes are named for it, and a warm host that died is replaced on the spot.

The scheduler runs with a real outbox and the real sandbox (tests/schedharness.py); each test's
second and later tasks on the device take the host started while it was idle.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest

from agent import protocol as p
from agent.hoststart import HostStartError, start_host
from agent.sandbox import probe
from agent.script_settings import ScriptSettings
from agent.sweep import TAG_PLACEHOLDER, tagged_processes
from drivers.base import SessionSettings
from drivers.browser.options import BrowserOptions
from tests.schedharness import Harness, install_under_tmp, poll, running_harness, warm
from tests.taskprocs import task_processes

LOG_NAME = "test.warm_hosts"

LEAVE_TRACES = """
import json, os, subprocess, sys

async def main(agent):
    for where in ("/task/left.txt", "/tmp/left.txt"):
        with open(where, "w") as fh:
            fh.write("left by the task before")
    os.environ["LEFT_BY_BEFORE"] = "1"
    json.left_by_before = True
    sys.modules["left_by_before"] = json
    subprocess.Popen(["sleep", "1000"], start_new_session=True)
    return {"left": True}
"""

LOOK_FOR_TRACES = """
import json, os, sys

async def main(agent):
    others = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                others.append(fh.read().split(b"\\0")[0].decode())
    with open("/proc/self/environ", "rb") as fh:
        environ = [e.decode() for e in fh.read().split(b"\\0") if e]
    return {
        "task_files": sorted(os.listdir("/task")),
        "tmp_files": sorted(os.listdir("/tmp")),
        "env": "LEFT_BY_BEFORE" in os.environ,
        "module": hasattr(json, "left_by_before") or "left_by_before" in sys.modules,
        "others": others,
        "tag": os.environ["DEVICE_AGENT_TASK_ID"],
        "environ_tag": [e for e in environ if e.startswith("DEVICE_AGENT_TASK_ID=")],
    }
"""

SPAWN_AND_WAIT = """
import asyncio, os, subprocess, time

async def main(agent):
    subprocess.Popen(["sleep", "1000"], start_new_session=True)
    if os.fork() == 0:
        time.sleep(1000)
        os._exit(0)
    await agent.actions.tap(1, 1)
    await asyncio.sleep(60)
"""


@pytest.fixture
async def harness(tmp_path: Path) -> object:
    async with running_harness(tmp_path, LOG_NAME) as h:
        h.device.release.set()
        yield h


async def after_a_first_task(h: Harness, caplog: pytest.LogCaptureFixture) -> Harness:
    """The harness once a first (cold) task ran: the device's next host is started ahead."""
    caplog.set_level(logging.DEBUG, logger=LOG_NAME)
    await h.scheduler.on_frame(h.assign("t-1", "async def main(agent):\n    pass\n"))
    await h.drain(1)
    return h


async def test_a_task_finds_nothing_of_the_task_before_it(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOG_NAME)
    h = harness
    await h.scheduler.on_frame(h.assign("t-1", LEAVE_TRACES))
    (first,) = await h.drain(1)
    assert (first["state"], first["data"]) == ("success", {"left": True}), first
    await h.scheduler.on_frame(h.assign("t-2", LOOK_FOR_TRACES))
    (second,) = await h.drain(1)

    assert warm(caplog, "t-2")
    assert second["state"] == "success", second
    seen = second["data"]
    assert seen["task_files"] == ["script.py"]  # its own script, and nothing else
    assert seen["tmp_files"] == install_under_tmp()
    assert (seen["env"], seen["module"]) == (False, False)
    # its pid namespace's init, and nothing else: a fork of the device's zygote (agent/zygote.py),
    # so the interpreter's command line, where a host started cold shows bubblewrap's
    assert seen["others"] == [h.scheduler.isolation.settings.python]
    assert seen["tag"] == "t-2"
    assert seen["environ_tag"] == ["DEVICE_AGENT_TASK_ID=t-2"]
    await poll(lambda: task_processes("t-1") == [], "the first task's processes to be gone")


async def test_a_warm_hosts_processes_are_named_for_its_task(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = await after_a_first_task(harness, caplog)
    await h.scheduler.on_frame(h.assign("t-2", SPAWN_AND_WAIT))
    await poll(lambda: h.device.calls == ["tap"], "the script's first action")
    assert warm(caplog, "t-2")
    # What a restarted daemon would sweep (agent/sweep.py) finds the task's processes: the
    # script host, what it execs and what it forks. (bubblewrap's own two keep the placeholder:
    # they die with the daemon, and the sandbox's processes with them.)
    assert len(task_processes("t-2")) == 3
    await h.scheduler.on_frame(p.Cancel(task_id="t-2", reason="cancelled_by_user"))
    (end,) = await h.drain(1)
    assert (end["task_id"], end["state"]) == ("t-2", "cancelled")
    await poll(lambda: task_processes("t-2") == [], "the task's processes to be gone")


def own_warm_hosts() -> list[int]:
    """The warm hosts this process started (others' tests may run beside it)."""
    mine = []
    for pid in tagged_processes({TAG_PLACEHOLDER}):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
            mine.append(pid)
    return mine


async def test_a_task_whose_warm_host_died_still_runs(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = await after_a_first_task(harness, caplog)
    await poll(lambda: len(own_warm_hosts()) == 1, "the next task's host to be started")
    for pid in own_warm_hosts():
        os.kill(pid, signal.SIGKILL)
    await h.scheduler.on_frame(h.assign("t-2", "async def main(agent):\n    return {'ran': 1}\n"))
    (end,) = await h.drain(1)
    assert (end["state"], end["data"]) == ("success", {"ran": 1}), end
    assert not warm(caplog, "t-2")


async def test_a_host_that_never_gets_ready_is_refused_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agent.hoststart.READY_TIMEOUT_S", 2.0)
    hang = tmp_path / "bin" / "python"
    hang.parent.mkdir()
    hang.write_text("#!/bin/sh\nexec sleep 1000\n")
    hang.chmod(0o755)
    work = tmp_path / "work"
    # Unsandboxed: the sandbox's user could not even read the test's private tmp dir.
    settings = ScriptSettings(work_root=work, python=str(hang), kill_grace_s=5, sandbox="off")
    isolation = probe(settings)
    with pytest.raises(HostStartError, match="not ready within 2 s"):
        await start_host(isolation, logging.getLogger(LOG_NAME))
    assert list(work.iterdir()) == []
    assert own_warm_hosts() == []


async def test_browser_settings_on_a_device_that_is_no_browser_fail_the_task_clearly(
    harness: Harness,
) -> None:
    """The device is given the settings with the session it opens, and the script never runs:
    the task fails with a reason that says why; the next task runs as usual."""
    h = harness
    browser = BrowserOptions(locale="fr-CA")
    script = "async def main(agent):\n    await agent.actions.tap(1, 1)\n"
    await h.scheduler.on_frame(h.assign("t-1", script, browser=browser))
    (end,) = await h.drain(1)
    assert (end["state"], end["reason"]) == ("failed", "unsupported_settings"), end
    assert end["error"] == (
        "the task has browser settings, which only a browser can honour (this device is sim)"
    )
    assert h.device.calls == []
    await h.scheduler.on_frame(h.assign("t-2", "async def main(agent):\n    return {'ran': 1}\n"))
    (plain,) = await h.drain(1)
    assert (plain["state"], plain["data"]) == ("success", {"ran": 1}), plain
    assert h.device.settings == [SessionSettings(job_id="job-1", browser=browser), None]
