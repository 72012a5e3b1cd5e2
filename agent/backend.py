"""The daemon's `JobBackend`: where a script's job API calls go.

Durable calls (`submit`, `dump`) are committed to the outbox first; the script then waits a
short, bounded time (`outbox.ack_wait_s`) for the coordinator's verdict, and is told
`queued: True` when the link is down or slow; one the outbox cannot store raises NotStored.
Calls that need an answer travel as requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from agent import protocol as p
from agent.hostapi import NotStored
from agent.link import Link, RequestFailed
from agent.outbox import Outbox, OutboxError
from agent.runner import BackendError


class CoordinatorBackend:
    def __init__(self, link: Link, outbox: Outbox, ack_wait_s: float) -> None:
        self._link = link
        self._outbox = outbox
        self._ack_wait_s = ack_wait_s

    async def submit(self, frame: p.Submit | p.Dump) -> dict[str, Any]:
        waiter = self._outbox.expect_ack(frame.key)
        try:
            try:
                await self._outbox.put(frame)
            except OutboxError as exc:
                raise NotStored(str(exc)) from None
            if not self._link.connected.is_set():
                return {"success": True, "queued": True}
            try:
                ack = await asyncio.wait_for(asyncio.shield(waiter), self._ack_wait_s)
            except TimeoutError:
                return {"success": True, "queued": True}
        finally:
            self._outbox.forget_ack(frame.key)
        if ack.ok:
            return {"success": True, **(ack.result or {})}
        return {"success": False, "error": ack.error or "the coordinator refused the submission"}

    async def request(self, task_id: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._link.request(task_id, method, params)
        except RequestFailed as exc:
            raise BackendError(str(exc)) from None
