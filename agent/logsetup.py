"""How the daemon's and the coordinator's log lines look: text or JSON lines on stderr, with
journald's priority prefix when stderr is the journal.

`log_format = "json"` writes one JSON object per line: `ts`, `level`, `logger`, `message`,
`host` (the daemon's host_id) and the fields a call passes with `extra=` (`task_id`, `device`,
`run`, `attempt`, `source`, `script_fields`) when it has them, and `exc` for a traceback.
Under systemd, stderr is a stream to journald (`$JOURNAL_STREAM` names its device and inode):
each line then starts with `<N>`, the syslog priority of its level (sd-daemon(3)), which journald
strips and records as the entry's priority.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("task_id", "device", "run", "attempt", "source", "script_fields")
"""The `extra=` fields a JSON line carries when a log call gives them."""
_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in a message are escaped)."""

    def __init__(self, host: str | None) -> None:
        super().__init__()
        self._host = host

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self._host is not None:
            line["host"] = self._host
        for name in CONTEXT_FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class JournalPrefix(logging.Formatter):
    """Puts `<N>` (the level's syslog priority) before every line another formatter makes: a
    traceback's lines are separate journal entries, each with the record's priority."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        level = max((lv for lv in _SYSLOG_PRIORITY if lv <= record.levelno), default=logging.DEBUG)
        prefix = f"<{_SYSLOG_PRIORITY[level]}>"
        return "\n".join(prefix + line for line in self._inner.format(record).split("\n"))


def is_journal(stream: TextIO, env: Mapping[str, str]) -> bool:
    """Whether `stream` is the journald stream `$JOURNAL_STREAM` ("DEVICE:INODE") names."""
    expected = env.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):  # ValueError: a stream with no file descriptor
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def configure_logging(
    level: str,
    log_format: LogFormat,
    stream: TextIO,
    host: str | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Send the root logger's records at `level` and above to `stream`, formatted."""
    formatter = JsonFormatter(host) if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    if is_journal(stream, os.environ if env is None else env):
        formatter = JournalPrefix(formatter)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
