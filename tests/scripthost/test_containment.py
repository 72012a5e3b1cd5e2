"""What a script can reach, in both ways the sandbox makes an unprivileged user: a daemon with
its capabilities switches to the configured account (setpriv), any other daemon gets a user
namespace where the script is uid 65534 mapped to the daemon's own uid. Here the user namespace
maps to root, the strongest case there is: the namespaces alone must keep everything out."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from tests.scripthost.conftest import Runner

SNOOP = """
import os, socket
from pathlib import Path

def attempt(action):
    try:
        return "ok: " + str(action())[:200]
    except Exception as exc:
        return "error: " + type(exc).__name__

def main(agent):
    targets = agent.arguments.job_variables
    seen = {n: attempt(lambda: Path(p).read_bytes()) for n, p in targets["files"].items()}
    seen["other_task"] = attempt(lambda: os.listdir(targets["other_task"]))
    seen["host_port"] = attempt(
        lambda: socket.create_connection(("127.0.0.1", targets["port"]), timeout=5).close())
    seen["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    seen["write_usr"] = attempt(lambda: Path("/usr/owned").write_text("x"))
    seen["uid"] = os.getuid()
    return seen
"""


@pytest.mark.parametrize("privileged", [True, False], ids=["setpriv", "userns"])
async def test_nothing_of_the_daemon_is_reachable(
    runner: Runner, tmp_path: Path, privileged: bool
) -> None:
    runner.isolation = replace(runner.isolation, as_root=privileged)
    secret = tmp_path / "token"
    secret.write_text("THE-HOST-TOKEN")
    secret.chmod(0o600)
    other = tmp_path / "work" / "task-of-another-owner"
    other.mkdir(parents=True)
    (other / "script.py").write_text("ANOTHER_OWNERS_SCRIPT = 1\n")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        targets = {
            "files": {
                "token": str(secret),
                "other_script": str(other / "script.py"),
                "daemon_environ": f"/proc/{os.getpid()}/environ",
                "daemon_mem": f"/proc/{os.getpid()}/mem",
                "passwd_shadow": "/etc/shadow",
            },
            "other_task": str(other),
            "port": listener.getsockname()[1],
        }
        outcome = await runner.run(SNOOP, input=targets)
    assert outcome.data is not None, outcome.error
    seen = outcome.data
    assert "THE-HOST-TOKEN" not in json.dumps(seen)
    assert "ANOTHER_OWNERS_SCRIPT" not in json.dumps(seen)
    for name in [*targets["files"], "other_task", "host_port", "write_usr"]:
        assert seen[name].startswith("error: "), (name, seen[name])
    assert seen["pids"] == [1, 2]  # bubblewrap's init and the script host, nothing of the host
    assert seen["uid"] == 65534
