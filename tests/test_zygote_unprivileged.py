"""The zygote path of a daemon that is not root, as production runs it (`User=device-agent`,
systemd delegating its cgroup subtree): tasks forked from the device's zygote run, each is
isolated, and nothing of them is left.

The test (root, as the suite runs) gives an unused uid what systemd gives the service: a state
dir of its own, a cgroup subtree of its own in each v1 hierarchy the daemon uses (memory, pids,
cpu, chowned to it as `Delegate=yes` does on v2) that it starts in, no capability, an empty
bounding set and no_new_privs. It then runs this module as that uid, which drives the scheduler
(tests/schedharness.py: real outbox, real sandbox) through three tasks on one device, the second
and third forked from its zygote, and prints what they returned and what the daemon logged.
Where the interpreter or the checkout lies under a folder closed to other users (/root, 0700, on
the test machines), the uid's process sees it through a mount namespace of its own: a service
account must be able to run its interpreter, as production's /opt/device-agent allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from agent.sandbox.cgroup import find_tree
from agent.scripthost.syscalls import CLONE_NEWNS, MS_BIND, MS_PRIVATE, MS_REC, mount, unshare
from tests.schedharness import install_under_tmp, running_harness
from tests.test_zygote import LEAVE_TRACES, LOOK_AROUND

PROJECT = Path(__file__).resolve().parents[1]
LOG_NAME = "test.zygote_unprivileged"
RUN_TIMEOUT_S = 180.0
LOOK_AROUND_AND_AT_INIT = (
    LOOK_AROUND
    + """
look_around = main

async def main(agent):
    seen = await look_around(agent)
    seen["init"] = open("/proc/1/cmdline", "rb").read().split(b"\\0")[0].decode()
    return seen
