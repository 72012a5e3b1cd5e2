"""The browser device driver: headless Chromium through Playwright.

`ChromiumHost` owns the one browser process of the daemon; each `BrowserDevice` (a configured
slot) opens a fresh context per task; `BrowserSession.call` runs the script's actions.
"""

from drivers.browser.config import BrowserSettings, BrowserSlot
from drivers.browser.device import BrowserDevice
from drivers.browser.host import BrowserUnavailable, ChromiumHost
from drivers.browser.session import BrowserSession

__all__ = [
    "BrowserDevice",
    "BrowserSession",
    "BrowserSettings",
    "BrowserSlot",
    "BrowserUnavailable",
    "ChromiumHost",
]
