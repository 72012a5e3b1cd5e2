"""Hypothesis strategies for fuzzing frames: drawn from the protocol's own pydantic models, then
mutated (wrong types, missing and unknown fields, deep nesting, huge numbers, lone surrogates,
truncation, binary, garbage).

A drawn `Mutant` knows the error code its mutation must get when that is certain (`expect`);
otherwise (`expect` None) the frame may be valid or not, and the test asks the real parser.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

from agent import boundedjson

_SENTINEL = "\x00sentinel-5f0c2e\x00"
"""Stands for a raw literal that json.dumps cannot write; hypothesis's short texts never hold it."""

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**18), 10**18)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _for(annotation: Any) -> st.SearchStrategy[Any]:
    """JSON values shaped like `annotation` (constraints such as min_length are not honoured)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return JSON_VALUES
    if origin is typing.Annotated:  # constraints are not honoured, as said
        return _for(args[0])
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (types.UnionType, typing.Union):
        return st.one_of(*(_for(arg) for arg in args))
    if origin is list:
        return st.lists(_for(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(st.text(max_size=8), _for(args[1]), max_size=3)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_dicts(annotation)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        type(None): st.none(),
        str: st.text(max_size=12),
        SecretStr: st.text(max_size=12),  # sent as plain text in a frame
        bool: st.booleans(),
        int: st.integers(-5, 10**6),
        float: st.floats(-1.0, 1e6, allow_nan=False),
        datetime: st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
    }
    return simple[annotation]


def model_dicts(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with the model's fields: every required one, some optional ones; `type` always."""
    fields = model.model_fields
    required = {
        name: _for(field.annotation)
        for name, field in fields.items()
        if field.is_required() or name == "type"
    }
    optional = {
        name: _for(field.annotation) for name, field in fields.items() if name not in required
    }
    return st.fixed_dictionaries(required, optional=optional)


@dataclass(frozen=True)
class Mutant:
    """One fuzzed frame: its bytes or text, how it was made, and the error code it must get."""

    raw: str | bytes
    how: str
    expect: str | None


def _nested(depth: int, leaf: Any, as_objects: bool) -> str:
    """`leaf` inside `depth` arrays or objects, as JSON text (json.dumps recurses: too deep)."""
    opening, closing = ('{"k": ', "}") if as_objects else ("[", "]")
    return opening * depth + json.dumps(leaf) + closing * depth


def _with_literal(frame: dict[str, Any], key: str, literal: str) -> str:
    """The frame as JSON with `key` set to a raw `literal` that json.dumps cannot produce."""
    return json.dumps({**frame, key: _SENTINEL}).replace(json.dumps(_SENTINEL), literal)


@st.composite
def mutants(draw: st.DrawFn, frames: st.SearchStrategy[dict[str, Any]]) -> Mutant:
    """A frame drawn from `frames`, then mutated one way (or left alone)."""
    frame = draw(frames)
    key = draw(st.sampled_from(sorted(frame)))
    text = json.dumps(frame)
    how = draw(
        st.sampled_from(
            [
                "as_is",
                "wrong_type",
                "drop_field",
                "extra_field",
                "deep",
                "huge_number",
                "float_out_of_range",
                "constant",
                "lone_surrogate",
                "truncated",
                "not_object",
                "garbage",
                "binary",
            ]
        )
    )
    bad_json = "bad_json"
    match how:
        case "as_is":
            return Mutant(text, how, None)
        case "wrong_type":
            return Mutant(json.dumps({**frame, key: draw(JSON_VALUES)}), how, None)
        case "drop_field":
            return Mutant(json.dumps({k: v for k, v in frame.items() if k != key}), how, None)
        case "extra_field":
            extra = "zz_" + draw(st.text(max_size=6))
            return Mutant(json.dumps({**frame, extra: draw(JSON_VALUES)}), how, None)
        case "deep":
            depth = draw(st.integers(boundedjson.MAX_DEPTH, 3000))
            deep = _nested(depth, draw(JSON_VALUES), draw(st.booleans()))
            return Mutant(_with_literal(frame, key, deep), how, bad_json)
        case "huge_number":
            digits = "1" + "0" * draw(st.integers(boundedjson.MAX_NUMBER_CHARS, 6000))
            tail = draw(st.sampled_from(["", ".5", "e3", ".25e-2"]))
            sign = draw(st.sampled_from(["", "-"]))
            return Mutant(_with_literal(frame, key, sign + digits + tail), how, bad_json)
        case "float_out_of_range":
            literal = draw(st.sampled_from(["1e999", "-1e400", "2.5e308"]))
            return Mutant(_with_literal(frame, key, literal), how, bad_json)
        case "constant":
            literal = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
            return Mutant(_with_literal(frame, key, literal), how, bad_json)
        case "lone_surrogate":
            code = draw(st.integers(0xD800, 0xDFFF))
            literal = f'"a\\u{code:04x}b"'
            return Mutant(_with_literal(frame, key, literal), how, bad_json)
        case "truncated":
            # No proper prefix of a JSON object is JSON: it lacks at least the closing brace.
            return Mutant(text[: draw(st.integers(0, len(text) - 1))], how, bad_json)
        case "not_object":
            return Mutant(json.dumps(draw(JSON_VALUES)), how, None)
        case "garbage":
            return Mutant(draw(st.text(max_size=40)), how, None)
        case _:
            return Mutant(text.encode(), how, "binary_frame")
