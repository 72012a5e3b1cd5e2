"""The text of ids and keys that cross a process or network boundary: it holds no NUL.

The coordinator stores or looks them up as they are, and PostgreSQL's text cannot hold a NUL.
A module of its own because the script host, which must not import the daemon's protocol
(tests/scripthost/test_isolation.py), validates ids too.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def no_nul(text: str) -> str:
    """`text`, or ValueError if it holds a NUL (a pydantic validator)."""
    if "\x00" in text:
        raise ValueError("must not hold a NUL character (U+0000)")
    return text


Id = Annotated[str, AfterValidator(no_nul)]
"""An id or key, which the coordinator stores or looks up as it is. (Free text such as `error`
is made storable by the coordinator; JSON values such as `data` are stored escaped.)"""
