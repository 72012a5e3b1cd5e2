"""The state file: a corrupt or foreign file is refused, naming it and what to do."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


def run_with_state(tmp_path: Path, state: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "agent.toml"
    config.write_text(
        f"[agent]\nstate_file = '{state}'\n[coordinator]\ntoken = 'x'\n"
        "url = 'ws://127.0.0.1:9/ws/host'\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_corrupt_state_file_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    state.write_bytes(b"this is not a database, but it is long enough to look like one" * 20)
    result = run_with_state(tmp_path, state)
    assert result.returncode == 2
    assert f"state file {state} is not a usable SQLite file" in result.stderr
    assert "move it away or set agent.state_file" in result.stderr


@pytest.mark.parametrize("schema", ["CREATE TABLE users (id INTEGER)", ""])
def test_foreign_state_file_is_refused(tmp_path: Path, schema: str) -> None:
    state = tmp_path / "state.db"
    with sqlite3.connect(state) as db:
        db.execute(schema or "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        if not schema:
            db.execute("INSERT INTO meta VALUES ('format', 'someone-else')")
    result = run_with_state(tmp_path, state)
    assert result.returncode == 2
    assert f"state file {state}" in result.stderr
    assert "another program" in result.stderr or "has format 'someone-else'" in result.stderr
