"""Argument types and helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from coordinator.db import Database
from coordinator.db_conn import Conn
from coordinator.db_location import (
    DATABASE_ENV,
    Location,
    UnusableDatabase,
    database_location,
    postgresql_location,
)
from coordinator.store_hosts import digest

EXIT_USAGE = 2
"""Bad arguments (argparse's own code) or a database this coordinator cannot use."""

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _database_arg(value: str) -> Location:
    try:
        return postgresql_location(value)
    except UnusableDatabase as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_database(parser: argparse.ArgumentParser, *, data_dir_required: bool) -> None:
    """`--data-dir` and `--database`; `location(args)` says which database they name."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=data_dir_required,
        help="directory of files/ and of the SQLite database coordinator.db (created if missing)",
    )
    parser.add_argument(
        "--database",
        type=_database_arg,
        metavar="URL",
        help="a PostgreSQL database, postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE, instead "
        f"of SQLite in --data-dir (default: ${DATABASE_ENV} if set; give a URL with a password "
        "there, not here, where `ps` shows it)",
    )


def location(args: argparse.Namespace) -> Location:
    return database_location(args.data_dir, args.database)


def name_arg(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a valid name: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive number of seconds")
    return seconds


def positive_bytes(value: str) -> int:
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of bytes") from None
    if size <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive number of bytes")
    return size


def positive_rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number per second") from None
    if not math.isfinite(rate) or rate <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive number per second")
    return rate


def positive_count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if count <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive whole number")
    return count


SaveSecret = Callable[[Conn, str, str], Awaitable[None]]


def add_secret_command(
    commands: Any, command: str, noun: str, metavar: str, save: SaveSecret
) -> None:
    """`COMMAND create METAVAR (--data-dir DIR | --database URL)`: print a new secret (a host
    token, an API key) for METAVAR, replacing its old one; only its SHA-256 is stored, by `save`."""
    parser: argparse.ArgumentParser = commands.add_parser(
        command, help=f"manage {noun}s", description=f"Manage {noun}s."
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help=f"print a new {noun} for {metavar} (replacing its old one)",
        description=f"Print a new {noun} for {metavar} on stdout; only its SHA-256 is stored.",
    )
    create.add_argument("name", metavar=metavar, type=name_arg)
    add_database(create, data_dir_required=False)

    def run(args: argparse.Namespace) -> int:
        secret = secrets.token_urlsafe(32)
        store_secret(location(args), save, args.name, digest(secret))
        print(secret)
        return 0

    create.set_defaults(run=run)


def store_secret(where: Location, save: SaveSecret, name: str, secret_sha256: str) -> None:
    """Open (or create) the database and store one digest with `save` (blocking: it runs its
    own event loop)."""

    async def write() -> None:
        db = await Database.open(where)
        try:
            async with db.transaction() as conn:
                await save(conn, name, secret_sha256)
        finally:
            await db.close()

    asyncio.run(write())