"""
)
# Unique to this file: other files look for leftover processes by their own fixed ids.
TASKS = (
    ("unpriv-1", "async def main(agent):\n    pass\n"),
    ("unpriv-2", LEAVE_TRACES),
    ("unpriv-3", LOOK_AROUND_AND_AT_INIT),
)


def test_an_unprivileged_daemon_forks_isolated_tasks_from_its_zygote_and_leaves_nothing() -> None:
    uid = _unused_uid()
    needed = _needed_paths()
    closed = [p for p in needed if p.stat().st_mode & 0o005 != 0o005]
    assert not closed, f"other users may not read {closed}: the unprivileged daemon could not run"
    with _own_dir(uid) as root, _delegated_cgroups(uid) as cgroups:
        done = subprocess.run(
            [
                shutil.which("setpriv") or "setpriv",
                f"--reuid={uid}",
                f"--regid={uid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                sys.executable,
                "-m",
                "tests.test_zygote_unprivileged",
                str(root),
            ],
            cwd=PROJECT,
            env={
                "PATH": "/usr/bin:/bin",
                "HOME": str(root),
                "LANG": "C.UTF-8",
                "PYTHONDONTWRITEBYTECODE": "1",
            },
            capture_output=True,
            timeout=RUN_TIMEOUT_S,
            preexec_fn=_as_the_service(cgroups, needed),
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
        run = json.loads(done.stdout.decode().splitlines()[-1])
        outcomes = {o["task_id"]: o for o in run["outcomes"]}
        assert [outcomes[t]["state"] for t, _ in TASKS] == ["success"] * 3, outcomes
        ahead = "runs in the script host started ahead"
        assert [t for t, _ in TASKS if f"task {t}: {ahead}" in run["log"]] == [
            "unpriv-2",
            "unpriv-3",
        ], run["log"]
        # Their init is a fork of the zygote; a host started on its own has bubblewrap's.
        assert outcomes["unpriv-2"]["data"] == {"init": run["python"]}
        seen = outcomes["unpriv-3"]["data"]
        assert seen["init"] == run["python"]
        assert (seen["task"], seen["tmp"], seen["shm"]) == (["script.py"], install_under_tmp(), [])
        assert (seen["env"], seen["module"], seen["pids"]) == (False, False, [1, 2]), seen
        assert seen["ptrace_init"] == "Operation not permitted"
        assert seen["init_environ"] == "error: PermissionError"
        assert seen["write_root"] == seen["write_dev"] == "error: OSError", seen
        assert seen["caps"] == "0000000000000000 0000000000000000"
        assert (seen["no_new_privs"], seen["uid"]) == ("1", 65534)
        assert (seen["loopback"], seen["interfaces"]) == ("ok: up", 1)

        # Nothing is left: no process of the uid (the task's `sleep` included), no task dir,
        # no task cgroup.
        assert _processes_of(uid) == []
        assert list((root / "work").iterdir()) == []
        for base in cgroups:
            assert [d.name for d in (base / "device-agent").iterdir() if d.is_dir()] == []


def _as_the_service(cgroups: list[Path], needed: list[Path]) -> Callable[[], None]:
    """What the child does as root before setpriv: join the delegated cgroups (as systemd
    starts the service in its own), and, in a mount namespace of its own, make the interpreter
    and the project reachable for the uid where a parent folder is closed to it (a checkout or
    an interpreter under /root, 0700): the folder is covered by a tmpfs holding just those."""

    def setup() -> None:
        for base in cgroups:
            (base / "cgroup.procs").write_text(str(os.getpid()))
        closed = sorted({c for c in map(_closed_parent, needed) if c is not None})
        if not closed:
            return
        unshare(CLONE_NEWNS)
        mount("none", "/", None, MS_REC | MS_PRIVATE, None)
        kept = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in needed if _closed_parent(p)}
        for folder in closed:
            mount("tmpfs", str(folder), "tmpfs", 0, "mode=0755")
        for path, fd in kept.items():
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", str(path), None, MS_BIND | MS_REC, None)

    return setup


def _needed_paths() -> list[Path]:
    return sorted(
        {Path(sys.prefix).resolve(), Path(os.path.realpath(sys.executable)).parents[1], PROJECT}
    )


def _closed_parent(path: Path) -> Path | None:
    """The outermost folder on the way to `path` that others may not walk through."""
    for parent in reversed(path.parents):
        if not parent.stat().st_mode & 0o001:
            return parent
    return None


def _unused_uid() -> int:
    used = set(_live_processes().values())
    for uid in range(61000, 62000):
        with contextlib.suppress(KeyError):
            pwd.getpwuid(uid)
            continue
        if uid not in used:
            return uid
    raise AssertionError("no unused uid in 61000-61999")


def _live_processes() -> dict[int, int]:
    """Each live (not zombie) process and its real uid."""
    found = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        except (OSError, ValueError):
            continue  # gone while we looked
        if not fields["State"].strip().startswith("Z"):
            found[int(status.parent.name)] = int(fields["Uid"].split()[0])
    return found


def _processes_of(uid: int) -> list[int]:
    return [pid for pid, owner in _live_processes().items() if owner == uid]


@contextlib.contextmanager
def _own_dir(uid: int) -> Iterator[Path]:
    """The uid's state dir: under /tmp, as pytest's own tmp dirs are closed to other users."""
    root = Path(tempfile.mkdtemp(prefix="zygote-unprivileged-"))
    os.chown(root, uid, uid)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _delegated_cgroups(uid: int) -> Iterator[list[Path]]:
    """A cgroup of the uid's own in each hierarchy, beside where this process's tasks go."""
    name = f"unprivileged-{uuid.uuid4().hex[:8]}"
    made: list[Path] = []
    try:
        for base in find_tree().bases:
            own = base.parent / name
            own.mkdir(mode=0o755)
            made.append(own)
            for path in (own, own / "cgroup.procs", own / "tasks"):
                if path.exists():  # `tasks` is v1's only
                    os.chown(path, uid, uid)
        yield made
    finally:
        for own in made:
            for leaf in (own / "device-agent", own):
                with contextlib.suppress(OSError):
                    leaf.rmdir()


async def _run_as_the_uid(root: Path) -> None:
    """The unprivileged side: three tasks on one device; prints the outcomes and the log."""
    log = logging.getLogger(LOG_NAME)
    log.setLevel(logging.DEBUG)
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    log.addHandler(Keep())
    outcomes = []
    async with running_harness(root, LOG_NAME) as h:
        h.device.release.set()
        for task_id, source in TASKS:
            await h.scheduler.on_frame(h.assign(task_id, source))
            outcomes += await h.drain(1)
        python = h.scheduler.isolation.settings.python
    print(json.dumps({"outcomes": outcomes, "log": messages, "python": python}))


if __name__ == "__main__":
    asyncio.run(_run_as_the_uid(Path(sys.argv[1])))
