"""The device kinds `device-agent script run --device` offers, each as the daemon's device list.

Apart from agent/localrun.py so that the command line can list them without loading the
in-process coordinator and daemon.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.config import DevicesSettings
from drivers.browser.config import BrowserSlot

DeviceKinds = dict[str, Callable[[], DevicesSettings]]
DEVICE_KINDS: DeviceKinds = {
    "browser": lambda: DevicesSettings(browser=[BrowserSlot(name="local-browser")]),
}
"""`--device` choices: each makes the daemon's device list (one device); a new kind is one entry."""
