"""Configuration of the Android driver: the `[android]` section of the daemon's file."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class AndroidSettings(BaseModel):
    """The daemon's own adb server, the phones it connects to over TCP, and every time limit."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=False, description="Attach the host's Android phones.")
    adb_path: str | None = Field(
        default=None,
        description="The adb binary to run; unset: the adb bundled with adbutils.",
    )
    adb_port: int = Field(
        default=5037, ge=1, le=65535, description="Port of the daemon's adb server (127.0.0.1)."
    )
    connect: list[str] = Field(
        default_factory=list,
        description="host:port addresses to `adb connect` (phones over TCP, the simulated phone).",
    )
    serials: list[str] | None = Field(
        default=None,
        description="Attach only these serials; unset: every phone the adb server lists.",
    )
    call_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Longest one device call (tap, dump...) may take."
    )
    connect_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Longest the first uiautomator2 connection (jar push, server start) may take.",
    )
    health_interval_s: float = Field(
        default=5.0, gt=0, le=3600, description="Seconds between health probes of an idle phone."
    )
    reconnect_interval_s: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="Seconds between `adb connect` attempts to a configured address that is down.",
    )
    track_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="The device tracker re-lists at least this often (and after adb errors).",
    )
    debounce_s: float = Field(
        default=0.2,
        ge=0,
        le=60,
        description="Changes of a phone's adb state are acted on once stable this long.",
    )
    quarantine_initial_s: float = Field(
        default=30.0, gt=0, le=86400, description="First pause before retrying a quarantined phone."
    )
    quarantine_max_s: float = Field(
        default=600.0, gt=0, le=86400, description="Longest pause between quarantine retries."
    )
    reset_go_home: bool = Field(default=True, description="After each task, press home.")
    reset_stop_apps: bool = Field(
        default=True, description="After each task, force-stop the apps the task launched."
    )

    @field_validator("connect")
    @classmethod
    def _host_port(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{address!r} is not host:port")
        return addresses
