"""The daemon's `JobBackend`: where a script's job API calls go, on top of the coordinator link."""

from __future__ import annotations

from typing import Any

from agent import protocol as p
from agent.link import Link, RequestFailed
from agent.runner import BackendError


class CoordinatorBackend:
    def __init__(self, link: Link) -> None:
        self._link = link

    async def submit(self, frame: p.Submit) -> dict[str, Any]:
        try:
            ack = await self._link.submit(frame)
        except TimeoutError:
            return {"success": False, "error": "the coordinator did not acknowledge in time"}
        if ack.ok:
            return {"success": True}
        return {"success": False, "error": ack.error or "the coordinator refused the submission"}

    async def request(self, task_id: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._link.request(task_id, method, params)
        except RequestFailed as exc:
            raise BackendError(str(exc)) from None
