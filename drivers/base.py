"""The one interface every device kind implements, and the errors drivers raise.

A `Device` is long-lived (one per configured browser slot or Android serial). For each task the
daemon opens a `DeviceSession`; every `agent.actions.*` call of the script becomes one
`DeviceSession.call(action, params)`. Closing the session resets the device for the next task.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from agent.protocol import DeviceKind, DeviceState
from drivers.browser.options import BrowserOptions


class ActionError(Exception):
    """An action that could not be done; the message goes back to the script as is."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action


class UnsupportedAction(ActionError):
    def __init__(self, action: str, kind: str) -> None:
        super().__init__(action, f"action '{action}' is not available on {kind} devices")


class DeviceLost(ActionError):
    """The device vanished while a task used it; the task ends failed with reason device_lost."""


class SessionSettings(BaseModel):
    """What a task asks of its session beyond the device's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    """Whose persistent browser profiles the session may use."""
    browser: BrowserOptions


class DeviceSession(ABC):
    """A device as one task sees it: opened before the script starts (or, for a device that
    opens ahead, before its task arrives), closed after it ends."""

    task_id: str
    """Whom the session serves, for the log: the task, or a label until a task takes it."""

    def bind(self, task_id: str) -> None:
        """A session opened ahead is taken by this task."""
        self.task_id = task_id

    def keep_files_in(  # noqa: B027 (an optional hook: most devices need nothing)
        self, folder: Path, owner: tuple[int, int] | None = None
    ) -> None:
        """Files the device side makes for the script (a browser's `save_file`) go in `folder`,
        the task's work dir, which the script sees as its current directory; `owner` (uid, gid)
        is given to each when the script runs under another account. Devices that keep such
        files elsewhere (a phone's /sdcard) ignore it."""

    def usable(self) -> bool:
        """Whether a session opened ahead can still serve a task (its device did not go away
        meanwhile); a session that cannot is closed and a fresh one opened."""
        return True

    @abstractmethod
    async def call(self, action: str, params: dict[str, Any]) -> Any:
        """Run one action; raise ActionError (or a subclass) with a clear message on failure.

        The result must be JSON-serialisable: it is sent back to the script as is.
        """

    @abstractmethod
    async def close(self) -> None:
        """End the task's use of the device and reset it; never raises."""


class Device(ABC):
    kind: DeviceKind
    slot: str
    """Stable local key (browser slot name, Android serial) mapped to a remote_device_id."""
    open_ahead: bool = False
    """Whether the next task's session is opened while the device is idle: for devices whose
    session costs time to open. A session held open counts as in use (no idle health probe)."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def open_session(
        self, task_id: str, settings: SessionSettings | None = None
    ) -> DeviceSession:
        """A session for the task; `settings` it cannot honour are an ActionError saying so."""

    @abstractmethod
    def state(self) -> DeviceState: ...

    @abstractmethod
    def properties(self) -> dict[str, Any]:
        """Static facts shown to the coordinator and to `agent.info.get_device_info()`."""

    @abstractmethod
    async def stop(self) -> None: ...

    def recovery_steps(self) -> Mapping[str, int]:
        """How often each recovery step was tried on this device (drivers without a recovery
        ladder: none). The daemon exports them as a metric."""
        return {}
