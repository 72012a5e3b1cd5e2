"""The Android device driver: phones through the daemon's own adb server (adbutils) and
uiautomator2.

`attach_android` runs discovery and wires each phone (`AndroidDevice`) into the daemon's slots;
`AndroidSession.call` runs a task's actions (drivers/android/actions.py) in the phone's worker
thread. See docs/android.md.

The package imports nothing itself, so that reading the configuration (drivers/android/config.py)
does not load adbutils and uiautomator2: import each name from its module.
"""
