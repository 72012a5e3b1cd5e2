"""What a timed-out browser action was waiting for, and why it may never come, for the script.

Playwright's own timeout message is `Timeout 30000ms exceeded.` followed by a call log
(`waiting for locator("#x")`, `locator resolved to <input ...>`, `element is not visible`, ...).
`describe_timeout` turns that log into one sentence: what was awaited, whether anything matched,
and the likely reasons it never became ready.
"""

from __future__ import annotations

import re

from playwright.async_api import TimeoutError as PlaywrightTimeout

_TIMEOUT = re.compile(r"Timeout (\d+)ms exceeded")
_RESOLVED = re.compile(r"locator resolved to (.*)")
_BLOCKER = re.compile(r"^element is|intercepts pointer events")
"""Call log lines that say why a matched element is not ready (not visible, not enabled, ...)."""


def describe_timeout(exc: PlaywrightTimeout) -> str:
    """One line for the script: `timed out after N ms waiting for ...: <why>`."""
    text = str(exc)
    head, _, log = text.partition("Call log:")
    found = _TIMEOUT.search(head)
    after = f"timed out after {found.group(1)} ms" if found else "timed out"
    steps = [line.strip().lstrip("-").strip() for line in log.splitlines() if line.strip()]
    if not steps:
        return f"{after}: the page did not answer (it may be busy running a script or stuck)"
    first = steps[0]
    if first.startswith("navigating to"):
        return (
            f"{after} {first}: the page did not finish loading (a slow or unreachable server, "
            "or a request that never ends); a longer navigation timeout may help"
        )
    if not first.startswith("waiting for"):
        return f"{after} at {first!r}: the page never got there"
    matched = [m for m in (_RESOLVED.search(s) for s in steps) if m is not None]
    if not matched:
        return (
            f"{after} {first}: nothing on the page matches it; check the selector, or that "
            "the page showing it has loaded (wait_for_node waits for it)"
        )
    element = matched[-1].group(1)
    blockers = [s for s in steps if _BLOCKER.search(s)]
    why = (
        f" (last seen: {blockers[-1]})"
        if blockers
        else " (hidden, disabled, moving, covered by another element, or of the wrong kind)"
    )
    return f"{after} {first}: it matched {element}, which never became ready for this action{why}"
