"""The CPU the browser under a process used, from /proc: Chromium and Playwright's driver.

Counts, for each live process of a subtree rooted at Chromium or the driver below `root`, its
own user + system time and that of the children it has already reaped (renderers that ended).
"""

from __future__ import annotations

import os
from pathlib import Path

_BROWSER_COMMANDS = ("chromium", "chrome", "headless_shell", "node")
_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def browser_cpu_s(root: int) -> float:
    """CPU seconds used so far by the browser processes under `root`."""
    children: dict[int, list[int]] = {}
    used: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended while we looked: its parent has it now
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        # proc(5): ppid is field 4, utime..cstime are fields 14 to 17 (here from field 3 on).
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        used[int(entry.name)] = (name, sum(int(f) for f in fields[11:15]) * _TICK_S)
    browser = 0.0
    stack = [(root, False)]
    while stack:
        pid, in_browser = stack.pop()
        name, seconds = used.get(pid, ("", 0.0))
        in_browser = in_browser or name.startswith(_BROWSER_COMMANDS)
        browser += seconds if in_browser else 0.0
        stack += [(child, in_browser) for child in children.get(pid, [])]
    return browser
