"""Strict, bounded JSON decoding of every frame a peer sends: websocket and script channel.

Python's `json` fails on hostile input in ways a frame handler does not expect: nesting a few
thousand levels deep raises RecursionError, an integer of over 4,300 digits raises a plain
ValueError, `1e999` quietly becomes infinity, `NaN` is accepted, and a `\\ud800` escape yields a
string that cannot be encoded again. `loads` refuses all of these with `BadJson` before any of
them reaches a model, a database or an encoder. The limits are far beyond what real frames use
(docs/protocol.md).
"""

from __future__ import annotations

import json
import math
import operator
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects a frame may have (the top-level object is depth 1)."""
MAX_NUMBER_CHARS = 100
"""Longest number literal, sign, fraction and exponent included."""

# A JSON string literal, unrolled so that re does not recurse per character.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_OPENERS_RUN = re.compile(rf"[\[{{]{{{MAX_DEPTH + 1}}}")
_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
# An escape of a UTF-16 surrogate: only then can a decoded string hold an unpaired one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class BadJson(ValueError):
    """The text is not JSON, or is JSON beyond the limits; the message says which."""


def loads(raw: str | bytes) -> Any:
    """Decode one frame's JSON, refusing what `BadJson` lists; bytes must be UTF-8."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadJson(f"not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    else:
        text = raw
        if not text.isascii():
            _encodable(text)
    _check_depth(text)
    try:
        value = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except json.JSONDecodeError as exc:
        raise BadJson(f"{exc.msg} at {exc.pos}") from None
    if _SURROGATE_ESCAPE.search(text) is not None:
        _check_unicode(value)
    return value


def _check_depth(text: str) -> None:
    """Refuse nesting over MAX_DEPTH, counting brackets outside string literals.

    Linear and in C: a Python loop over the brackets of a 16 MiB frame takes tens of seconds."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if len(brackets) <= MAX_DEPTH:
        return
    if _OPENERS_RUN.search(brackets) is not None:  # the common hostile case, found fast
        raise BadJson(f"nested deeper than {MAX_DEPTH} levels")
    # After the i-th bracket the depth is 2 * (openers so far) - i.
    steps = brackets.encode("ascii").translate(_STEP)
    deepest = max(map(operator.sub, accumulate(steps), range(1, len(steps) + 1)))
    if deepest > MAX_DEPTH:
        raise BadJson(f"nested deeper than {MAX_DEPTH} levels")


def _parse_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise BadJson(f"a number of {len(literal)} characters; at most {MAX_NUMBER_CHARS}")
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise BadJson(f"a number of {len(literal)} characters; at most {MAX_NUMBER_CHARS}")
    value = float(literal)
    if not math.isfinite(value):
        raise BadJson(f"the number {literal} is out of range")
    return value


def _refuse_constant(word: str) -> Any:
    # Python's json accepts these; stored, they would break every strict reader of the value.
    raise BadJson(f"{word} is not valid JSON (RFC 8259)")


def _check_unicode(value: Any) -> None:
    """Refuse strings holding an unpaired surrogate (decoded from a `\\udXXX` escape)."""
    if isinstance(value, str):
        _encodable(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _encodable(key)
            _check_unicode(item)
    elif isinstance(value, list):
        for item in value:
            _check_unicode(item)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadJson(
            f"a string holds the unpaired surrogate U+{ord(text[exc.start]):04X}"
        ) from None
