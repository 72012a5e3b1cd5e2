"""Hostile scripts through the real stack: a coordinator process, one daemon process with two
browsers and a simulated phone behind its own adb server.

Each attack runs on browser-1 while a normal task runs on browser-2 of the same daemon; the normal
task must succeed. Each test asserts what the script saw, or what became of it, as the host sees
it (the host's /proc, the coordinator's HTTP API, the daemon's log file).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import adbutils
import pytest

from drivers.sim import free_port
from scripts.devstack import (
    Coordinator,
    Daemon,
    add_tasks,
    android_config,
    create_job,
    kill_adb_server,
    script_run,
    wait_device,
    wait_devices,
    wait_terminal,
    wait_until,
)
from tests.pg import fresh_database
from tests.sim.conftest import SimHandle
from tests.taskprocs import task_processes

HOST = "host-1"

NORMAL = """
async def main(agent):
    for _ in range(10):
        await agent.actions.screenshot(540, 960, 80)
    return {"normal": True}
"""

SNOOP = """
import json, os, socket
from pathlib import Path

def attempt(action):
    try:
        return "ok: " + str(action())[:300]
    except Exception as exc:
        return "error: " + type(exc).__name__

def connect(port):
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    return "connected"

def main(agent):
    targets = agent.arguments.job_variables
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    seen = {"uid": os.getuid(), "pids": pids, "cmdlines": []}
    for pid in pids:
        seen["cmdlines"].append(attempt(lambda: Path(f"/proc/{pid}/cmdline").read_bytes()))
    for name, path in targets["files"].items():
        seen[name] = attempt(lambda: Path(path).read_bytes())
    for name, path in targets["dirs"].items():
        seen[name] = attempt(lambda: os.listdir(path))
    for name, port in targets["ports"].items():
        seen[name] = attempt(lambda: connect(port))
    return seen
"""

ESCAPE = """
import os, subprocess, time
from pathlib import Path

