"""The node tree every driver's `screen_content` returns, and the selector `find` matches it by.

Each driver reads its own source (the browser's DOM, Android's UI hierarchy) into this one
shape, so a script's node handling is the same on every device kind.
"""

from __future__ import annotations

from typing import TypedDict

from pydantic import BaseModel, ConfigDict, model_validator


class Bounds(TypedDict):
    left: int
    top: int
    right: int
    bottom: int


class Node(TypedDict):
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


class NodeSelector(BaseModel):
    """Which nodes `find` and `wait_for_node` return: the visible nodes matching every field
    given. A driver's subclass says what each field means there and how ids and classes match."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    text_contains: str | None = None
    view_id: str | None = None
    class_name: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> NodeSelector:
        if not self.model_dump(exclude_none=True):
            raise ValueError(
                "give at least one of text, text_contains, view_id, class_name, description"
            )
        return self

    def same_view_id(self, value: str, wanted: str) -> bool:
        return value == wanted

    def same_class(self, value: str, wanted: str) -> bool:
        return value == wanted

    def matches(self, node: Node) -> bool:
        if not node["visible"]:
            return False
        if self.text is not None and node["text"] != self.text:
            return False
        if self.text_contains is not None and self.text_contains not in node["text"]:
            return False
        if self.view_id is not None and not self.same_view_id(node["view_id"], self.view_id):
            return False
        if self.class_name is not None and not self.same_class(node["class_name"], self.class_name):
            return False
        return self.description is None or node["description"] == self.description
