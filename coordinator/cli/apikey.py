"""`device-coordinator apikey create NAME`: make (or replace) an HTTP API key."""

from __future__ import annotations

import argparse
import secrets
from typing import Any

from coordinator.cli.common import add_data_dir, name_arg, store_secret
from coordinator.store_hosts import digest, set_api_key


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "apikey", help="manage HTTP API keys", description="Manage HTTP API keys."
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="print a new API key (replacing the key of that name)",
        description="Print a new API key named NAME on stdout; only its SHA-256 is stored.",
    )
    create.add_argument("name", metavar="NAME", type=name_arg)
    add_data_dir(create)
    create.set_defaults(run=run_create)


def run_create(args: argparse.Namespace) -> int:
    key = secrets.token_urlsafe(32)
    store_secret(args.data_dir, set_api_key, args.name, digest(key))
    print(key)
    return 0
