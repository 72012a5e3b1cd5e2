"""`device-agent script run` as a script author uses it: the real command, its in-process
coordinator and daemon, real Chromium, the simulated phone behind the real adb server.

Every example of scripts/examples runs to success (one run each, with as many local devices as
it needs) and prints its run as it happens; bad devices are refused before anything starts.
Each run gets its own TMPDIR, so "nothing left running" is checked by looking for any process
that still carries it in its environment (Chromium, adb, the script hosts all inherit it).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scripts.devstack import script_run, wait_until
from tests.sim.conftest import AdbServer, adb_server

__all__ = ["adb_server"]

EXAMPLES = Path(__file__).resolve().parents[2] / "scripts" / "examples"
JPEG = b"\xff\xd8"


def _with_env(pid: Path, needle: bytes) -> bool:
    try:
        return needle in (pid / "environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _still_running(tmpdir: Path) -> list[str]:
    needle = f"TMPDIR={tmpdir}".encode()
    return [p.name for p in Path("/proc").glob("[0-9]*") if _with_env(p, needle)]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    out: Path
    summary: dict[str, Any]


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """`script run ARGS --output OUT` with a TMPDIR of its own; waits until nothing of it runs
    and checks that it left no temp dir behind."""
    out = tmp_path / "out"
    # Short: Chromium puts a Unix socket (at most 107 bytes of path) under it.
    tmpdir = Path(tempfile.mkdtemp(prefix="sr-", dir="/tmp"))
    try:
        return _run(tmpdir, out, tmp_path, args, env)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _run(
    tmpdir: Path, out: Path, cwd: Path, args: tuple[str, ...], env: dict[str, str] | None
) -> Run:
    done = script_run(
        *args, "--output", str(out), cwd=cwd, env={"TMPDIR": str(tmpdir), **(env or {})}
    )
    wait_until(lambda: not _still_running(tmpdir), "the run's processes to be gone", 30)
    assert list(tmpdir.iterdir()) == []
    summary_file = out / "result.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    return Run(done.returncode, done.stdout, done.stderr, out, summary)


def _in_order(text: str, *parts: str) -> None:
    at = 0
    for part in parts:
        found = text.find(part, at)
        assert found >= 0, f"{part!r} not after position {at} in:\n{text}"
        at = found + len(part)


def _browser_click(site: str) -> tuple[list[str], Callable[[Run], None]]:
    def check(r: Run) -> None:
        # agent.log is shown at the default log level, between the actions, as it happens.
        _in_order(
            r.stdout,
            "running on local-browser",
            "browse(url=",
            "tap(x=200 y=140) ok",
            "log info: the page changed before='waiting' after='clicked'",
            "screenshot(",
            'submitted #0 success, final: {"before": "waiting", "after": "clicked"',
            "] success",
            f"saved: {r.out / 'page.jpg'}",
        )
        assert (r.out / "page.jpg").read_bytes()[:2] == JPEG

    return ["--input", json.dumps({"url": site})], check


def _data_dump(site: str) -> tuple[list[str], Callable[[Run], None]]:
    def check(r: Run) -> None:
        _in_order(r.stdout, "data dump ", '"title": "Button page"', "] success", "saved:")
        [snapshot] = r.out.glob("dump-*-snapshot.jpg")
        assert snapshot.read_bytes()[:2] == JPEG
        assert r.summary["tasks"][0]["result"]["dumped"] is True
        assert len(r.summary["dumps"]) == 1

    return ["--input", json.dumps({"url": site})], check


def _fan_out(site: str) -> tuple[list[str], Callable[[Run], None]]:
    urls = [site + "a", site + "b"]

    def check(r: Run) -> None:
        # The parent holds one device; its two sub-tasks run on the others, for real, and every
        # one of them is reported with its final state. Whether they share a device is timing:
        # a device is offered only once its warm host is ready, and on a loaded machine the
        # first sub-task's device can be ready again before the third device is.
        parent, *subs = r.summary["tasks"]
        assert [t["state"] for t in r.summary["tasks"]] == ["success"] * 3
        assert parent["result"]["statuses"] == ["confirmed", "confirmed"]
        assert sorted(t["result"]["url"] for t in subs) == urls
        assert {t["parent_task_id"] for t in subs} == {parent["id"]}
        assert parent["device_id"] not in {t["device_id"] for t in subs}
        assert None not in {t["device_id"] for t in subs}
        assert r.stdout.count("sub-task added by") == 2
        assert "not run here" not in r.stdout
        for sub in subs:
            assert f"  {sub['id']} success, sub-task of {parent['id'][:8]}" in r.stdout

    return ["--devices", "3", "--input", json.dumps({"urls": urls})], check


def _waiting_pair(site: str) -> tuple[list[str], Callable[[Run], None]]:
    def check(r: Run) -> None:
        a, b = r.summary["tasks"]
        assert b["result"] == {"found": a["id"], "preparedData": "value"}
        assert a["result"] == {"handed": True} and a["state"] == "success"
        # print() is shown by default, labelled with its task.
        assert f"[{b['id'][:8]}] print: Got data from Task A: value" in r.stdout
        assert f'[{a["id"][:8]}] submitted #0 running: {{"preparedData": "value"' in r.stdout

    inputs = [json.dumps({"role": "A"}), json.dumps({"role": "B"})]
    return ["--devices", "2", "--input", inputs[0], "--input", inputs[1]], check


def _android_login(site: str) -> tuple[list[str], Callable[[Run], None]]:
    def check(r: Run) -> None:
        _in_order(
            r.stdout,
            "running on 127.0.0.1:",
            "launch_app(package='com.example.login'",
            "log info: logged in greeting='Welcome, demo'",
            'submitted #0 success, final: {"greeting": "Welcome, demo"',
        )
        assert (r.out / "welcome.jpg").read_bytes()[:2] == JPEG
        # The password typed into the login form shows only as its length.
        assert "data=<6 chars>" in r.stdout and "'secret'" not in r.stdout

    return ["--sim"], check


EXAMPLE_RUNS = {
    "browser_click.py": _browser_click,
    "data_dump.py": _data_dump,
    "fan_out.py": _fan_out,
    "waiting_pair.py": _waiting_pair,
    "android_login.py": _android_login,
}


def test_every_example_has_a_run() -> None:
    assert sorted(EXAMPLE_RUNS) == sorted(p.name for p in EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("example", sorted(EXAMPLE_RUNS))
def test_each_example_completes_under_script_run(tmp_path: Path, site: str, example: str) -> None:
    args, check = EXAMPLE_RUNS[example](site)
    r = run(tmp_path, str(EXAMPLES / example), *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(t["state"] == "success" for t in r.summary["tasks"])
    assert "\ntasks:\n" in r.stdout
    check(r)


def test_bad_devices_are_refused_naming_the_argument(tmp_path: Path, adb_server: AdbServer) -> None:
    script = str(EXAMPLES / "android_login.py")
    unknown = script_run(script, "--device", "phone", cwd=tmp_path)
    assert unknown.returncode == 2
    assert "argument --device: unknown device 'phone'" in unknown.stderr
    # A serial the adb server does not list: refused before anything starts.
    r = run(
        tmp_path,
        script,
        "--device",
        "android:SIM-NOPE",
        env={"ANDROID_ADB_SERVER_PORT": str(adb_server.port)},
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert (
        f"--device android:SIM-NOPE: the phone is not attached to the adb server on "
        f"127.0.0.1:{adb_server.port}"
    ) in r.stderr
    assert r.stdout == "" and not r.out.exists()


def test_script_run_never_writes_outside_its_output_folder(tmp_path: Path) -> None:
    script = tmp_path / "escape.py"
    script.write_text(
        textwrap.dedent(
            """
            async def main(agent):
                files = [
                    agent.files.from_bytes("../escape", "txt", b"one"),
                    agent.files.from_bytes("linked", "txt", b"two"),
                ]
                await agent.utils.job.submit_task("success", {}, True, files)
            """
        )
    )
    out = tmp_path / "out"
    out.mkdir()
    # A link left in the output folder must not carry a file out of it either.
    (out / "linked.txt").symlink_to(tmp_path / "outside.txt")
    done = script_run(str(script), "--output", str(out), cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"refusing to write {out / 'linked.txt'}: it resolves outside {out}" in done.stderr
    assert (out / "escape.txt").read_bytes() == b"one"
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "outside.txt").exists()


def test_an_error_names_the_authors_file_and_line_with_pythons_suggestion(tmp_path: Path) -> None:
    script = tmp_path / "my_flow.py"
    script.write_text("async def main(agent):\n    await agent.actions.tapp(1, 2)\n")
    r = run(tmp_path, str(script))
    assert r.returncode == 1, r.stdout + r.stderr
    assert (
        "error: AttributeError: 'Actions' object has no attribute 'tapp'. Did you mean: 'tap'?"
        in r.stdout
    )
    assert 'File "my_flow.py", line 2, in main' in r.stdout, r.stdout
