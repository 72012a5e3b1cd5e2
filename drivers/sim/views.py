"""The view tree an app shows: what is drawn, hit-tested, dumped as XML and matched by selectors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

Bounds = tuple[int, int, int, int]
Color = tuple[int, int, int]

EDIT_TEXT = "android.widget.EditText"
BUTTON = "android.widget.Button"
TEXT_VIEW = "android.widget.TextView"
FRAME = "android.widget.FrameLayout"
LINEAR = "android.widget.LinearLayout"
RECYCLER = "androidx.recyclerview.widget.RecyclerView"
SWITCH = "android.widget.Switch"

XML_HEADER = "<?xml version='1.0' encoding='UTF-8' standalone='yes' ?>\r\n"


@dataclass
class View:
    cls: str
    bounds: Bounds
    key: str = ""
    """What the app calls this view when it is clicked; empty for views that do nothing."""
    resource_id: str = ""
    text: str = ""
    description: str = ""
    hint: str = ""
    clickable: bool = False
    long_clickable: bool = False
    checkable: bool = False
    checked: bool = False
    enabled: bool = True
    focusable: bool = False
    focused: bool = False
    scrollable: bool = False
    password: bool = False
    selected: bool = False
    background: Color | None = None
    text_color: Color = (33, 33, 33)
    font_size: int = 28
    children: list[View] = field(default_factory=list)
    package: str = ""
    parent: View | None = field(default=None, repr=False, compare=False)

    @property
    def editable(self) -> bool:
        return self.cls == EDIT_TEXT

    def walk(self) -> Iterator[View]:
        """This view and its descendants, in document order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def contains(self, x: float, y: float) -> bool:
        left, top, right, bottom = self.bounds
        return left <= x < right and top <= y < bottom

    def info(self) -> dict[str, Any]:
        """The view as uiautomator2's objInfo reports it."""
        left, top, right, bottom = self.bounds
        rect = {"left": left, "top": top, "right": right, "bottom": bottom}
        return {
            "bounds": rect,
            "visibleBounds": dict(rect),
            "childCount": len(self.children),
            "className": self.cls,
            "contentDescription": self.description or None,
            "packageName": self.package,
            "resourceName": self.resource_id or None,
            "text": self.text,
            "checkable": self.checkable,
            "checked": self.checked,
            "clickable": self.clickable,
            "enabled": self.enabled,
            "focusable": self.focusable,
            "focused": self.focused,
            "longClickable": self.long_clickable,
            "scrollable": self.scrollable,
            "selected": self.selected,
        }


def finish_tree(root: View, package: str) -> View:
    """Set package and parent links on every view of a freshly built tree."""
    root.parent = None
    for view in root.walk():
        view.package = package
        for child in view.children:
            child.parent = view
    return root


def hit_test(root: View, x: float, y: float) -> View | None:
    """The innermost clickable or editable view under the point."""
    found: View | None = None
    for view in root.walk():
        if view.contains(x, y) and view.enabled and (view.clickable or view.editable):
            found = view
    return found


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _node_xml(view: View, index: int, depth: int, max_depth: int, out: list[str]) -> None:
    left, top, right, bottom = view.bounds
    attrs = [
        ("index", str(index)),
        ("text", view.text),
        ("resource-id", view.resource_id),
        ("class", view.cls),
        ("package", view.package),
        ("content-desc", view.description),
        ("checkable", _bool(view.checkable)),
        ("checked", _bool(view.checked)),
        ("clickable", _bool(view.clickable)),
        ("enabled", _bool(view.enabled)),
        ("focusable", _bool(view.focusable)),
        ("focused", _bool(view.focused)),
        ("scrollable", _bool(view.scrollable)),
        ("long-clickable", _bool(view.long_clickable)),
        ("password", _bool(view.password)),
        ("selected", _bool(view.selected)),
        ("visible-to-user", "true"),
        ("bounds", f"[{left},{top}][{right},{bottom}]"),
        ("hint", view.hint),
    ]
    indent = "  " * depth
    opening = indent + "<node " + " ".join(f"{name}={quoteattr(value)}" for name, value in attrs)
    if not view.children or depth >= max_depth:
        out.append(opening + " />")
        return
    out.append(opening + ">")
    for child_index, child in enumerate(view.children):
        _node_xml(child, child_index, depth + 1, max_depth, out)
    out.append(indent + "</node>")


def hierarchy_xml(root: View, max_depth: int = 50) -> str:
    """The tree in the XML format uiautomator's dumpWindowHierarchy returns."""
    lines: list[str] = ['<hierarchy rotation="0">']
    _node_xml(root, 0, 1, max(1, max_depth), lines)
    lines.append("</hierarchy>")
    return XML_HEADER + "\n".join(lines)
