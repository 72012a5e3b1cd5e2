"""The script process: its environment, its temp dir, its output, and how it is ended."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scripts.devstack import poll_until
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
}

SPAWN_AND_HANG = """
    import os, subprocess, time

    def main(agent):
        sleeper = subprocess.Popen(["sleep", "1000"])
        agent.log.info("spawned", pgid=os.getpgid(0), sleeper=sleeper.pid)
        time.sleep(1000)  # outlives its timeout: the group kill is under test
"""


def live_members(pgid: int) -> list[int]:
    """Processes of group `pgid` that are still alive (zombies are dead, awaiting their reaper)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


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
            return {"cwd": os.getcwd(), "home": os.environ["HOME"], "tmp": tempfile.gettempdir(),
                    "script": Path("script.py").exists()}
        """
    )
    assert outcome.data is not None, outcome.error
    cwd = Path(outcome.data["cwd"])
    assert cwd.parent == work_root and cwd.name.startswith("task-task-1-")
    assert outcome.data["home"] == outcome.data["tmp"] == str(cwd)
    assert outcome.data["script"] is True
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


async def test_timeout_kills_the_whole_process_group(
    runner: Runner, caplog: pytest.LogCaptureFixture, work_root: Path
) -> None:
    outcome = await runner.run(SPAWN_AND_HANG, timeout_s=6)
    assert outcome.state == "timeout"
    assert outcome.reason == "timeout"
    assert outcome.error == "script ran past its timeout of 6 s"
    fields = spawned(caplog)
    assert fields is not None, "the script did not start its child before the timeout"
    assert fields["sleeper"] != fields["pgid"]
    await until(lambda: live_members(fields["pgid"]) == [], "the process group to be gone")
    assert leftovers(work_root) == []


async def test_cancelling_run_task_kills_the_group_and_cleans_up(
    runner: Runner, caplog: pytest.LogCaptureFixture, work_root: Path
) -> None:
    task = asyncio.create_task(runner.run(SPAWN_AND_HANG))
    await until(lambda: spawned(caplog) is not None, "the script to start its child")
    fields = spawned(caplog)
    assert fields is not None
    pgid = fields["pgid"]
    assert fields["sleeper"] in live_members(pgid)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: live_members(pgid) == [], "the process group to be gone")
    assert leftovers(work_root) == []


async def test_processes_left_behind_by_a_finished_script_are_ended(
    runner: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = await runner.run(
        """
        import os, subprocess

        def main(agent):
            sleeper = subprocess.Popen(["sleep", "1000"])
            agent.log.info("spawned", pgid=os.getpgid(0), sleeper=sleeper.pid)
            return {"sleeper": sleeper.pid}
        """
    )
    assert outcome.state == "success"
    fields = spawned(caplog)
    assert fields is not None
    await until(lambda: live_members(fields["pgid"]) == [], "the sleeper to end")


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
    runner.settings.python = str(work_root / "no-such-python")
    outcome = await runner.run("async def main(agent):\n    pass\n")
    assert (outcome.state, outcome.reason) == ("failed", "agent_error")
    assert "no-such-python" in (outcome.error or "")
    assert leftovers(work_root) == []


DAEMON = """
import asyncio, sys
from pathlib import Path
from tests.scripthost.conftest import Runner

SCRIPT = '''
import os, time
from pathlib import Path

async def main(agent):
    Path(agent.arguments.job_variables["out"]).write_text(str(os.getpid()))
    time.sleep(1000)  # blocks the host's loop too: only the parent-death signal can end it
'''
asyncio.run(Runner(Path(sys.argv[1])).run(SCRIPT, input={"out": sys.argv[2]}))
"""


async def test_the_script_dies_with_the_daemon(work_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "script-pid"
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DAEMON, str(work_root), str(out), cwd=Path(__file__).parents[2]
    )
    try:
        await until(lambda: out.exists() and out.read_text() != "", "the script to start")
        script_pid = int(out.read_text())
        assert live_members(script_pid) == [script_pid]
    finally:
        daemon.kill()
        await daemon.wait()
    await until(lambda: live_members(script_pid) == [], "the script to die with its daemon")
