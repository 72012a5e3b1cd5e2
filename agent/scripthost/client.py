"""The child's end of the channel: calls to the daemon, matched to their replies by id."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from typing import Any

from agent.scriptrpc import (
    Call,
    CallError,
    ChannelError,
    Init,
    Ready,
    Reply,
    Report,
    ReportKind,
    encode,
    parse_daemon_message,
    read_frame,
)
from agent.sdk.errors import ActionFailed, AgentError

EXIT_CHANNEL_LOST = 70
"""Exit code when the daemon closed the channel (it is ending the task)."""


class RpcClient:
    """Implements agent.sdk.transport.Transport over the socketpair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._ids = itertools.count(1)
        # Held so the reader task is not garbage-collected while it runs (asyncio keeps only
        # weak references to tasks).
        self._reading: asyncio.Task[None] | None = None

    async def ready(self) -> None:
        self._writer.write(encode(Ready()))
        await self._writer.drain()

    async def receive_init(self) -> Init:
        obj = await read_frame(self._reader)
        message = parse_daemon_message(obj) if obj is not None else None
        if not isinstance(message, Init):
            raise ChannelError("the daemon did not start with init")
        return message

    def start(self) -> None:
        self._reading = asyncio.create_task(self._read_replies())

    async def _read_replies(self) -> None:
        try:
            while (obj := await read_frame(self._reader)) is not None:
                message = parse_daemon_message(obj)
                if isinstance(message, Reply):
                    waiter = self._pending.pop(message.id, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(message)
        except (ChannelError, ConnectionError):
            pass
        os._exit(EXIT_CHANNEL_LOST)

    async def _request(self, message: Call | Report) -> Reply:
        assert message.id is not None
        frame = encode(message)
        waiter: asyncio.Future[Reply] = self._loop.create_future()
        self._pending[message.id] = waiter
        try:
            self._writer.write(frame)
            await self._writer.drain()
            return await waiter
        finally:
            self._pending.pop(message.id, None)

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        try:
            message = Call(id=next(self._ids), method=method, params=params)
            reply = await self._request(message)
        except ValueError as exc:  # not JSON, or over the frame limit
            raise ValueError(f"{method}: the arguments cannot be sent: {exc}") from None
        if reply.ok:
            return reply.value
        raise _script_error(method, reply.error)

    def notify(self, method: str, params: dict[str, Any]) -> None:
        frame = encode(Call(id=None, method=method, params=params))
        if threading.get_ident() == self._loop_thread:
            self._writer.write(frame)
        else:
            self._loop.call_soon_threadsafe(self._writer.write, frame)

    async def report(
        self, kind: ReportKind, data: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        """Tell the daemon how main ended and wait until it has taken note."""
        await self._request(Report(id=next(self._ids), kind=kind, data=data, error=error))


def _script_error(method: str, error: CallError | None) -> Exception:
    if error is None:
        return AgentError(f"{method} failed")
    if error.kind == "action_failed":
        return ActionFailed(method.removeprefix("actions."), error.message)
    if error.kind == "value_error":
        return ValueError(error.message)
    if error.kind == "type_error":
        return TypeError(error.message)
    return AgentError(error.message)
