"""Configuration of the browser driver: the `[browser]` section and each `[[devices.browser]]`."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class BrowserSettings(BaseModel):
    """The one Chromium shared by every browser device of the daemon, and its time limits."""

    model_config = ConfigDict(extra="forbid")

    executable: str = Field(
        default="/usr/bin/chromium", description="Path of the Chromium (or Chrome) binary to run."
    )
    headless: bool = Field(default=True, description="Run Chromium without a window.")
    launch_timeout_s: float = Field(
        default=30, gt=0, description="Longest wait for Chromium to start, in seconds."
    )
    action_timeout_s: float = Field(
        default=15,
        gt=0,
        description="Longest time one action (tap, screenshot, ...) may take, in seconds.",
    )
    navigation_timeout_s: float = Field(
        default=30,
        gt=0,
        description="Longest wait for a page load (browse, go_back, go_home), in seconds.",
    )
    profiles_dir: Path | None = Field(
        default=None,
        description="Where jobs' persistent browser profiles are kept (mode 0700); default: "
        "browser-profiles beside agent.state_file.",
    )


class BrowserSlot(BaseModel):
    """One browser device: a fixed-size headless tab that takes one task at a time."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        default="browser-1",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="The slot's stable local key (letters, digits, '-', '_', '.'), e.g. browser-1.",
    )
    viewport_width: int = Field(
        default=1280, ge=100, le=7680, description="Viewport width in CSS pixels."
    )
    viewport_height: int = Field(
        default=720, ge=100, le=4320, description="Viewport height in CSS pixels."
    )
    start_url: str = Field(
        default="about:blank", description="The page each task starts on; go_home returns to it."
    )
    device_scale_factor: float = Field(
        default=1.0,
        gt=0,
        le=4,
        description="Device pixels per CSS pixel; screen coordinates are in device pixels.",
    )
