"""The daemon's configuration: one TOML file, overridden by environment variables, validated.

Precedence: environment > file > default. An environment variable
`DEVICE_AGENT__<SECTION>__<KEY>` (upper case, double underscores) overrides `[section] key`,
for example `DEVICE_AGENT__COORDINATOR__TOKEN`. Arrays of tables (`[[devices.browser]]`) are
only set in the file. Any problem is a `ConfigError` naming the file, the key and the reason;
the CLI turns it into exit code 2 before anything connects.
"""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.outbox import OutboxSettings
from agent.runner import ScriptSettings
from drivers.android.config import AndroidSettings
from drivers.browser import BrowserSettings, BrowserSlot

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


class CoordinatorSettings(_Section):
    url: str = Field(
        default="ws://127.0.0.1:8765/ws/host",
        description="The coordinator's host websocket (ws:// or wss://).",
    )
    token: str = Field(default="", repr=False, description="Host token; prefer token_file.")
    token_file: Path | None = Field(default=None, description="File holding the host token.")
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    backoff_initial_s: float = Field(default=1.0, gt=0, le=60)
    backoff_max_s: float = Field(default=60.0, gt=0, le=3600)
    request_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="How long a script call waits for the link."
    )

    @field_validator("url")
    @classmethod
    def _websocket_url(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value

    def read_token(self) -> str:
        """The token from `token`, else from `token_file`; raises ConfigError if neither."""
        if self.token:
            return self.token
        if self.token_file is None:
            raise ConfigError("key `coordinator.token`: no token (set token_file or token)")
        try:
            token = self.token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"key `coordinator.token_file`: cannot read {self.token_file}: {exc.strerror}"
            ) from None
        if not token:
            raise ConfigError(f"key `coordinator.token_file`: {self.token_file} is empty")
        return token


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


class AgentConfig(_Section):
    agent: AgentSettings = Field(default_factory=AgentSettings)
    coordinator: CoordinatorSettings = Field(default_factory=CoordinatorSettings)
    scripts: ScriptSettings = Field(default_factory=ScriptSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    browser: BrowserSettings = Field(default_factory=BrowserSettings)
    android: AndroidSettings = Field(default_factory=AndroidSettings)
    devices: DevicesSettings = Field(default_factory=DevicesSettings)


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
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
    _apply_env(data, os.environ if env is None else env)
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{path}: key `{'.'.join(str(p) for p in err['loc'])}`: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError("\n".join(lines)) from None