def main(agent):
    marker = agent.arguments.job_variables["marker"]
    subprocess.Popen(["sleep", marker], start_new_session=True)
    if os.fork() == 0:  # a double-forked daemon that also drops the task's tag
        os.setsid()
        if os.fork() == 0:
            os.execve("/usr/bin/sleep", ["sleep", marker], {})
        os._exit(0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        sleepers = [p for p in os.listdir("/proc") if p.isdigit()
                    and marker.encode() in Path(f"/proc/{p}/cmdline").read_bytes()]
        if len(sleepers) == 2:
            return {"sleepers": len(sleepers)}
    return {"sleepers": 0}
"""

FORKS = """
import os, time

def main(agent):
    forked = refused = 0
    for _ in range(2000):
        try:
            pid = os.fork()
        except OSError:
            refused += 1
            continue
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        forked += 1
    return {"forked": forked, "refused": refused}
"""

MEMORY = """
def main(agent):
    blocks = []
    for _ in range(64):  # 4 GiB, each page written
        blocks.append(bytearray(b"x") * (64 * 1024 * 1024))
    return {"allocated_mib": 64 * len(blocks)}
"""

FLOOD = """
import sys

def main(agent):
    block = (b"y" * 1023 + b"\\n") * 1024
    for _ in range(1024):  # 1 GiB
        sys.stdout.buffer.write(block)
    sys.stdout.flush()
    return {"printed_mib": 1024}
"""

STUBBORN = """
import signal

async def main(agent):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        pass
"""


class Farm:
    """The daemon under attack, its devices and the host-side facts a script would go after."""

    def __init__(self, root: Path) -> None:
        self.coordinator = Coordinator(
            data_dir=root / "coordinator", port=free_port(), database=fresh_database()
        )
        self.coordinator.data_dir.mkdir()
        self.adb_port = free_port()
        home = root / "home"
        home.mkdir()
        self.adb_env = {"HOME": str(home)}
        self.phone = SimHandle()
        self.phone_port = free_port()
        (root / "daemon").mkdir()
        self.daemon = Daemon(
            dir=root / "daemon",
            coordinator=self.coordinator,
            browsers=[{"name": "browser-1"}, {"name": "browser-2"}],
            extra=android_config(self.adb_port, [f"127.0.0.1:{self.phone_port}"]),
            env=self.adb_env,
        )
        self.browsers: list[str] = []

    def start(self) -> None:
        self.coordinator.start()
        self.phone.start(self.phone_port)
        self.daemon.start()
        with self.coordinator.http() as http:
            wait_device(http, HOST, "available")
            devices = wait_devices(http, HOST, 3)
        self.browsers = sorted(d["remote_device_id"] for d in devices if d["kind"] == "browser")

    def close(self) -> None:
        try:
            self.daemon.stop()
        finally:
            kill_adb_server(self.adb_port, self.adb_env)
            self.phone.close()
            self.coordinator.stop()

    def beside_a_normal_task(
        self, script: str, task_input: dict[str, Any] | None = None, timeout_s: float = 60
    ) -> dict[str, Any]:
        """Run `script` on browser-1 while a normal task runs on browser-2; returns the hostile
        task as the HTTP API shows it at its end, after checking the normal one succeeded."""
        with self.coordinator.http() as http:
            normal_job = create_job(http, NORMAL)
            hostile_job = create_job(http, script, timeout_s=timeout_s)
            (normal,) = add_tasks(
                http, normal_job["id"], {"input": {}, "remote_device_id": self.browser(2)}
            )
            (hostile,) = add_tasks(
                http,
                hostile_job["id"],
                {"input": task_input or {}, "remote_device_id": self.browser(1)},
            )
            done = wait_terminal(http, hostile["id"], deadline_s=timeout_s + 60)
            beside = wait_terminal(http, normal["id"])
        assert (beside["state"], beside["result"]) == ("success", {"normal": True}), beside
        assert task_processes(hostile["id"]) == []
        return done

    def browser(self, n: int) -> str:
        return self.browsers[n - 1]


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    farm = Farm(tmp_path_factory.mktemp("hostile"))
    try:
        farm.start()
        yield farm
    finally:
        farm.close()


def _daemon_pid(farm: Farm) -> int:
    assert farm.daemon.proc is not None and farm.daemon.proc.popen is not None
    return farm.daemon.proc.popen.pid


def _chromium_pids(daemon_pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"chromium" in stat.read_bytes() and _descends(int(stat.parent.name), daemon_pid):
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return found


def _descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return False


def _phone_online(farm: Farm) -> bool:
    client = adbutils.AdbClient(host="127.0.0.1", port=farm.adb_port, socket_timeout=10)
    return any(d.serial == f"127.0.0.1:{farm.phone_port}" for d in client.device_list())


def test_a_script_reaches_no_secret_file_process_or_loopback_service(farm: Farm) -> None:
    daemon_dir = farm.daemon.dir
    daemon_pid = _daemon_pid(farm)
    chromium = _chromium_pids(daemon_pid)
    assert chromium, "the daemon's Chromium is not running"
    assert _phone_online(farm), "the phone is not attached through the daemon's adb server"
    other_dir = daemon_dir / "work" / "task-someone-else"
    other_dir.mkdir()
    (other_dir / "script.py").write_text("SECRET_OF_ANOTHER_OWNER = 1\n")
    targets = {
        "files": {
            "config": str(farm.daemon.config_path),
            "token_file": str(daemon_dir / "token"),
            "state_db": str(daemon_dir / "state.db"),
            "other_script": str(other_dir / "script.py"),
            "daemon_cmdline": f"/proc/{daemon_pid}/cmdline",
            "daemon_environ": f"/proc/{daemon_pid}/environ",
            "daemon_mem": f"/proc/{daemon_pid}/mem",
            "chromium_environ": f"/proc/{chromium[0]}/environ",
            "chromium_mem": f"/proc/{chromium[0]}/mem",
            "coordinator_db": str(farm.coordinator.data_dir / "coordinator.db"),
        },
        "dirs": {"work_root": str(daemon_dir / "work"), "daemon_dir": str(daemon_dir)},
        "ports": {
            "adb_server": farm.adb_port,
            # uiautomator2 3 reaches the phone through the adb server's transport (no host
            # forward exists); the phone's own adb-over-TCP port is the other way in.
            "phone_adb": farm.phone_port,
            "coordinator": farm.coordinator.port,
        },
    }
    done = farm.beside_a_normal_task(SNOOP, targets)
    assert done["state"] == "success", done
    seen = done["result"]
    assert seen["uid"] != 0
    everything = json.dumps(seen)
    assert farm.daemon.token not in everything
    assert "SECRET_OF_ANOTHER_OWNER" not in everything
    for name in [*targets["files"], *targets["dirs"], *targets["ports"]]:
        assert seen[name].startswith("error: "), (name, seen[name])
    # its own pid namespace: bubblewrap's init, the script host, nothing of the host
    assert len(seen["pids"]) <= 3, seen["cmdlines"]
    for cmdline in seen["cmdlines"]:
        assert "chromium" not in cmdline and "agent.cli.main" not in cmdline, cmdline


def test_setsid_children_and_a_double_forked_daemon_end_with_the_task(farm: Farm) -> None:
    marker = f"{4000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6:06d}"
    done = farm.beside_a_normal_task(ESCAPE, {"marker": marker})
    assert (done["state"], done["result"]) == ("success", {"sleepers": 2}), done

    wait_until(lambda: _sleepers(marker) == [], "the script's sleepers to be gone", 15)


def _sleepers(marker: str) -> list[str]:
    """Host pids of `sleep <marker>`, whatever environment or session they run in."""
    wanted = f"sleep\0{marker}\0".encode()
    return [p.parent.name for p in Path("/proc").glob("[0-9]*/cmdline") if _read(p) == wanted]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_a_fork_storm_is_held_at_the_pids_limit(farm: Farm) -> None:
    # A refused fork still copies the process first: 1,750 of them take a while on a busy host.
    done = farm.beside_a_normal_task(FORKS, timeout_s=300)
    assert done["state"] == "success", done
    result = done["result"]
    assert result["forked"] < 256 <= result["forked"] + result["refused"] == 2000, result


def test_allocating_4_gib_ends_the_task_at_its_memory_limit(farm: Farm) -> None:
    done = farm.beside_a_normal_task(MEMORY)
    assert (done["state"], done["failure_reason"]) == ("failed", "memory_limit"), done
    assert "1024 MiB" in done["error"]


def test_printing_1_gib_grows_the_daemon_log_by_at_most_the_cap(farm: Farm) -> None:
    log = farm.daemon.dir / "agent.log"
    before = log.stat().st_size
    done = farm.beside_a_normal_task(FLOOD, timeout_s=240)
    assert (done["state"], done["result"]) == ("success", {"printed_mib": 1024}), done
    assert farm.daemon.proc is not None
    farm.daemon.proc.wait_log("output over the task's limit was dropped")
    # the cap (1 MiB of output) plus each kept line's log prefix and the normal task's lines
    assert log.stat().st_size - before < 2 * 1024 * 1024


def test_ignoring_sigterm_and_spinning_is_killed_at_timeout_and_grace(farm: Farm) -> None:
    done = farm.beside_a_normal_task(STUBBORN, timeout_s=5)
    assert (done["state"], done["failure_reason"]) == ("timeout", "timeout"), done


def test_the_host_is_fine_afterwards(farm: Farm) -> None:
    done = farm.beside_a_normal_task(NORMAL)
    assert (done["state"], done["result"]) == ("success", {"normal": True}), done
    with farm.coordinator.http() as http:
        devices = wait_devices(http, HOST, 3)
    assert all(d["state"] == "available" for d in devices), devices
    assert _phone_online(farm)


LOCAL_ESCAPE = """
import os, subprocess
from pathlib import Path

def main(agent):
    marker = agent.arguments.job_variables["marker"]
    subprocess.Popen(["sleep", marker], start_new_session=True)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execve("/usr/bin/sleep", ["sleep", marker], {})
        os._exit(0)
    return {
        "uid": os.getuid(),
        "tmp": sorted(os.listdir("/tmp")),
        "pids": len([p for p in os.listdir("/proc") if p.isdigit()]),
        "home": os.listdir(os.path.expanduser("~")),
    }
"""


def test_script_run_contains_a_script_the_same_way(tmp_path: Path) -> None:
    script = tmp_path / "escape.py"
    script.write_text(LOCAL_ESCAPE)
    marker = f"{5000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6:06d}"
    done = script_run(
        str(script),
        "--input",
        json.dumps({"marker": marker}),
        "--output",
        str(tmp_path / "out"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "out" / "result.json").read_text())["tasks"][0]["result"]
    assert result["uid"] != 0
    # Not the host's /tmp, where the local coordinator keeps its data; only this checkout's
    # read-only bind when the checkout itself is under /tmp.
    checkout = Path(__file__).resolve().parents[2]
    own = {checkout.parts[2]} if checkout.is_relative_to("/tmp") else set()
    assert set(result["tmp"]) <= own, result["tmp"]
    assert result["home"] == ["script.py"]
    assert result["pids"] <= 6  # bubblewrap's init, the host and its own children
    wait_until(lambda: _sleepers(marker) == [], "the script's sleepers to be gone", 15)
