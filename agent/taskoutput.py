"""A task's stdout and stderr into the daemon's log, within a byte budget and a line rate.

A script may print without end. Each task gets `output_max_bytes` of log in all and
`output_lines_per_s` lines a second (bursts of one second's worth); a line longer than
`MAX_LINE_BYTES` is cut. Whatever does not fit is still read from the pipe (so the script is
not blocked) but dropped, and counted: `dropped_summary` is the one line that says how much.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

MAX_LINE_BYTES = 16 * 1024
_READ_BYTES = 64 * 1024


class OutputBudget:
    """Shared by a task's stdout and stderr: total bytes, and a token bucket of lines."""

    def __init__(
        self, max_bytes: int, lines_per_s: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._bytes_left = max_bytes
        self._rate = float(lines_per_s)
        self._tokens = float(lines_per_s)
        self._clock = clock
        self._last = clock()
        self.dropped_bytes = 0
        self.dropped_lines = 0

    def admit(self, size: int) -> bool:
        now = self._clock()
        self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1 or size > self._bytes_left:
            self.dropped_bytes += size
            self.dropped_lines += 1
            return False
        self._tokens -= 1
        self._bytes_left -= size
        return True

    def drop(self, size: int) -> None:
        """Count bytes dropped without a line of their own (the cut end of a long line)."""
        self.dropped_bytes += size

    def dropped_summary(self) -> str | None:
        if not self.dropped_bytes:
            return None
        return (
            f"output over the task's limit was dropped: {self.dropped_bytes} bytes "
            f"({self.dropped_lines} lines)"
        )


async def pump(
    stream: asyncio.StreamReader,
    emit: Callable[[str], None],
    budget: OutputBudget,
) -> None:
    """Read `stream` to its end, passing each admitted line (without its newline) to `emit`."""
    pending = bytearray()
    cut = False  # the current line was already cut: drop until its newline
    while chunk := await stream.read(_READ_BYTES):
        pending += chunk
        while (end := pending.find(b"\n")) >= 0:
            line = bytes(pending[:end])
            del pending[: end + 1]
            if cut:
                budget.drop(len(line) + 1)
                cut = False
            else:
                _offer(line, emit, budget)
        if len(pending) > MAX_LINE_BYTES:
            if not cut:
                _offer(bytes(pending[:MAX_LINE_BYTES]) + b" [line cut]", emit, budget)
                del pending[:MAX_LINE_BYTES]
                cut = True
            budget.drop(len(pending))
            pending.clear()
    if pending and not cut:
        _offer(bytes(pending), emit, budget)


def _offer(line: bytes, emit: Callable[[str], None], budget: OutputBudget) -> None:
    if budget.admit(len(line) + 1):
        emit(line.decode("utf-8", errors="replace").rstrip("\r"))
