"""The nested parts of results (`inserted_ids[i]`, `tasks[id]`, nodes, device info): dicts whose
keys are also typed attributes.

A `Record` is a plain dict at run time (`r["planned_task_id"]`, `.get`, `json.dumps` and putting
it into submitted data all work as before) whose declared keys read as attributes too
(`r.planned_task_id`), typed for editors and mypy by the class's annotations. A declared key that
is absent reads as None; any other attribute raises AttributeError (with Python's "Did you
mean" hint). Records inside records (a node's `children`) are records as well.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import TYPE_CHECKING, Any, Union

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema


class Record(dict[str, Any]):
    """A dict whose declared keys are attributes too; see the module docstring."""

    __slots__ = ()

    @classmethod
    def of(cls, value: Any) -> Any:
        """`value` (a dict from the daemon) as this record, nested records converted; None and
        anything that is not a dict are returned as they are."""
        if not isinstance(value, dict):
            return value
        record = cls(value)
        for key, convert in _nested(cls).items():
            if key in record:
                record[key] = convert(record[key])
        return record

    if not TYPE_CHECKING:  # for mypy only the declared keys are attributes

        def __getattr__(self, name: str) -> Any:
            try:
                return self[name]
            except KeyError:
                if name in _declared(type(self)):
                    return None
                raise AttributeError(
                    f"{type(self).__name__!r} record has no key {name!r}", name=name, obj=self
                ) from None

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_declared(type(self)), *self})

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls.of,
            core_schema.dict_schema(core_schema.str_schema()),
            serialization=core_schema.plain_serializer_function_ser_schema(dict),
        )


@functools.cache
def _declared(cls: type[Record]) -> frozenset[str]:
    return frozenset(typing.get_type_hints(cls))


@functools.cache
def _nested(cls: type[Record]) -> dict[str, Any]:
    """Key -> how to convert its value, for the keys that hold records (or lists or dicts of)."""
    out = {}
    for key, hint in typing.get_type_hints(cls).items():
        convert = _converter(hint)
        if convert is not None:
            out[key] = convert
    return out


def _converter(hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.of
    if origin in (Union, types.UnionType):
        found = [c for c in map(_converter, args) if c is not None]
        return found[0] if found else None
    if origin is list and args:
        item = _converter(args[0])
        return None if item is None else _each(item)
    if origin is dict and len(args) == 2:
        value = _converter(args[1])
        return None if value is None else _values(value)
    return None


def _each(convert: Any) -> Any:
    return lambda v: [convert(x) for x in v] if isinstance(v, list) else v


def _values(convert: Any) -> Any:
    return lambda v: {k: convert(x) for k, x in v.items()} if isinstance(v, dict) else v


class InsertedId(Record):
    """One planned task `add_sub_tasks` made."""

    planned_task_id: str
    input: str
    """Its input, as a JSON string (as the original API gives it)."""


class SubTaskAssignment(Record):
    """Whether `add_sub_tasks(..., run_immediately=True)` gave the planned task to a device."""

    planned_task_id: str
    assigned: bool


class SubTask(Record):
    """One sub-task as `get_sub_tasks` reports it."""

    parent_task_id: str | None
    comment: str | None
    """Its failure reason, if any."""
    job_proof: Any
    """Its result (final data; its latest progress while it runs), or None."""
    timeout: float
    status: str
    """planned, running, confirmed, failed, declined or deleted."""
    job_task_id: str | None
    input: Any


class Bounds(Record):
    left: int
    top: int
    right: int
    bottom: int


class Node(Record):
    """One node of the screen (`screen_content`, `find`, `wait_for_node`)."""

    class_name: str
    package_name: str
    view_id: str
    text: str
    description: str
    hint_text: str
    clickable: bool
    enabled: bool
    focused: bool
    checked: bool
    scrollable: bool
    selected: bool
    visible: bool
    bounds: Bounds
    children: list[Node]


class DeviceInfo(Record):
    """`agent.info.get_device_info()`; a device kind may add keys."""

    id: str
    kind: str
    brand: str | None
    model: str | None
    sdk_version: int | None
    width: int | None
    height: int | None


class AutomationInfo(Record):
    """`agent.info.get_automation_info()`."""

    task_id: str
    job_id: str
    automation_id: str | None
    attempt: int
    timeout: float
    started_at: str
