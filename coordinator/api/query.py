"""Query-parameter types shared by routes."""

from __future__ import annotations

from typing import Literal

Flag = Literal["true", "false"]
"""A boolean query parameter, spelled exactly `true` or `false` (anything else is a 422: a
typo such as `flase` must not quietly mean one or the other)."""


def flag(value: Flag) -> bool:
    return value == "true"
