"""A simulated Android phone speaking the real adb transport and uiautomator2 server protocols.

Start a `SimPhone`, `adb connect` its serial, and drive it with adbutils and uiautomator2 as a
real phone; the fault hooks on `SimPhone` reproduce the failures real phones have.
"""

from drivers.sim.phone import SimPhone, SimPhoneError, free_port

__all__ = ["SimPhone", "SimPhoneError", "free_port"]
