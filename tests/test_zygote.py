"""Script hosts forked from a device's zygote (agent/zygote.py): a task finds nothing of the task
before it on the same device and can neither see nor trace the zygote; a zygote killed while the
device is idle costs the next task a cold start, never the task, and is replaced.

The scheduler runs with a real outbox and the real sandbox (tests/schedharness.py), as in
tests/test_warm_hosts.py, whose checks hold for forked hosts too.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest

from tests.schedharness import Harness, install_under_tmp, poll, running_harness, warm
from tests.taskprocs import task_processes

LOG_NAME = "test.zygote"

LEAVE_TRACES = """
import json, os, subprocess, sys

async def main(agent):
    for where in ("/task/left.txt", "/tmp/left.txt", "/dev/shm/left.txt"):
        with open(where, "w") as fh:
            fh.write("left by the task before")
    os.environ["LEFT_BY_BEFORE"] = "1"
    json.left_by_before = True
    subprocess.Popen(["sleep", "1000"], start_new_session=True)
    return {"init": open("/proc/1/cmdline", "rb").read().split(b"\\0")[0].decode()}
"""

LOOK_AROUND = """
import ctypes, json, os, socket

def attempt(action):
    try:
        return "ok: " + str(action())[:200]
    except Exception as exc:
        return "error: " + type(exc).__name__

def loopback():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        socket.create_connection(server.getsockname(), timeout=5).close()
    return "up"

async def main(agent):
    libc = ctypes.CDLL(None, use_errno=True)
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    attached = libc.ptrace(16, 1, None, None)  # PTRACE_ATTACH to its namespace's init
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {
        "task": sorted(os.listdir("/task")),
        "tmp": sorted(os.listdir("/tmp")),
        "shm": sorted(os.listdir("/dev/shm")),
        "env": "LEFT_BY_BEFORE" in os.environ,
        "module": hasattr(json, "left_by_before"),
        "pids": pids,
        "ptrace_init": os.strerror(ctypes.get_errno()) if attached else "attached",
        "init_environ": attempt(lambda: open("/proc/1/environ", "rb").read()),
        "write_root": attempt(lambda: open("/left.txt", "w")),
        "write_dev": attempt(lambda: open("/dev/left.txt", "w")),
        "caps": status["CapEff"].strip() + " " + status["CapBnd"].strip(),
        "no_new_privs": status["NoNewPrivs"].strip(),
        "uid": os.getuid(),
        "loopback": attempt(loopback),
        "interfaces": open("/proc/net/dev").read().count(":"),
    }
"""


@pytest.fixture
async def harness(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> object:
    caplog.set_level(logging.DEBUG, logger=LOG_NAME)
    async with running_harness(tmp_path, LOG_NAME) as h:
        h.device.release.set()
        yield h


def logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


async def test_a_forked_task_finds_nothing_of_the_one_before_and_cannot_reach_the_zygote(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    python = h.scheduler.isolation.settings.python
    await h.scheduler.on_frame(h.assign("t-1", "async def main(agent):\n    pass\n"))
    await h.drain(1)
    await h.scheduler.on_frame(h.assign("t-2", LEAVE_TRACES))
    (first,) = await h.drain(1)
    assert (first["state"], first["data"]) == ("success", {"init": python}), first
    await h.scheduler.on_frame(h.assign("t-3", LOOK_AROUND))
    (second,) = await h.drain(1)

    assert warm(caplog, "t-2") and warm(caplog, "t-3")
    assert second["state"] == "success", second
    seen = second["data"]
    fresh = (["script.py"], install_under_tmp(), [])
    assert (seen["task"], seen["tmp"], seen["shm"]) == fresh, seen
    assert (seen["env"], seen["module"]) == (False, False)
    # its namespace's init (a fork of the zygote) and itself: not the zygote, not the task before
    assert seen["pids"] == [1, 2], seen
    assert seen["ptrace_init"] == "Operation not permitted"
    assert seen["init_environ"] == "error: PermissionError"
    assert seen["write_root"] == seen["write_dev"] == "error: OSError", seen
    assert seen["caps"] == "0000000000000000 0000000000000000"
    assert (seen["no_new_privs"], seen["uid"]) == ("1", 65534)
    assert (seen["loopback"], seen["interfaces"]) == ("ok: up", 1)  # its own network: lo only
    await poll(lambda: task_processes("t-2") == [], "the task before's processes to be gone")


def own_zygotes() -> list[int]:
    """Host pids of the zygotes this test's daemon started (others' tests may run beside it):
    the interpreter bubblewrap started, not the forks of it."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
            pid = int(cmdline.parent.name)
            ours = argv[1:3] == [b"-m", b"agent.scripthost.zygote"] and _descends(pid, os.getpid())
            if ours and _command(_parent(pid)).endswith(b"bwrap"):
                found.append(pid)
        except (OSError, ValueError, IndexError):
            continue
    return found


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _command(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]


def _descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        pid = _parent(pid)
    return False


async def test_a_zygote_killed_while_idle_costs_the_next_task_a_cold_start_only(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    await h.scheduler.on_frame(h.assign("t-1", "async def main(agent):\n    pass\n"))
    await h.drain(1)
    ahead = h.scheduler.slots["dev-1"].ahead
    assert ahead is not None
    await poll(lambda: not ahead.preparing, "the next task's host")
    (zygote,) = own_zygotes()
    os.kill(zygote, signal.SIGKILL)
    await poll(lambda: logged(caplog, "exited: its forks went with it"), "the zygote's death")

    show_init = "async def main(agent):\n    return {'init': open('/proc/1/cmdline').read()}\n"
    await h.scheduler.on_frame(h.assign("t-2", show_init))
    (cold,) = await h.drain(1)
    assert cold["state"] == "success", cold
    assert not warm(caplog, "t-2")
    assert cold["data"]["init"].startswith("/usr/bin/bwrap")  # started on its own

    await h.scheduler.on_frame(h.assign("t-3", show_init))
    (forked,) = await h.drain(1)
    assert warm(caplog, "t-3") and logged(caplog, "the device's zygote died: starting a new one")
    python = h.scheduler.isolation.settings.python
    assert forked["data"]["init"].startswith(python), forked  # forked from a new zygote
    assert len(own_zygotes()) == 1 and own_zygotes() != [zygote]
