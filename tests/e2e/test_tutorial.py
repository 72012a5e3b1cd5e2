"""docs/tutorial.md, followed command by command: its ```sh blocks, in order, in one bash.

The only change made to them is the coordinator's port (8765 in the doc, a free one here). The
doc cannot drift from what is tested: the commands are read from it, not copied.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts.devstack import free_port, wait_until
from tests.e2e.test_script_run import JPEG, _still_running

DOC = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)
DOC_PORT = "8765"


def tutorial_commands(port: int) -> str:
    blocks = SH_BLOCK.findall(DOC.read_text())
    assert len(blocks) >= 5, "docs/tutorial.md lost its ```sh blocks"
    return "\n".join(blocks).replace(DOC_PORT, str(port))


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    commands = tutorial_commands(free_port())
    # Short: Chromium puts a Unix socket (at most 107 bytes of path) under it.
    tmpdir = Path(tempfile.mkdtemp(prefix="tut-", dir="/tmp"))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "TMPDIR": str(tmpdir),
    }
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", commands],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        _stop_group(proc, tmpdir)
    try:
        folder = tmp_path / "hello-agent"
        logs = "".join(
            f"\n--- {name}:\n{(folder / name).read_text()[-3000:]}"
            for name in ("coordinator.log", "daemon.log")
            if (folder / name).exists()
        )
        assert proc.returncode == 0, out + logs
        # Step 2, locally: the run as it happened, the file where it says.
        assert "print: the page says: Hello, Ada!" in out
        assert "log info: greeted name='Ada'" in out
        assert "saved: script-run-output/hello.jpg" in out
        assert (folder / "script-run-output" / "hello.jpg").read_bytes()[:2] == JPEG
        # Step 3, through the coordinator: the same result, the screenshot fetched.
        assert '"state": "success"' in out and '"greeting": "Hello, Ada!"' in out
        assert (folder / "hello.jpg").read_bytes()[:2] == JPEG
        assert "the page says: Hello, Ada!" in (folder / "daemon.log").read_text()
        assert not _still_running(tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _stop_group(proc: subprocess.Popen[str], tmpdir: Path) -> None:
    """What a failed step left in the background (the coordinator, the daemon) is stopped
    the tutorial's way (SIGTERM), and killed if it does not end."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        wait_until(lambda: not _still_running(tmpdir), "the tutorial's processes to end", 60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
