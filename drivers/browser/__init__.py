"""The browser device driver: headless Chromium through Playwright.

`ChromiumHost` owns the one browser process of the daemon; each `BrowserDevice` (a configured
slot) opens a fresh context per task; `BrowserSession.call` runs the script's actions.

The package imports nothing itself, so that reading the configuration (drivers/browser/config.py)
does not load Playwright: import each name from its module.
"""
