"""The script process: its environment, its temp dir, its output, and how it is ended."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from scripts.devstack import poll_until
from tests import taskprocs
from tests.scripthost.conftest import Runner

DEADLINE_S = 30.0

ALLOWED_ENV = {
    "DEVICE_AGENT_TASK_ID",
    "PATH",
    "LANG",
    "LC_ALL",
    "HOME",
    "TMPDIR",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PYDANTIC_DISABLE_PLUGINS",
    "PWD",  # bubblewrap's --chdir sets it
}

SPAWN_AND_HANG = """
    import os, subprocess, time

    def main(agent):
        sleeper = subprocess.Popen(["sleep", "1000"], start_new_session=True)
        agent.log.info("spawned", pgid=os.getpgid(0), sleeper=sleeper.pid)
        time.sleep(1000)  # outlives its timeout: the kill of every process is under test
"""


def task_processes(task_id: str = "task-1") -> list[int]:
    return taskprocs.task_processes(task_id)


async def until(condition: Callable[[], bool], what: str) -> None:
    await poll_until(condition, what, DEADLINE_S)


def spawned(caplog: pytest.LogCaptureFixture) -> dict[str, Any] | None:
    """The fields of the script's `spawned` log line: its process group and its child's pid."""
    for record in caplog.records:
        if record.getMessage().startswith("task task-1: spawned"):
            fields: dict[str, Any] = record.__dict__["script_fields"]
            return fields
    return None


def leftovers(work_root: Path) -> list[Path]:
    return list(work_root.iterdir())


async def test_environment_is_built_from_scratch(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVICE_AGENT_SECRET", "hunter2")
    outcome = await runner.run("import os\n\ndef main(agent):\n    return dict(os.environ)\n")
    assert outcome.data is not None, outcome.error
    assert set(outcome.data) == ALLOWED_ENV
    assert "hunter2" not in str(outcome.data)
    assert outcome.data["PYTHONUNBUFFERED"] == "1"


async def test_cwd_home_and_tmpdir_are_a_task_dir_removed_afterwards(
    runner: Runner, work_root: Path
) -> None:
    outcome = await runner.run(
        """
        import os, tempfile
        from pathlib import Path

        def main(agent):
            Path("left-behind.txt").write_text("x")
            Path("/tmp/private").write_text("x")
            st = os.stat(".")
            return {"cwd": os.getcwd(), "home": os.environ["HOME"], "tmp": tempfile.gettempdir(),
                    "script": Path("script.py").exists(), "mode": st.st_mode & 0o777,
                    "owner": st.st_uid, "uid": os.getuid()}
        """
    )
    assert outcome.data is not None, outcome.error
    assert outcome.data["cwd"] == outcome.data["home"] == "/task"
    assert outcome.data["tmp"] == "/tmp"
    assert outcome.data["script"] is True
    assert outcome.data["mode"] == 0o700
    assert outcome.data["owner"] == outcome.data["uid"] != 0
    assert leftovers(work_root) == []  # the task dir (cwd) with it


async def test_print_lands_in_the_task_log(
    runner: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = await runner.run(
        """
        import sys

        async def main(agent):
            print("hello from the script")
            print("to stderr", file=sys.stderr)
        """
    )
    assert outcome.state == "success"
    assert "task task-1 stdout: hello from the script" in caplog.messages
    assert "task task-1 stderr: to stderr" in caplog.messages


async def test_timeout_kills_every_process_of_the_task(
    runner: Runner, caplog: pytest.LogCaptureFixture, work_root: Path
) -> None:
    running = asyncio.create_task(runner.run(SPAWN_AND_HANG, timeout_s=6))
    await until(lambda: spawned(caplog) is not None, "the script to start its child")
    assert len(task_processes()) >= 2  # the script host and its sleeper in its own session
    outcome = await running
    assert outcome.state == "timeout"
    assert outcome.reason == "timeout"
    assert outcome.error == "script ran past its timeout of 6 s"
    assert task_processes() == []
    assert leftovers(work_root) == []


async def test_cancelling_run_task_kills_every_process_and_cleans_up(
    runner: Runner, caplog: pytest.LogCaptureFixture, work_root: Path
) -> None:
    task = asyncio.create_task(runner.run(SPAWN_AND_HANG))
    await until(lambda: spawned(caplog) is not None, "the script to start its child")
    assert len(task_processes()) >= 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task_processes() == []
    assert leftovers(work_root) == []


async def test_processes_left_behind_by_a_finished_script_are_ended(
    runner: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = await runner.run(
        """
        import os, subprocess

        def main(agent):
            sleeper = subprocess.Popen(["sleep", "1000"], start_new_session=True)
            agent.log.info("spawned", pgid=os.getpgid(0), sleeper=sleeper.pid)
            return {"sleeper": sleeper.pid}
        """
    )
    assert outcome.state == "success"
    assert spawned(caplog) is not None
    assert task_processes() == []


async def test_the_script_host_imports_no_daemon_modules(runner: Runner) -> None:
    outcome = await runner.run(
        """
        import sys

        async def main(agent):
            return {"loaded": sorted(m for m in sys.modules
                                     if m.startswith(("agent.", "drivers", "websockets")))}
        """
    )
    assert outcome.data is not None, outcome.error
    loaded = set(outcome.data["loaded"])
    assert not {"agent.protocol", "agent.runner", "agent.hostapi", "drivers"} & loaded
    assert "agent.sdk" in loaded


async def test_an_internal_failure_is_an_agent_error(runner: Runner, work_root: Path) -> None:
    runner.configure(python=str(work_root / "no-such-python"))
    outcome = await runner.run("async def main(agent):\n    pass\n")
    assert (outcome.state, outcome.reason) == ("failed", "agent_error")
    assert "no-such-python" in (outcome.error or "")
    assert leftovers(work_root) == []


DAEMON = """
import asyncio, sys
from pathlib import Path
from tests.scripthost.conftest import Runner

