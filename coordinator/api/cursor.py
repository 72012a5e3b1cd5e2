"""The cursor of a task list: an opaque string saying where the next page starts.

It holds the `seq` (creation order, never reused nor changed) of the last task of the page it
came with, so the next page starts after that task whatever was created or changed meanwhile.
Clients must treat it as opaque: its form may change.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from pydantic import BeforeValidator, WithJsonSchema

_VERSION = b"\x01"
_SIZE = 9
"""Bytes in a cursor: the version and 8 of seq (12 characters of base64). A fixed size makes a
cut-off cursor an error rather than another place in the list."""


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(_VERSION + seq.to_bytes(8, "big")).decode()


def decode_cursor(value: object) -> object:
    """The seq a cursor holds (a pydantic validator; anything but text is left to pydantic)."""
    if not isinstance(value, str):
        return value
    try:
        raw = base64.b64decode(value, altchars=b"-_", validate=True)
    except binascii.Error:
        raw = b""
    # seq is a BigInteger: a signed 64-bit number.
    if len(raw) != _SIZE or raw[:1] != _VERSION or raw[1] & 0x80:
        raise ValueError("not a cursor this API gave (pass next_cursor as it came)")
    return int.from_bytes(raw[1:], "big")


Cursor = Annotated[
    int,
    BeforeValidator(decode_cursor),
    WithJsonSchema({"type": "string", "description": "next_cursor of the previous page"}),
]
"""A cursor in a query, read as the seq it holds."""
