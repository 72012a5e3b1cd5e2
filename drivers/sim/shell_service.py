"""The `shell:`/`exec:` (raw) and `shell,v2,...:` (framed) services around the interpreter.

Raw: stdout and stderr go out as they are and the stream closes at the end. v2: every chunk is
framed (id byte, little-endian length, data: 1 stdout, 2 stderr, 3 exit status), the host frames
stdin (0) and close-stdin (4). An empty command is an interactive shell reading lines from stdin.
If the host closes the stream, the running command is cancelled (that is how the uiautomator2
server's `app_process` ends when its client lets go).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable

from drivers.sim.commands import COMMANDS
from drivers.sim.shell import Interpreter, Writer
from drivers.sim.state import PhoneState
from drivers.sim.transport import Stream, StreamClosed

STDIN, STDOUT, STDERR, EXIT, CLOSE_STDIN, WINDOW_SIZE = range(6)
_FRAME = struct.Struct("<BI")


def frame(kind: int, data: bytes) -> bytes:
    return _FRAME.pack(kind, len(data)) + data


async def _until_closed(stream: Stream, work: Awaitable[int]) -> int | None:
    """Run the work; cancel it if the host closes the stream first (then None)."""
    task = asyncio.ensure_future(work)
    closed = asyncio.ensure_future(stream.wait_closed())
    try:
        await asyncio.wait({task, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closed.cancel()
        if not task.done():
            task.cancel()
    with contextlib.suppress(asyncio.CancelledError, StreamClosed):
        return await task
    return None


async def _raw_stdin(stream: Stream) -> AsyncIterator[bytes]:
    while chunk := await stream.read():
        yield chunk


async def _v2_stdin(stream: Stream) -> AsyncIterator[bytes]:
    while True:
        try:
            kind, length = _FRAME.unpack(await stream.read_exactly(_FRAME.size))
            data = await stream.read_exactly(length)
        except StreamClosed:
            return
        if kind == CLOSE_STDIN:
            return
        if kind == STDIN:
            yield data


async def _interactive(
    interp: Interpreter, stdin: AsyncIterator[bytes], out: Writer, err: Writer
) -> int:
    pending = b""
    async for chunk in stdin:
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            text = line.decode("utf-8", "replace").strip()
            if text == "exit":
                return interp.status
            if text:
                await interp.run(text, out, err)
    if pending.strip():
        await interp.run(pending.decode("utf-8", "replace"), out, err)
    return interp.status


async def serve_raw_shell(stream: Stream, state: PhoneState, command: str) -> None:
    interp = Interpreter(state, COMMANDS)
    if command.strip():
        await _until_closed(stream, interp.run(command, stream.write, stream.write))
    else:
        await _interactive(interp, _raw_stdin(stream), stream.write, stream.write)


async def serve_v2_shell(stream: Stream, state: PhoneState, command: str) -> None:
    interp = Interpreter(state, COMMANDS)

    async def out(data: bytes) -> None:
        await stream.write(frame(STDOUT, data))

    async def err(data: bytes) -> None:
        await stream.write(frame(STDERR, data))

    if command.strip():
        status = await _until_closed(stream, interp.run(command, out, err))
    else:
        status = await _interactive(interp, _v2_stdin(stream), out, err)
    if status is not None and not stream.closed:
        await stream.write(frame(EXIT, bytes([status & 0xFF])))
