"""Moments in the HTTP API: how a stored time is shown, and how a time filter is read.

Stored times are Unix seconds as doubles, finer than the microseconds a response shows. A time
filter compares with the time as shown, so that a bound copied from a response (a task's
`created_at`) takes that task in or leaves it out exactly as the documented comparison says.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BeforeValidator, WithJsonSchema

_UNIX_SECONDS = re.compile(r"\d+(\.\d+)?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
"""Bounds before _EPOCH or after _LATEST are taken as they are: no task has such a time, and
a step past datetime's first or last year would fail."""


def shown(stamp: float) -> datetime:
    """A stored time as the API shows it (rounded to the microsecond)."""
    return datetime.fromtimestamp(stamp, UTC)


def parse_moment(value: object) -> object:
    """A query value as an aware datetime: ISO 8601 with a timezone, or Unix seconds (a decimal
    number, never milliseconds). Anything but text is left to pydantic (a pydantic validator)."""
    if not isinstance(value, str):
        return value
    if _UNIX_SECONDS.fullmatch(value):
        try:
            return shown(float(value))
        except (OverflowError, ValueError, OSError):
            raise ValueError(f"{value} Unix seconds is out of range") from None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        # A '+' left raw in a query string arrives as a space.
        hint = " (send a '+' in a URL as %2B)" if " " in value else ""
        raise ValueError(
            "not an ISO 8601 date-time with a timezone (e.g. 2024-01-15T10:30:00Z) nor Unix "
            f"seconds{hint}"
        ) from None
    if moment.tzinfo is None:
        raise ValueError("needs a timezone: Z or +HH:MM (e.g. 2024-01-15T10:30:00Z)")
    return moment


Moment = Annotated[
    datetime,
    BeforeValidator(parse_moment),
    WithJsonSchema(
        {
            "type": "string",
            "description": "ISO 8601 with a timezone (2024-01-15T10:30:00Z) or Unix seconds",
        }
    ),
]


def first_stamp_shown_from(moment: datetime) -> float:
    """The least stored time the API shows as `moment` or later: `shown(s) >= moment` holds
    exactly for `s >= first_stamp_shown_from(moment)`."""
    if not _EPOCH <= moment < _LATEST:
        return moment.timestamp()
    # Half a microsecond below is within a few doubles of the answer; step to it.
    stamp = moment.timestamp() - 0.5e-6
    while shown(stamp) >= moment:
        stamp = math.nextafter(stamp, -math.inf)
    while shown(stamp) < moment:
        stamp = math.nextafter(stamp, math.inf)
    return stamp
