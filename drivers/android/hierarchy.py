"""The UI hierarchy uiautomator dumps (XML) as the node tree of `screen_content`, the same shape
the browser driver gives for a page, and the selectors `find` / `wait_for_node` match against it.

The XML comes from the device, so it is treated as untrusted: a dump that does not parse, has no
nodes where it should, or carries odd attribute values is refused with a `HierarchyError` naming
the problem (never a half-read tree), and the tree is capped at `MAX_NODES` nodes.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import cast

from pydantic import Field

from drivers import nodes
from drivers.nodes import Bounds, Node

MAX_NODES = 5000
MAX_XML_BYTES = 20 * 1024 * 1024
_BOUNDS = re.compile(r"\[(-?\d+),(-?\d+)\]\[(-?\d+),(-?\d+)\]")
_FLAGS = {
    "clickable": "clickable",
    "enabled": "enabled",
    "focused": "focused",
    "checked": "checked",
    "scrollable": "scrollable",
    "selected": "selected",
}


class HierarchyError(ValueError):
    """The device's hierarchy dump cannot be read; the message says why."""


class Snapshot:
    """One dump of the screen: its nodes in document order (each with its children filled in)."""

    def __init__(self, xml: str, width: int, height: int) -> None:
        if len(xml) > MAX_XML_BYTES:
            raise HierarchyError(f"the hierarchy dump is too large ({len(xml)} characters)")
        try:
            root = ET.fromstring(xml.encode("utf-8"))
        except ET.ParseError as exc:
            raise HierarchyError(f"the device's UI hierarchy is not valid XML ({exc})") from None
        if root.tag != "hierarchy":
            raise HierarchyError(f"the hierarchy dump starts with <{root.tag}>, not <hierarchy>")
        self.nodes: list[Node] = []
        self.truncated = False
        tops = [self._walk(child) for child in root if child.tag == "node"]
        windows = [node for node in tops if node is not None]
        if len(windows) <= 1:
            self.root: Node | None = windows[0] if windows else None
        else:
            # Several windows (an app and a dialog, say): one root holding them, like a page.
            self.root = _node("hierarchy", "", {}, (0, 0, width, height))
            self.root["children"] = windows

    def _walk(self, element: ET.Element) -> Node | None:
        if len(self.nodes) >= MAX_NODES:
            self.truncated = True
            return None
        node = _from_element(element)
        self.nodes.append(node)
        for child in element:
            if child.tag == "node":
                kid = self._walk(child)
                if kid is not None:
                    node["children"].append(kid)
        return node


def _bool(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value == "true"


def _parse_bounds(text: str | None) -> tuple[int, int, int, int]:
    match = _BOUNDS.fullmatch(text or "")
    if match is None:
        raise HierarchyError(f"a node has bounds {text!r}, not [left,top][right,bottom]")
    left, top, right, bottom = (int(v) for v in match.groups())
    return left, top, right, bottom


def _node(
    class_name: str, package: str, attrs: dict[str, str], bounds: tuple[int, int, int, int]
) -> Node:
    left, top, right, bottom = bounds
    node = {
        "class_name": class_name,
        "package_name": package,
        "view_id": attrs.get("resource-id", ""),
        "text": attrs.get("text", ""),
        "description": attrs.get("content-desc", ""),
        "hint_text": attrs.get("hint", ""),
        **{name: _bool(attrs.get(attr), name == "enabled") for name, attr in _FLAGS.items()},
        "visible": _bool(attrs.get("visible-to-user"), True),
        "bounds": cast(Bounds, {"left": left, "top": top, "right": right, "bottom": bottom}),
        "children": [],
    }
    return cast(Node, node)


def _from_element(element: ET.Element) -> Node:
    attrs = dict(element.attrib)
    return _node(
        attrs.get("class", ""), attrs.get("package", ""), attrs, _parse_bounds(attrs.get("bounds"))
    )


class NodeSelector(nodes.NodeSelector):
    text: str | None = Field(default=None, description="The node's text, exactly.")
    text_contains: str | None = Field(default=None, description="A part of the node's text.")
    view_id: str | None = Field(
        default=None,
        description="The resource id, whole (com.app:id/login) or its last part (login).",
    )
    class_name: str | None = Field(
        default=None,
        description="The view class, whole (android.widget.Button) or short (Button).",
    )
    description: str | None = Field(default=None, description="The content description.")

    def same_view_id(self, value: str, wanted: str) -> bool:
        return _named(value, wanted, ":id/")

    def same_class(self, value: str, wanted: str) -> bool:
        return _named(value, wanted, ".")

    def find(self, snapshot: Snapshot) -> list[Node]:
        """Matching nodes in document order, without their children (like u2's selectors)."""
        return [{**node, "children": []} for node in snapshot.nodes if self.matches(node)]


def _named(value: str, wanted: str, separator: str) -> bool:
    return value == wanted or value.endswith(separator + wanted)
