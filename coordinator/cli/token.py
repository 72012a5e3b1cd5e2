"""`device-coordinator token create HOST_ID`: make (or replace) a host's websocket token."""

from __future__ import annotations

import argparse
import secrets
from typing import Any

from coordinator.cli.common import add_data_dir, name_arg, store_secret
from coordinator.store_hosts import digest, set_host_token


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "token", help="manage host tokens", description="Manage host tokens."
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="print a new token for a host (replacing its old one)",
        description="Print a new token for HOST_ID on stdout; only its SHA-256 is stored.",
    )
    create.add_argument("host_id", metavar="HOST_ID", type=name_arg)
    add_data_dir(create)
    create.set_defaults(run=run_create)


def run_create(args: argparse.Namespace) -> int:
    token = secrets.token_urlsafe(32)
    store_secret(args.data_dir, set_host_token, args.host_id, digest(token))
    print(token)
    return 0
