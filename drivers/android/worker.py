"""One thread per phone: every blocking adbutils / uiautomator2 call of a phone runs there, one at
a time, under an outer deadline, so the daemon's event loop never waits on a device.

The libraries' own time limits are long (uiautomator2 waits up to 30 s for its server, adbutils'
shell 600 s by default) and a wedged device can block a socket read for that long. When a call
overruns its deadline the caller gets `CallTimeout` at once and the thread is abandoned: the next
call gets a fresh thread, and the stuck one ends by itself when its socket read times out (every
socket the driver opens has a read timeout).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")


class CallTimeout(TimeoutError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g} s")
        self.seconds = seconds


class DeviceWorker:
    def __init__(self, name: str) -> None:
        self._name = name
        self._pool = self._new_pool()
        self.abandoned = 0
        """How many stuck threads were left behind (each ends with its socket timeout)."""

    def _new_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)

    async def run(self, fn: Callable[..., T], *args: Any, deadline_s: float) -> T:
        """fn(*args) in the phone's thread; CallTimeout if it takes longer than `deadline_s`."""
        pool = self._pool
        future = asyncio.get_running_loop().run_in_executor(pool, partial(fn, *args))
        try:
            return await asyncio.wait_for(future, deadline_s)
        except TimeoutError:
            if pool is self._pool:
                self.abandoned += 1
                self._pool = self._new_pool()
                pool.shutdown(wait=False, cancel_futures=True)
            raise CallTimeout(deadline_s) from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
