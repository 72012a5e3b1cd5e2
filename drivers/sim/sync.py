"""The `sync:` service, version 1: STAT, LIST, SEND, RECV and QUIT over the in-memory filesystem.

Every request is an id, a little-endian length and that many bytes; requests and SEND's DATA
chunks may straddle adb packets, so everything is read through the stream's buffer.
"""

from __future__ import annotations

import struct

from drivers.sim.fs import FSError, MemoryFS
from drivers.sim.transport import Stream

MAX_PATH = 1024
MAX_CHUNK = 64 * 1024
_U32 = struct.Struct("<I")


def _fail(message: str) -> bytes:
    data = message.encode()
    return b"FAIL" + _U32.pack(len(data)) + data


async def serve_sync(stream: Stream, fs: MemoryFS) -> None:
    while True:
        header = await stream.read_exactly(8)
        request, length = header[:4], _U32.unpack(header[4:])[0]
        if request == b"QUIT":
            return
        if length > MAX_PATH:
            await stream.write(_fail(f"path of {length} bytes is too long"))
            return
        path = (await stream.read_exactly(length)).decode("utf-8", "replace")
        if request == b"STAT":
            await _stat(stream, fs, path)
        elif request == b"LIST":
            await _list(stream, fs, path)
        elif request == b"SEND":
            if not await _send(stream, fs, path):
                return
        elif request == b"RECV":
            await _recv(stream, fs, path)
        else:
            await stream.write(_fail(f"unknown sync request {request!r}"))
            return


async def _stat(stream: Stream, fs: MemoryFS, path: str) -> None:
    entry = fs.stat(path)
    if entry is None:
        await stream.write(b"STAT" + struct.pack("<III", 0, 0, 0))
    else:
        await stream.write(b"STAT" + struct.pack("<III", entry.mode, entry.size, entry.mtime))


async def _list(stream: Stream, fs: MemoryFS, path: str) -> None:
    out = bytearray()
    entry = fs.stat(path)
    if entry is not None and entry.is_dir:
        parent = fs.stat(path + "/..") or entry
        for name, child in [(".", entry), ("..", parent), *fs.listdir(path)]:
            encoded = name.encode()
            out += b"DENT" + struct.pack("<IIII", child.mode, child.size, child.mtime, len(encoded))
            out += encoded
    out += b"DONE" + struct.pack("<IIII", 0, 0, 0, 0)
    await stream.write(bytes(out))


async def _send(stream: Stream, fs: MemoryFS, spec: str) -> bool:
    """Receive one file; False when the session cannot go on."""
    path, _, mode_text = spec.rpartition(",")
    if not path:
        path, mode_text = spec, "33188"
    try:
        mode = int(mode_text)
    except ValueError:
        await stream.write(_fail(f"bad file mode in {spec!r}"))
        return False
    data = bytearray()
    while True:
        header = await stream.read_exactly(8)
        kind, value = header[:4], _U32.unpack(header[4:])[0]
        if kind == b"DATA":
            if value > MAX_CHUNK:
                await stream.write(_fail(f"DATA chunk of {value} bytes is over {MAX_CHUNK}"))
                return False
            data += await stream.read_exactly(value)
        elif kind == b"DONE":
            try:
                fs.write(path, bytes(data), mode=mode, mtime=value, make_parents=True)
            except FSError as exc:
                await stream.write(_fail(str(exc)))
                return True
            await stream.write(b"OKAY" + _U32.pack(0))
            return True
        else:
            await stream.write(_fail(f"unexpected {kind!r} during SEND"))
            return False


async def _recv(stream: Stream, fs: MemoryFS, path: str) -> None:
    try:
        content = fs.read(path)
    except FSError as exc:
        await stream.write(_fail(exc.reason))
        return
    out = bytearray()
    for start in range(0, len(content), MAX_CHUNK):
        chunk = content[start : start + MAX_CHUNK]
        out += b"DATA" + _U32.pack(len(chunk)) + chunk
    out += b"DONE" + _U32.pack(0)
    await stream.write(bytes(out))
