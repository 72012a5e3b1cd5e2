"""`device-coordinator`: the command line of the reference coordinator.

Each subcommand lives in its own module with `add_parser(subparsers)`, which sets the
`run(args) -> int` the subcommand dispatches to.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from coordinator.cli import apikey, doctor, migrate, serve, token
from coordinator.cli.common import EXIT_USAGE
from coordinator.db_location import UnusableDatabase


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="device-coordinator",
        description="The reference coordinator of device-agent: jobs, tasks and host sessions.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, migrate, token, apikey, doctor):
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.run(args)
    except UnusableDatabase as exc:
        print(f"device-coordinator: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return result


if __name__ == "__main__":
    sys.exit(main())
