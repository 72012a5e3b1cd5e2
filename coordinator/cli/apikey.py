"""`device-coordinator apikey create NAME`: make (or replace) an HTTP API key.

The key's name is its caller's owner identity at the HTTP API (docs/jobs.md).
"""

from __future__ import annotations

from typing import Any

from coordinator.cli.common import add_secret_command
from coordinator.store_hosts import set_api_key


def add_parser(commands: Any) -> None:
    add_secret_command(commands, "apikey", "API key", "NAME", set_api_key)
