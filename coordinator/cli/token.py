"""`device-coordinator token create HOST_ID`: make (or replace) a host's websocket token."""

from __future__ import annotations

from typing import Any

from coordinator.cli.common import add_secret_command
from coordinator.store_hosts import set_host_token


def add_parser(commands: Any) -> None:
    add_secret_command(commands, "token", "host token", "HOST_ID", set_host_token)
