"""`device-agent doctor` and `device-coordinator doctor` against a real coordinator: a broken host
(wrong token, no Chromium, no adb server, a foreign state file, no room for a zygote) and a good
one, each line saying so; the coordinator's data dir, good and broken. Run in this process: the
doctor's start costs more than its checks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.cli.main import main as device_agent
from coordinator.cli.main import main as device_coordinator
from scripts.devstack import Coordinator, Daemon, free_port


def doctor(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = device_agent(["doctor", "--config", str(config)])
    return code, capsys.readouterr().out.splitlines()


def line(lines: list[str], start: str) -> str:
    found = [x for x in lines if x.startswith(start)]
    assert len(found) == 1, f"no single line starting {start!r} in:\n" + "\n".join(lines)
    return found[0]


def test_doctor_on_a_broken_host_and_a_good_one(
    tmp_path: Path, coordinator: Coordinator, capsys: pytest.CaptureFixture[str]
) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "token").write_text("not-the-token\n")
    (host / "token").chmod(0o600)
    foreign = sqlite3.connect(host / "state.db")
    foreign.execute("CREATE TABLE other (x)")
    foreign.close()
    adb_port = free_port()  # nothing listens there
    broken = host / "broken.toml"
    broken.write_text(
        f"[agent]\nstate_file = '{host / 'state.db'}'\n"
        f"[coordinator]\nurl = '{coordinator.ws_url}'\ntoken_file = '{host / 'token'}'\n"
        f"[browser]\nexecutable = '{host / 'no-chromium'}'\n"
        f"[android]\nenabled = true\nadb_port = {adb_port}\n"
        "[[devices.browser]]\nname = 'browser-1'\n"
        # Room for no interpreter: the sandbox's trial runs outside any limit, the zygote not.
        "[scripts]\nmemory_max_mb = 16\n"
    )
    code, lines = doctor(broken, capsys)
    assert code == 1
    assert line(lines, "ok   config:")
    assert line(lines, "ok   token:")
    assert "refused the host token (HTTP 401)" in line(
        lines, f"fail coordinator {coordinator.ws_url}"
    )
    assert line(lines, "ok   clock: within")
    assert f"no adb server answers on 127.0.0.1:{adb_port}" in line(lines, "fail adb:")
    assert "no-chromium is missing or not executable" in line(lines, "fail chromium:")
    assert "apt-get install chromium" in line(lines, "fail chromium:")
    assert "not a device-agent state file" in line(lines, "fail state file:")
    zygote = line(lines, "warn zygote: tasks will start cold: the zygote exited before it was")
    assert "the kernel killed it at its memory limit (fix: " in zygote
    assert "scripts.memory_max_mb" in zygote

    good = Daemon(dir=tmp_path / "daemon", coordinator=coordinator)
    good.dir.mkdir()
    good.write_config()
    code, lines = doctor(good.config_path, capsys)
    assert code == 0, "\n".join(lines)
    assert "answers and accepts the host token" in line(
        lines, f"ok   coordinator {coordinator.ws_url}"
    )
    assert line(lines, "ok   adb: not used")
    assert "launches (Chromium " in line(lines, "ok   chromium:")
    assert "Tesseract data for eng" in line(lines, "ok   ocr:")
    assert line(lines, "ok   sandbox:")
    assert "a script host forked from it is ready" in line(lines, "ok   zygote:")
    assert line(lines, "ok   disk:")
    assert "does not exist yet" in line(lines, "ok   state file:")
    assert not [x for x in lines if x.startswith(("warn", "fail"))], "\n".join(lines)

    # The coordinator's data dir, while it serves from it.
    code = device_coordinator(["doctor", *coordinator.database_args])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0, "\n".join(lines)
    assert "this coordinator's" in line(lines, "ok   database:")
    assert line(lines, "ok   file store:")
    assert line(lines, "ok   data dir:")

    broken_data = tmp_path / "broken-data"
    broken_data.mkdir(mode=0o700)
    (broken_data / "coordinator.db").write_text("not a database, at least not SQLite\n" * 100)
    code = device_coordinator(["doctor", "--data-dir", str(broken_data)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert "is not a usable SQLite file" in line(lines, "fail database:")
