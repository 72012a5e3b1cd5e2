"""An action table: each action's name, its params model and its function, filled by decorator.

Each driver keeps one (`drivers/browser/actions.py`, `drivers/android/actions.py`): adding an
action is one function and its params model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from drivers.base import ActionError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Action:
    params: type[BaseModel]
    run: Callable[..., Any]


class ActionTable:
    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}

    def prepare(self, name: str, params: dict[str, Any]) -> tuple[Action, BaseModel]:
        """The action and its checked params; ActionError naming what the script got wrong."""
        entry = self._actions.get(name)
        if entry is None:
            raise ActionError(name, f"unknown action '{name}'")
        try:
            return entry, entry.params.model_validate(params)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'params'}: {error['msg']}"
                for error in exc.errors()
            )
            raise ActionError(name, f"bad params: {problems}") from exc

    def action(self, name: str, params: type[BaseModel]) -> Callable[[F], F]:
        """Register the decorated function as action `name`, its arguments checked by `params`."""

        def register(run: F) -> F:
            self._actions[name] = Action(params, run)
            return run

        return register
