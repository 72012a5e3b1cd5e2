"""Argument types and helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite

from coordinator.db import Database

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="directory of coordinator.db and files/ (created if missing)",
    )


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


SaveSecret = Callable[[aiosqlite.Connection, str, str], Awaitable[None]]


def store_secret(data_dir: Path, save: SaveSecret, name: str, secret_sha256: str) -> None:
    """Open (or create) the database and store one digest with `save`."""

    async def write() -> None:
        db = await Database.open(data_dir)
        try:
            async with db.transaction() as conn:
                await save(conn, name, secret_sha256)
        finally:
            await db.close()

    asyncio.run(write())
