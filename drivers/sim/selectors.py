"""uiautomator2 selectors (UiSelector as JSON) matched against the view tree."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from drivers.sim.views import View

_STRUCTURE = ("mask", "childOrSibling", "childOrSiblingSelector", "instance")


class SelectorError(ValueError):
    """A selector field the sim does not know, or a value of the wrong type."""


def _full_match(pattern: str, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value, flags=re.DOTALL) is not None
    except re.error as exc:
        raise SelectorError(f"bad regular expression {pattern!r}: {exc}") from exc


def _index_of(view: View) -> int:
    return view.parent.children.index(view) if view.parent is not None else 0


_TESTS: dict[str, Callable[[View, Any], bool]] = {
    "text": lambda v, x: v.text == x,
    "textContains": lambda v, x: x in v.text,
    "textMatches": lambda v, x: _full_match(x, v.text),
    "textStartsWith": lambda v, x: v.text.startswith(x),
    "className": lambda v, x: v.cls == x,
    "classNameMatches": lambda v, x: _full_match(x, v.cls),
    "description": lambda v, x: v.description == x,
    "descriptionContains": lambda v, x: x in v.description,
    "descriptionMatches": lambda v, x: _full_match(x, v.description),
    "descriptionStartsWith": lambda v, x: v.description.startswith(x),
    "checkable": lambda v, x: v.checkable == bool(x),
    "checked": lambda v, x: v.checked == bool(x),
    "clickable": lambda v, x: v.clickable == bool(x),
    "longClickable": lambda v, x: v.long_clickable == bool(x),
    "scrollable": lambda v, x: v.scrollable == bool(x),
    "enabled": lambda v, x: v.enabled == bool(x),
    "focusable": lambda v, x: v.focusable == bool(x),
    "focused": lambda v, x: v.focused == bool(x),
    "selected": lambda v, x: v.selected == bool(x),
    "packageName": lambda v, x: v.package == x,
    "packageNameMatches": lambda v, x: _full_match(x, v.package),
    "resourceId": lambda v, x: v.resource_id == x,
    "resourceIdMatches": lambda v, x: _full_match(x, v.resource_id),
    "index": lambda v, x: _index_of(v) == int(x),
}


def _matches(view: View, selector: dict[str, Any]) -> bool:
    for name, value in selector.items():
        if name in _STRUCTURE:
            continue
        test = _TESTS.get(name)
        if test is None:
            raise SelectorError(f"unknown selector field {name!r}")
        if not test(view, value):
            return False
    return True


def _pick_instance(views: list[View], selector: dict[str, Any]) -> list[View]:
    if "instance" not in selector:
        return views
    instance = int(selector["instance"])
    return views[instance : instance + 1]


def find_all(root: View, selector: dict[str, Any]) -> list[View]:
    """Every view the selector matches, in document order (one view when it names an instance)."""
    if not isinstance(selector, dict):
        raise SelectorError("a selector must be an object")
    found = [view for view in root.walk() if _matches(view, selector)]
    relations = selector.get("childOrSibling") or []
    subs = selector.get("childOrSiblingSelector") or []
    if not relations:
        return _pick_instance(found, selector)
    for relation, sub in zip(relations, subs, strict=False):
        candidates: list[View] = []
        for anchor in found:
            if relation == "child":
                pool = [v for v in anchor.walk() if v is not anchor]
            elif relation == "sibling":
                pool = (
                    [v for v in anchor.parent.children if v is not anchor] if anchor.parent else []
                )
            else:
                raise SelectorError(f"unknown relation {relation!r}")
            candidates.extend(v for v in pool if _matches(v, sub) and v not in candidates)
        found = _pick_instance(candidates, sub)
    return found


def describe(selector: dict[str, Any]) -> str:
    fields = ", ".join(
        f"{name}={value!r}" for name, value in selector.items() if name not in _STRUCTURE[:3]
    )
    return f"UiSelector[{fields}]"
