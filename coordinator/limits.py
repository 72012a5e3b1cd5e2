"""Size caps on what enters the coordinator: a job's script and a task's input.

The caps are `serve --max-script-bytes` and `--max-input-bytes` (coordinator/settings.py). The
HTTP API answers 413 with the message of the check that failed; a script's `add_sub_tasks` gets
it as the refusal of its request. Each message names the size, the limit and the flag.
"""

from __future__ import annotations

import json
from typing import Any


def json_bytes(value: Any) -> int:
    """The size of `value` as compact UTF-8 JSON: how an input is measured."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def script_too_large(source: str, limit: int) -> str | None:
    """Why the script is refused, or None when it fits."""
    size = len(source.encode())
    if size <= limit:
        return None
    return f"script is {size} bytes, over the limit of {limit} bytes (--max-script-bytes)"


def input_too_large(what: str, value: Any, limit: int) -> str | None:
    """Why the input called `what` (e.g. `tasks[2].input`) is refused, or None when it fits."""
    size = json_bytes(value)
    if size <= limit:
        return None
    return f"{what} is {size} bytes of JSON, over the limit of {limit} bytes (--max-input-bytes)"
