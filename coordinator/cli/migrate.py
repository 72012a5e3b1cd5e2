"""`device-coordinator migrate`: upgrade the database's schema to this coordinator's.

Run it (after a backup) when `serve` refuses a database as older than its schema. It prints the
revision before and after; a database already at head is left as it is.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from coordinator.cli.common import add_database, location
from coordinator.db_version import upgrade


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "migrate",
        help="upgrade the database's schema",
        description="Upgrade the database's schema to this coordinator's, in one transaction "
        "(all or nothing); an empty database is created. Back the database up first.",
    )
    add_database(parser, data_dir_required=False)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    where = location(args)
    before, after = asyncio.run(upgrade(where))
    if before == after:
        print(f"{where}: already at schema revision {after}")
    else:
        print(f"{where}: schema revision {before or '(empty)'} -> {after}")
    return 0
