"""The Android device driver: phones through the daemon's own adb server (adbutils) and
uiautomator2.

`attach_android` runs discovery and wires each phone (`AndroidDevice`) into the daemon's slots;
`AndroidSession.call` runs a task's actions (drivers/android/actions.py) in the phone's worker
thread. See docs/android.md.
"""

from drivers.android.attach import AndroidFleet, attach_android
from drivers.android.config import AndroidSettings
from drivers.android.device import AndroidDevice
from drivers.android.session import AndroidSession

__all__ = ["AndroidDevice", "AndroidFleet", "AndroidSession", "AndroidSettings", "attach_android"]
