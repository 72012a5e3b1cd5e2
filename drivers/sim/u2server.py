"""The uiautomator2 on-device server: HTTP/1.1 with `GET /ping` and `POST /jsonrpc/0`.

It "runs" while the shell stream that started it (`app_process ... com.wetest.uia2.Main -p PORT`)
stays open, and is reached only through adb `tcp:PORT` streams, which it serves in-process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from drivers.sim.transport import Service, Stream
from drivers.sim.u2rpc import RpcError, U2Methods

log = logging.getLogger(__name__)

MAX_HEADER = 64 * 1024
MAX_BODY = 4 * 1024 * 1024
PARSE_ERROR = -32700
INTERNAL_ERROR = -32001


class AlreadyRunning(Exception):
    pass


class U2Server:
    def __init__(self, methods: U2Methods) -> None:
        self._methods = methods
        self.port: int | None = None
        self._stopped = asyncio.Event()
        self._streams: set[Stream] = set()

    @property
    def running(self) -> bool:
        return self.port is not None

    def start(self, port: int) -> asyncio.Event:
        """Start serving on `port`; the returned event is set when the server stops."""
        if self.running:
            raise AlreadyRunning(f"uiautomator2 server already running on port {self.port}")
        self.port = port
        self._stopped = asyncio.Event()
        return self._stopped

    def stop(self) -> None:
        """Kill the server: its process stream and every open HTTP connection close."""
        if not self.running:
            return
        self.port = None
        self._stopped.set()
        for stream in list(self._streams):
            stream.close()

    def route(self, port: int) -> Service | None:
        return self.serve if self.running and port == self.port else None

    async def serve(self, stream: Stream) -> None:
        self._streams.add(stream)
        try:
            while await self._serve_one(stream):
                pass
        finally:
            self._streams.discard(stream)

    async def _serve_one(self, stream: Stream) -> bool:
        """Answer one request; False when the connection is done."""
        head = bytearray()
        while b"\r\n\r\n" not in head:
            chunk = await stream.read()
            if not chunk:
                return False
            head += chunk
            if len(head) > MAX_HEADER and b"\r\n\r\n" not in head:
                await _respond(stream, 431, "text/plain", b"headers too large", close=True)
                return False
        raw_head, _, rest = bytes(head).partition(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3:
            await _respond(stream, 400, "text/plain", b"bad request line", close=True)
            return False
        method, path, _version = parts
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            await _respond(stream, 400, "text/plain", b"bad content-length", close=True)
            return False
        body = bytearray(rest)
        if len(body) < length:
            body += await stream.read_exactly(length - len(body))
        # Pipelined requests are not something uiautomator2 sends; extra bytes are dropped.
        close = headers.get("connection", "").lower() == "close"
        if method == "GET" and path == "/ping":
            await _respond(stream, 200, "text/plain", b"pong", close)
        elif method == "POST" and path == "/jsonrpc/0":
            reply = await self._jsonrpc(bytes(body[:length]))
            await _respond(stream, 200, "application/json; charset=utf-8", reply, close)
        else:
            await _respond(stream, 404, "text/plain", b"not found", close)
        return not close

    async def _jsonrpc(self, body: bytes) -> bytes:
        try:
            request = json.loads(body)
        except ValueError as exc:
            return json.dumps(_error(None, PARSE_ERROR, f"Parse error: {exc}")).encode()
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return json.dumps(_error(None, PARSE_ERROR, "not a JSON-RPC request object")).encode()
        request_id = request.get("id")
        try:
            result = await self._methods.call(request["method"], request.get("params"))
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "result": result}
        except RpcError as exc:
            reply = _error(request_id, exc.code, exc.message)
        except Exception as exc:
            log.exception("uiautomator2 method %s failed", request["method"])
            reply = _error(request_id, INTERNAL_ERROR, f"java.lang.RuntimeException: {exc}")
        return json.dumps(reply).encode()


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": code, "message": message, "data": message},
    }


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 431: "Request Header Fields Too Large"}


async def _respond(
    stream: Stream, status: int, content_type: str, body: bytes, close: bool
) -> None:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    await stream.write(head.encode() + body)
