"""The faults a test can switch on in the simulated phone; read by the transport and services."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    latency: float = 0.0
    """Seconds every newly opened stream (every adb command, every uiautomator2 call) waits."""
    auth_required: bool = False
    """New adb connections are answered with AUTH, as a phone that asks to authorise the host."""
    uiautomation_held: bool = False
    """Another UiAutomation client holds the service: starting the uiautomator2 server fails
    with "already registered", as when a vendor tool or a second server grabbed it."""
