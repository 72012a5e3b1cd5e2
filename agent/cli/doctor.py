"""`device-agent doctor --config FILE`: which isolation scripts get on this host, and what is
missing. Exit 0 when the daemon would start, 2 when it would refuse (as `run` does)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent.config import ConfigError, load_config
from agent.sandbox import probe, refuse_unsandboxed

EXIT_REFUSED = 2


def register(commands: Any) -> None:
    parser = commands.add_parser("doctor", help="show the isolation scripts get on this host")
    parser.add_argument("--config", type=Path, required=True, help="TOML configuration file")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"device-agent: config error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    isolation = probe(config.scripts)
    print(isolation.report())
    refusal = refuse_unsandboxed(isolation)
    if refusal is not None:
        print(f"device-agent: the daemon would refuse to start: {refusal}", file=sys.stderr)
        return EXIT_REFUSED
    print("ok: the daemon would start with this isolation")
    return 0
