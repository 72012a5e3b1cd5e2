"""`device-coordinator doctor --data-dir DIR [--database URL]`: what is wrong with the data dir.

One line per check, `ok`/`warn`/`fail`, what was found and the fix: the data directory, the file
store, the database (reachable, at this coordinator's schema) and the disk space. Exit status 0
with no `fail`, 1 with any, 2 for bad arguments. It creates and migrates nothing (a missing or
empty database is reported, not made; the file store is tried with a file it removes at once);
run it as the coordinator's user.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from agent.doctor import Check, fail, ok, warn
from coordinator import migrate
from coordinator.cli.common import add_database, location
from coordinator.db_location import Location, UnusableDatabase
from coordinator.db_version import revision

EXIT_FAILED = 1
MIB = 1024**2


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "doctor",
        help="check the data directory and the database",
        description="Check the data directory, the file store, the database and the disk.",
    )
    add_database(parser, data_dir_required=True)
    parser.set_defaults(run=run)


def data_dir_check(data_dir: Path) -> Check:
    try:
        st = data_dir.stat()
    except OSError as exc:
        return fail("data dir", f"{data_dir}: {exc.strerror}", "check --data-dir")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return warn("data dir", f"{data_dir} has mode {mode:04o}", f"chmod 700 {data_dir}")
    if st.st_uid != os.geteuid():
        return warn(
            "data dir",
            f"{data_dir} is owned by uid {st.st_uid}, not by this user",
            "run doctor as the coordinator's user",
        )
    return ok("data dir", f"{data_dir}: mode {mode:04o}")


def file_store_check(data_dir: Path) -> Check:
    """Files are stored in DATA_DIR/files: one written and removed there shows it works."""
    files = data_dir / "files"
    where = files if files.is_dir() else data_dir
    try:
        with tempfile.NamedTemporaryFile(dir=where, prefix=".doctor-"):
            pass
    except OSError as exc:
        return fail(
            "file store", f"cannot write in {where}: {exc.strerror}", f"chown -R the user {where}"
        )
    return ok("file store", f"{where} is writable")


def database_check(where: Location) -> Check:
    if where.sqlite_file is not None and not where.sqlite_file.exists():
        return warn("database", f"{where} does not exist yet", "serve, token or migrate makes it")
    try:
        found = asyncio.run(revision(where))
    except UnusableDatabase as exc:
        return fail("database", str(exc))
    head = migrate.head()
    if found is None:
        return warn("database", f"{where} is empty", "serve creates its schema")
    if found != head:
        return fail(
            "database",
            f"{where} is at schema revision {found}, this coordinator's is {head}",
            "back it up, then device-coordinator migrate",
        )
    return ok("database", f"{where} is at schema revision {head}, this coordinator's")


def disk_check(data_dir: Path) -> Check:
    try:
        free = shutil.disk_usage(data_dir).free
    except OSError as exc:
        return fail("disk", f"{data_dir}: {exc.strerror}")
    shown = f"{free / MIB:.0f} MiB free under {data_dir}"
    if free < 100 * MIB:
        return fail("disk", shown, "free space there: uploads and the database need it")
    if free < 1024 * MIB:
        return warn("disk", shown, "free space there")
    return ok("disk", shown)


def run(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    checks = [data_dir_check(data_dir)]
    if data_dir.is_dir():
        checks += [file_store_check(data_dir), disk_check(data_dir)]
    checks.append(database_check(location(args)))
    for check in checks:
        print(check.line())
    return EXIT_FAILED if any(c.status == "fail" for c in checks) else 0
