"""`device-agent`: the command line. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys

from agent.cli import doctor, outbox, run, script, sim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="device-agent", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run.register(commands)
    outbox.register(commands)
    script.register(commands)
    sim.register(commands)
    doctor.register(commands)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
