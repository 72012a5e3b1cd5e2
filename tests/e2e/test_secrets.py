"""Secrets and files at rest, on a real daemon and coordinator: what a hostile script running on
the host can reach of the daemon's process, environment and files."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.devstack import (
    Coordinator,
    Daemon,
    add_tasks,
    android_config,
    create_job,
    free_port,
    kill_adb_server,
    wait_devices,
    wait_terminal,
    wait_until,
)

NO_CAPABILITIES = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"]
"""Run as root without any capability: the daemon's uid and nothing more, as a script that
runs under the daemon's user. (Any other uid is refused /proc/<pid>/environ and mem anyway,
dumpable or not, so a different uid could not tell a dumpable daemon from one that is not.)"""

PROBE = """
import json, sys
pid = sys.argv[1]

def readable(name):
    try:
        with open(f"/proc/{pid}/{name}", "rb") as fh:
            if name == "mem":
                with open(f"/proc/{pid}/maps") as maps:
                    fh.seek(int(maps.readline().split("-")[0], 16))
                return len(fh.read(1)) == 1
            return len(fh.read()) > 0
    except OSError:
        return False

print(json.dumps({"environ": readable("environ"), "mem": readable("mem")}))
"""


def probe(pid: int) -> dict[str, bool]:
    """What a capability-less root process can read of /proc/<pid>/environ and mem."""
    done = subprocess.run(
        [*NO_CAPABILITIES, sys.executable, "-c", PROBE, str(pid)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, bool] = json.loads(done.stdout)
    return result


@pytest.fixture
def control() -> Iterator[int]:
    """A dumpable process with the same credentials as the daemon under test."""
    proc = subprocess.Popen(
        [*NO_CAPABILITIES, sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    yield proc.pid
    proc.kill()
    proc.wait(10)


def daemon_pid(daemon: Daemon) -> int:
    assert daemon.proc is not None and daemon.proc.popen is not None
    pid: int = daemon.proc.popen.pid
    return pid


def test_the_daemon_is_not_dumpable(make_daemon: Any, control: int) -> None:
    # A root without capabilities can make no user namespace that maps root: it cannot sandbox
    # scripts, and says so; this test is about the daemon's own memory, so it runs without.
    daemon = make_daemon(browsers=[], argv_prefix=NO_CAPABILITIES, extra='sandbox = "off"')
    daemon.start()
    daemon.proc.wait_log("connected to the coordinator")
    assert probe(control) == {"environ": True, "mem": True}
    assert probe(daemon_pid(daemon)) == {"environ": False, "mem": False}


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process now."""
    found: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        found[int(entry.name)] = (int(stat_fields[1]), cmdline)
    return found


def _descendants(root: int, processes: dict[int, tuple[int, str]]) -> dict[int, str]:
    found: dict[int, str] = {}
    parents = {root}
    while parents:
        children = {pid for pid, (ppid, _) in processes.items() if ppid in parents}
        found.update({pid: processes[pid][1] for pid in children})
        parents = children
    return found


ENV_SCRIPT = "import os\n\ndef main(agent):\n    return {'environ': dict(os.environ)}\n"


def test_the_token_variable_reaches_no_process(
    coordinator: Coordinator, make_daemon: Any, tmp_path: Path
) -> None:
    token = coordinator.cli("token", "create", "host-1")
    adb_port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home)}
    daemon = make_daemon(
        token=token,
        env={**env, "DEVICE_AGENT__COORDINATOR__TOKEN": token},
        extra=android_config(adb_port, []),
    )
    try:
        daemon.start()
        with coordinator.http() as http:
            wait_devices(http, "host-1", 1)  # the browser: Playwright's driver and Chromium run
            job = create_job(http, ENV_SCRIPT)
            (task,) = add_tasks(http, job["id"], {"input": {}})
            done = wait_terminal(http, task["id"])
        # adb's server detaches from the daemon: found by the port it serves.
        adb_servers = wait_until(
            lambda: [
                pid
                for pid, (_, cmdline) in _processes().items()
                if "fork-server" in cmdline and f"tcp:{adb_port}" in cmdline
            ],
            "the daemon's adb server",
        )
        pid = daemon_pid(daemon)
        children = _descendants(pid, _processes())
        assert any("playwright" in c for c in children.values()), children
        assert any("chrom" in c for c in children.values()), children
        read: list[str] = []
        for target in [pid, *children, *adb_servers]:
            try:
                environ = Path(f"/proc/{target}/environ").read_bytes()
            except (ProcessLookupError, FileNotFoundError):
                continue  # a Chromium helper that ended (or is a zombie) since it was listed
            read.append(children.get(target, "the daemon or adb"))
            assert b"DEVICE_AGENT__" not in environ, (target, children.get(target))
            assert token.encode() not in environ, (target, children.get(target))
        assert any("playwright" in c for c in read), read
        assert any("chrom" in c for c in read), read
    finally:
        daemon.stop()
        kill_adb_server(adb_port, env)
    assert done["state"] == "success", done
    script_env = done["result"]["environ"]
    assert not [name for name in script_env if name.startswith("DEVICE_AGENT__")]
    assert token not in json.dumps(script_env)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _sqlite_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


FILE_SCRIPT = (
    "def main(agent):\n"
    "    agent.utils.job.submit_task(\n"
    "        'success', {}, True, [agent.files.from_bytes('proof', 'txt', b'private')]\n"
    "    )\n"
)


def test_state_database_and_stored_files_are_private(
    coordinator: Coordinator, make_daemon: Any
) -> None:
    daemon = make_daemon()
    state_file = daemon.dir / "state.db"
    # On PostgreSQL (tests/pg.py) the coordinator's data dir holds its files but no database.
    databases = [] if coordinator.database else [coordinator.data_dir / "coordinator.db"]
    # Files made open to others (by an older version, another umask) are made private at open.
    state_file.touch(mode=0o644)
    coordinator.stop()
    coordinator.data_dir.chmod(0o755)
    for database in databases:
        database.chmod(0o644)
    coordinator.start()
    daemon.start()
    with coordinator.http() as http:
        wait_devices(http, "host-1", 1)
        job = create_job(http, FILE_SCRIPT)
        (task,) = add_tasks(http, job["id"], {"input": {}})
        done = wait_terminal(http, task["id"])
        assert done["state"] == "success", done
        sqlite = [f for path in (state_file, *databases) for f in _sqlite_files(path)]
        modes = {str(path): _mode(path) for path in sqlite}
    blobs = [path for path in (coordinator.data_dir / "files").rglob("*") if path.is_file()]
    assert len(blobs) == 1
    assert modes == dict.fromkeys(modes, 0o600)
    assert _mode(blobs[0]) == 0o600
    for directory in (coordinator.data_dir, coordinator.data_dir / "files", blobs[0].parent):
        assert _mode(directory) == 0o700, directory
