"""The daemon's configuration: one TOML file, overridden by environment variables, validated.

Precedence: environment > file > default. An environment variable
`DEVICE_AGENT__<SECTION>__<KEY>` (upper case, double underscores) overrides `[section] key`,
for example `DEVICE_AGENT__COORDINATOR__TOKEN`. Arrays of tables (`[[devices.browser]]`) are
only set in the file. Any problem is a `ConfigError` naming the file, the key and the reason;
the CLI turns it into exit code 2 before anything connects.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.logsetup import LogFormat
from agent.outbox import OutboxSettings
from agent.script_settings import ScriptSettings
from drivers.android.config import AndroidSettings
from drivers.browser.config import BrowserSettings, BrowserSlot

ENV_PREFIX = "DEVICE_AGENT__"


class ConfigError(Exception):
    """A configuration that cannot be used; str() is the message for the operator."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentSettings(_Section):
    host_id: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=128,
        description="This host's id at the coordinator; the token must be made for it.",
    )
    state_file: Path = Field(
        default=Path("/var/lib/device-agent/state.db"),
        description="SQLite file holding the devices' remote_device_ids (and the outbox).",
    )
    log_level: str = Field(default="info", pattern="^(debug|info|warning|error)$")
    log_format: LogFormat = Field(
        default="text",
        description="`text` lines, or `json`: one object per line with the task id and host.",
    )
    drain_timeout_s: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="How long a stop lets running tasks finish before it ends them.",
    )
    stop_delivery_s: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description="How long a stop waits for the coordinator to acknowledge the tasks' ends.",
    )


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1: traffic that never leaves this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _in_clear_off_host(url: str) -> bool:
    return url.startswith("ws://") and not is_loopback(urlsplit(url).hostname or "")


class CoordinatorSettings(_Section):
    # Declared before `url`, whose validator reads it.
    allow_insecure: bool = Field(
        default=False,
        description="Allow ws:// (no TLS) to a coordinator that is not on this machine.",
    )
    url: str | list[str] = Field(
        default="ws://127.0.0.1:8765/ws/host",
        description="The coordinator's host websocket (ws:// or wss://), or a list of them (the "
        "replicas of one coordinator: the link stays on the one it reached and moves to the next "
        "when that one fails).",
    )
    token: str = Field(default="", repr=False, description="Host token; prefer token_file.")
    token_file: Path | None = Field(default=None, description="File holding the host token.")
    ca_file: Path | None = Field(
        default=None,
        description="PEM CA bundle that verifies a wss:// coordinator; unset: the system's CAs.",
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    backoff_initial_s: float = Field(default=1.0, gt=0, le=60)
    backoff_max_s: float = Field(default=60.0, gt=0, le=3600)
    request_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="How long a script call waits for the link."
    )

    @field_validator("url")
    @classmethod
    def _websocket_url(cls, value: str | list[str], info: ValidationInfo) -> str | list[str]:
        urls = [value] if isinstance(value, str) else value
        if not urls:
            raise ValueError("give at least one URL")
        for url in urls:
            if not url.startswith(("ws://", "wss://")):
                raise ValueError(f"{url!r} must start with ws:// or wss://")
            if _in_clear_off_host(url) and not info.data.get("allow_insecure", False):
                raise ValueError(
                    f"ws:// to {urlsplit(url).hostname} would send the host token and every "
                    "frame in clear: use wss://, or set coordinator.allow_insecure = true"
                )
        return value

    @property
    def urls(self) -> list[str]:
        """`url` as a list (one entry unless replicas are listed)."""
        return [self.url] if isinstance(self.url, str) else list(self.url)

    @field_validator("ca_file")
    @classmethod
    def _loadable_ca(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                ssl.create_default_context(cafile=value)
            except OSError as exc:  # ssl.SSLError (not PEM) is an OSError too
                raise ValueError(f"cannot load {value} as a PEM CA bundle: {exc}") from None
        return value

    def insecure(self, url: str) -> bool:
        """True when a link to `url` has no TLS and leaves this machine (allow_insecure)."""
        return _in_clear_off_host(url)

    def read_token(self) -> str:
        """The token from `token`, else from `token_file`; raises ConfigError if neither, or if
        the file is open to its group or others (as ssh refuses such a private key)."""
        if self.token:
            return self.token
        if self.token_file is None:
            raise ConfigError("key `coordinator.token`: no token (set token_file or token)")
        try:
            with self.token_file.open() as fh:
                mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
                token = fh.read().strip()
        except OSError as exc:
            raise ConfigError(
                f"key `coordinator.token_file`: cannot read {self.token_file}: {exc.strerror}"
            ) from None
        if mode & 0o077:
            raise ConfigError(
                f"key `coordinator.token_file`: {self.token_file} has mode {mode:04o}; "
                f"it must not be open to group or others (chmod 600 {self.token_file})"
            )
        if not token:
            raise ConfigError(f"key `coordinator.token_file`: {self.token_file} is empty")
        return token

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of the wss:// links: ca_file's CAs, else the system's; None if every
        URL is ws://."""
        if not any(url.startswith("wss://") for url in self.urls):
            return None
        return ssl.create_default_context(cafile=self.ca_file)


class DevicesSettings(_Section):
    browser: list[BrowserSlot] = Field(default_factory=list)

    @field_validator("browser")
    @classmethod
    def _unique_names(cls, slots: list[BrowserSlot]) -> list[BrowserSlot]:
        names = [s.name for s in slots]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"browser slot names must be unique: {', '.join(duplicates)}")
        return slots


class MetricsSettings(_Section):
    """The daemon's Prometheus endpoint (agent/metrics.py)."""

    enabled: bool = Field(default=False, description="Serve Prometheus metrics over HTTP.")
    listen: str = Field(
        default="127.0.0.1:9464",
        description="HOST:PORT of the metrics endpoint (loopback by default: no auth).",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not HOST:PORT")
        return value

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class AgentConfig(_Section):
    agent: AgentSettings = Field(default_factory=AgentSettings)
    coordinator: CoordinatorSettings = Field(default_factory=CoordinatorSettings)
    scripts: ScriptSettings = Field(default_factory=ScriptSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    browser: BrowserSettings = Field(default_factory=BrowserSettings)
    android: AndroidSettings = Field(default_factory=AndroidSettings)
    devices: DevicesSettings = Field(default_factory=DevicesSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @model_validator(mode="after")
    def _profiles_beside_state(self) -> AgentConfig:
        # The profiles are the daemon's state: kept with it unless the operator says otherwise.
        if self.browser.profiles_dir is None:
            where = self.agent.state_file.parent / "browser-profiles"
            self.browser = self.browser.model_copy(update={"profiles_dir": where})
        return self


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Merge the overrides into `data`; returns which variable set each (section, key)."""
    sources: dict[tuple[str, ...], str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"environment {name}: expected {ENV_PREFIX}<SECTION>__<KEY>")
        section, key = parts
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"environment {name}: [{section}] is not a table")
        target[key] = value
        sources[(section, key)] = name
    return sources


def load_config(path: Path, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Read, merge and validate the configuration; every failure is a ConfigError."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    sources = _apply_env(data, os.environ if env is None else env)
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            # A bad value set by a variable is the variable's fault, not the file's.
            where = f"environment {sources[loc[:2]]}" if loc[:2] in sources else str(path)
            lines.append(f"{where}: key `{'.'.join(loc)}`: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
