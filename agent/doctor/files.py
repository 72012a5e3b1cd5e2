"""Doctor checks of the host's files: the token file, the disk under the outbox, the state file."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from pathlib import Path

from agent.config import AgentConfig
from agent.doctor import Check, fail, ok, warn
from agent.state import FORMAT, SCHEMA_VERSION

GIB = 1024**3


def token_check(config: AgentConfig) -> Check:
    settings = config.coordinator
    if settings.token:
        return warn(
            "token",
            "given in the configuration or its environment variable",
            "prefer coordinator.token_file, mode 0600",
        )
    path = settings.token_file
    if path is None:
        return fail("token", "no token", "set coordinator.token_file to a file with the host token")
    try:
        st = path.stat()
        empty = not path.read_text().strip()
    except OSError as exc:
        return fail("token", f"cannot read {path}: {exc.strerror}", "check the path and its owner")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return fail(
            "token", f"{path} has mode {mode:04o}: the daemon refuses it", f"chmod 600 {path}"
        )
    if empty:
        return fail("token", f"{path} is empty", "write the host token into it")
    if st.st_uid != os.geteuid():
        return warn(
            "token",
            f"{path} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})",
            f"chown the daemon's user {path}, and run doctor as that user",
        )
    return ok("token", f"{path}: mode {mode:04o}, owned by this user")


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_check(config: AgentConfig) -> Check:
    """Free space where the outbox (the state file) lives: at least the disk-full reserve, and
    room for the outbox to fill up to its max_bytes."""
    where = config.agent.state_file.parent
    free = shutil.disk_usage(_existing(where)).free
    reserve, most = config.outbox.disk_reserve_bytes, config.outbox.max_bytes
    shown = f"{free / GIB:.1f} GiB free under {where}"
    if free < 2 * reserve:
        return fail("disk", f"{shown}: the outbox would be in disk-full mode", "free space there")
    if free < most:
        return warn(
            "disk",
            f"{shown}, less than outbox.max_bytes ({most / GIB:.1f} GiB)",
            "free space there, or lower outbox.max_bytes",
        )
    return ok("disk", shown)


def state_check(config: AgentConfig) -> Check:
    path = config.agent.state_file
    if not path.exists():
        return ok("state file", f"{path} does not exist yet; the first start makes it")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
        finally:
            db.close()
    except sqlite3.Error as exc:
        return fail(
            "state file",
            f"{path} is not a device-agent state file ({exc})",
            "move it away or set agent.state_file to another path",
        )
    if rows.get("format") != FORMAT:
        return fail(
            "state file",
            f"{path} has format {rows.get('format')!r}, not {FORMAT!r}",
            "move it away or set agent.state_file to another path",
        )
    version = rows.get("schema_version")
    if version != str(SCHEMA_VERSION):
        return fail(
            "state file",
            f"{path} has schema version {version}, this daemon's is {SCHEMA_VERSION}",
            "run the device-agent version that made it, or move the file away",
        )
    return ok("state file", f"{path}: schema version {version}")
