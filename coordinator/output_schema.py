"""A job's output schema: the JSON Schema (any draft `jsonschema` knows, by its `$schema`;
2020-12 without one) that the data of each of its successful tasks must match.

Checked when a job is made or changed (a bad schema is refused there, not at run time) and
when a task ends `success`: data that does not match ends it `failed`, reason
`output_invalid`, with the validation error (coordinator/task_end.py).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.protocols import Validator

OUTPUT_INVALID = "output_invalid"
"""Failure reason of a task whose final `success` data does not match its job's schema."""


def checked(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` if it is a valid JSON Schema; else ValueError saying what is wrong with it."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path)
        raise ValueError(
            f"not a valid JSON Schema: {exc.message}" + (f" (at {where})" if where else "")
        ) from None
    return schema


@lru_cache(maxsize=256)
def _validator(schema_text: str) -> Validator:
    # Building a validator parses the schema: done once per schema (jobs share few), not per task.
    schema = json.loads(schema_text)
    validator: Validator = jsonschema.validators.validator_for(schema)(schema)
    return validator


def mismatch(schema_text: str, data: Any) -> str | None:
    """Why `data` does not match the stored schema (JSON text), or None if it does."""
    error = best_match(_validator(schema_text).iter_errors(data))
    if error is None:
        return None
    where = "".join(f"[{json.dumps(part)}]" for part in error.absolute_path) or "the data"
    return f"output does not match the job's output_schema: {where}: {error.message}"
