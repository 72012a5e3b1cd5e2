"""The page's DOM as the node tree of `screen_content` (the same shape as Android's UI hierarchy),
and the selectors `find` / `wait_for_node` match against it.

The walk runs in the page and returns a flat JSON list (each node naming its parent), which
Python turns into the tree: a flat transfer cannot hit JSON nesting limits on deep pages. The walk
keeps at most `MAX_NODES` nodes, `MAX_DEPTH` levels and `MAX_TEXT` characters of text per node,
so a huge page cannot produce a huge result. Elements that are not rendered at all (display:
none, and everything under them) are left out; `visible` says whether a node is actually seen:
rendered, not transparent or hidden, with a size, and at least partly inside the viewport.
"""

from __future__ import annotations

import json
from typing import Any, cast

from pydantic import Field

from drivers import nodes
from drivers.nodes import Node

MAX_NODES = 5000
MAX_DEPTH = 200
MAX_TEXT = 10_000
SKIPPED_TAGS = ("script", "style", "head", "noscript", "template", "meta", "link")

# Runs in the page with [scale, maxNodes, maxDepth, maxText, skippedTags]; bounds are
# viewport coordinates times the device scale factor (device pixels, like tap's x and y).
WALK_JS = """
([scale, maxNodes, maxDepth, maxText, skipped]) => {
  const skip = new Set(skipped);
  const vw = window.innerWidth, vh = window.innerHeight;
  const active = document.activeElement;
  const clickTags = new Set(['button', 'select', 'textarea', 'summary', 'option']);
  const clickRoles = new Set(['button', 'link', 'checkbox', 'radio', 'tab', 'menuitem',
                              'switch', 'option', 'menuitemcheckbox', 'menuitemradio']);
  const nodes = [];
  let truncated = false;
  const squash = s => s.replace(/\\s+/g, ' ').trim().slice(0, maxText);
  const own = el => {
    const tag = el.localName;
    if (tag === 'input') {
      if (el.type === 'password') return '\\u2022'.repeat(el.value.length);
      return ['checkbox', 'radio', 'button', 'submit', 'reset'].includes(el.type)
        ? squash(el.value || '') : el.value.slice(0, maxText);
    }
    if (tag === 'textarea') return el.value.slice(0, maxText);
    if (tag === 'select') {
      return squash(el.selectedIndex >= 0 ? el.options[el.selectedIndex].text : '');
    }
    let t = '';
    for (const c of el.childNodes) if (c.nodeType === Node.TEXT_NODE) t += c.nodeValue;
    return squash(t);
  };
  const pointer = el => getComputedStyle(el).cursor === 'pointer';
  const clickable = (el, style) => {
    const tag = el.localName;
    if (clickTags.has(tag)) return true;
    if (tag === 'a' && el.hasAttribute('href')) return true;
    if (tag === 'input' && el.type !== 'hidden') return true;
    if (clickRoles.has(el.getAttribute('role'))) return true;
    if (el.hasAttribute('onclick') || typeof el.onclick === 'function') return true;
    // A pointer cursor marks a click target, but it is inherited: only its outermost element.
    return style.cursor === 'pointer' && !(el.parentElement && pointer(el.parentElement));
  };
  const scrollable = (el, style) => {
    if (el === document.scrollingElement) {
      return el.scrollHeight > el.clientHeight || el.scrollWidth > el.clientWidth;
    }
    const open = v => v === 'auto' || v === 'scroll';
    return (open(style.overflowY) && el.scrollHeight > el.clientHeight)
      || (open(style.overflowX) && el.scrollWidth > el.clientWidth);
  };
  const walk = (el, parent, depth) => {
    if (skip.has(el.localName)) return;
    if (nodes.length >= maxNodes || depth > maxDepth) { truncated = true; return; }
    if (!el.checkVisibility()) return;
    const style = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    const seen = el.checkVisibility({opacityProperty: true, visibilityProperty: true})
      && r.width > 0 && r.height > 0 && r.right > 0 && r.bottom > 0 && r.left < vw && r.top < vh;
    nodes.push({
      parent,
      class_name: el.localName,
      view_id: el.id || '',
      text: own(el),
      description: squash(el.getAttribute('aria-label') || el.getAttribute('alt')
                          || el.getAttribute('title') || ''),
      hint_text: squash(el.getAttribute('placeholder') || ''),
      clickable: clickable(el, style),
      enabled: !el.matches(':disabled') && el.getAttribute('aria-disabled') !== 'true',
      focused: el === active,
      checked: el.checked === true || el.getAttribute('aria-checked') === 'true',
      scrollable: scrollable(el, style),
      selected: el.selected === true || el.getAttribute('aria-selected') === 'true',
      visible: seen,
      bounds: {left: Math.round(r.left * scale), top: Math.round(r.top * scale),
               right: Math.round(r.right * scale), bottom: Math.round(r.bottom * scale)},
    });
    const me = nodes.length - 1;
    const kids = el.shadowRoot ? [...el.shadowRoot.children, ...el.children] : el.children;
    for (const child of kids) walk(child, me, depth + 1);
  };
  if (document.documentElement) walk(document.documentElement, -1, 0);
  return JSON.stringify({host: location.host, truncated, nodes});
}
"""


class Snapshot:
    """One walk of the page: its nodes in document order (each with its children filled in)."""

    def __init__(self, raw_json: str) -> None:
        raw: dict[str, Any] = json.loads(raw_json)
        self.truncated: bool = raw["truncated"]
        self.nodes: list[Node] = []
        for item in raw["nodes"]:
            parent: int = item.pop("parent")
            node = cast(Node, {**item, "package_name": raw["host"], "children": []})
            self.nodes.append(node)
            if parent >= 0:
                self.nodes[parent]["children"].append(node)

    @property
    def root(self) -> Node | None:
        return self.nodes[0] if self.nodes else None


class NodeSelector(nodes.NodeSelector):
    text: str | None = Field(default=None, description="The node's own text, exactly.")
    text_contains: str | None = Field(default=None, description="A part of the node's own text.")
    view_id: str | None = Field(default=None, description="The element's id attribute.")
    class_name: str | None = Field(default=None, description="The tag name, e.g. button.")
    description: str | None = Field(default=None, description="aria-label, alt or title.")

    def same_class(self, value: str, wanted: str) -> bool:
        return value == wanted.lower()

    def find(self, snapshot: Snapshot) -> list[Node]:
        """Matching nodes in document order, without their children (like u2's selectors)."""
        return [{**node, "children": []} for node in snapshot.nodes if self.matches(node)]
