"""`agent.info`, `agent.log`, `agent.control`, `agent.arguments`: the task's facts and the
script's own log lines and control."""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any, NoReturn

from agent.sdk.errors import StopAutomation
from agent.sdk.records import AutomationInfo, DeviceInfo
from agent.sdk.transport import Namespace, Transport


class Info(Namespace, path="agent.info"):
    __slots__ = ("_transport",)

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def get_device_info(self) -> DeviceInfo:
        """`{id, kind (android|browser|sim), brand, model, sdk_version, width, height, ...}`."""
        info: DeviceInfo = DeviceInfo.of(await self._transport.call("info.get_device_info", {}))
        return info

    async def get_automation_info(self) -> AutomationInfo:
        """`{task_id, job_id, automation_id, attempt, timeout, started_at}`."""
        raw = await self._transport.call("info.get_automation_info", {})
        info: AutomationInfo = AutomationInfo.of(raw)
        return info

    getDeviceInfo = get_device_info
    getAutomationInfo = get_automation_info


class Logged:
    """What a log call returns: nothing to wait for, but `await agent.log.info(...)` works too."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


class Log(Namespace):
    """Lines kept with the task's timeline. Plain calls (no await needed) from async or sync code;
    `fields` values that are not JSON are sent as their repr."""

    __slots__ = ("_transport",)

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _send(self, level: str, msg: object, fields: dict[str, Any]) -> Logged:
        self._transport.notify(
            "log", {"level": level, "message": str(msg), "fields": _plain_fields(fields)}
        )
        return Logged()

    def info(self, msg: object, **fields: Any) -> Logged:
        return self._send("info", msg, fields)

    def warning(self, msg: object, **fields: Any) -> Logged:
        return self._send("warning", msg, fields)

    def error(self, msg: object, **fields: Any) -> Logged:
        return self._send("error", msg, fields)


def _plain_fields(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        try:
            json.dumps(value, allow_nan=False)
            out[key] = value
        except (TypeError, ValueError):
            out[key] = repr(value)
    return out


class Control(Namespace):
    __slots__ = ()

    def stop_current_automation(self) -> NoReturn:
        """End the script now: the task ends as its last final `submit_task` said, or as success
        with no data if it made none."""
        raise StopAutomation

    stopCurrentAutomation = stop_current_automation


class Arguments(Namespace):
    __slots__ = ("automation_parameters", "job_variables")

    def __init__(
        self, job_variables: dict[str, Any], automation_parameters: dict[str, Any]
    ) -> None:
        self.job_variables = job_variables
        """The task's input (also `get_current_task().job_proof`)."""
        self.automation_parameters = automation_parameters
        """The job's parameters."""

    @property
    def jobVariables(self) -> dict[str, Any]:
        return self.job_variables

    @property
    def automationParameters(self) -> dict[str, Any]:
        return self.automation_parameters