SCRIPT = '''
import subprocess, time

async def main(agent):
    subprocess.Popen(["sleep", "1000"], start_new_session=True)
    time.sleep(1000)  # blocks the host's loop too: only the parent-death signal can end it
'''
from agent.sandbox import probe
from agent.script_settings import ScriptSettings

runner = Runner(Path(sys.argv[1]), probe(ScriptSettings()))
asyncio.run(runner.run(SCRIPT, task_id=sys.argv[2]))
"""


async def test_the_script_dies_with_the_daemon(work_root: Path) -> None:
    task_id = f"dies-with-daemon-{uuid.uuid4().hex[:8]}"
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DAEMON, str(work_root), task_id, cwd=Path(__file__).parents[2]
    )
    try:
        await until(lambda: len(task_processes(task_id)) >= 2, "the script and its child")
    finally:
        daemon.kill()
        await daemon.wait()
    await until(lambda: task_processes(task_id) == [], "the script to die with its daemon")


async def test_unsandboxed_scripts_still_get_their_cgroup(
    runner: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    """`sandbox = "off"` (trusted scripts) keeps the limits and the kill of every process."""
    runner.configure(sandbox="off", pids_max=32)
    runner.isolation = replace(runner.isolation, bwrap=None)
    outcome = await runner.run(
        """
        import os, subprocess

        def main(agent):
            subprocess.Popen(["sleep", "1000"], start_new_session=True)
            agent.log.info("spawned", pgid=os.getpgid(0))
            refused = 0
            for _ in range(64):
                try:
                    pid = os.fork()
                except OSError:
                    refused += 1
                    continue
                if pid == 0:
                    os.execv("/usr/bin/sleep", ["sleep", "1000"])
            return {"uid": os.getuid(), "refused": refused, "cwd": os.getcwd()}
        """
    )
    assert outcome.data is not None, outcome.error
    assert outcome.data["uid"] == os.getuid()  # the daemon's own: no sandbox
    assert outcome.data["cwd"] != "/task"
    assert outcome.data["refused"] > 0
    assert spawned(caplog) is not None
    assert task_processes() == []
