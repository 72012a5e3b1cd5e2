"""Log lines: text and JSON (with the task's fields and the host), journald's priority prefix
exactly when stderr is the stream $JOURNAL_STREAM names, and `log_format` validated."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config
from agent.logsetup import configure_logging


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, given back as it was (pytest's own handlers included)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def emit(log_file: Path) -> list[str]:
    log = logging.getLogger("device_agent")
    log.info("task %s stdout: %s", "t-1", "hello", extra={"task_id": "t-1", "source": "stdout"})
    log.debug("not shown at info")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("it failed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    return log_file.read_text().splitlines()


def test_json_lines_carry_the_task_and_the_host(
    tmp_path: Path, root_logger: logging.Logger
) -> None:
    log_file = tmp_path / "log"
    with log_file.open("w") as stream:
        configure_logging("info", "json", stream, host="farm-01", env={})
        lines = emit(log_file)
    assert len(lines) == 2, lines
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "task t-1 stdout: hello"
    assert (first["level"], first["logger"], first["host"]) == ("info", "device_agent", "farm-01")
    assert (first["task_id"], first["source"]) == ("t-1", "stdout")
    assert second["level"] == "error"
    assert "task_id" not in second
    assert "RuntimeError: boom" in second["exc"]


def test_text_lines_get_journald_priorities_only_on_the_journal(
    tmp_path: Path, root_logger: logging.Logger
) -> None:
    log_file = tmp_path / "log"
    with log_file.open("w") as stream:
        st = os.fstat(stream.fileno())
        configure_logging(
            "info", "text", stream, env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        )
        lines = emit(log_file)
    assert lines[0].startswith("<6>") and "INFO device_agent: task t-1 stdout: hello" in lines[0]
    assert lines[1].startswith("<3>") and "ERROR device_agent: it failed" in lines[1]
    assert all(line.startswith("<3>") for line in lines[2:]), "each traceback line is an entry"
    assert any("RuntimeError: boom" in line for line in lines[2:])

    # Another stream (stderr redirected to a file under systemd): no prefix.
    other = tmp_path / "other"
    with other.open("w") as stream:
        configure_logging(
            "info", "json", stream, env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        )
        lines = emit(other)
    assert all(line.startswith("{") for line in lines)


def test_log_format_is_validated(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("[agent]\nlog_format = 'json'\n")
    assert load_config(config, env={}).agent.log_format == "json"
    config.write_text("[agent]\nlog_format = 'xml'\n")
    with pytest.raises(
        ConfigError, match=r"key `agent\.log_format`: Input should be 'text' or 'json'"
    ):
        load_config(config, env={})
