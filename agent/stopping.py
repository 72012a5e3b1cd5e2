"""A stop request: the first signal starts the daemon's one ordered stop, later ones hurry it.

Signals never cancel anything: cancelling the stop half way (while a script's end is being
committed, or while Chromium closes) is how ends got lost and the daemon hung. The signal
handler only records the request; the daemon runs its stop sequence to the end, and a later
signal only shortens that sequence's waits: the drain (running tasks are ended at once instead
of being let finish) and the delivery (docs/outbox.md, "Stopping").
"""

from __future__ import annotations

import asyncio
import logging


class StopRequest:
    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self.requested = asyncio.Event()
        """Set by the first request: the daemon stops."""
        self.hurried = asyncio.Event()
        """Set by any later request: the stop no longer lets running tasks finish, nor waits
        for a coordinator that is away."""

    def request(self, why: str) -> None:
        """Called from a signal handler (on the loop): never raises, never blocks."""
        if not self.requested.is_set():
            self._log.warning(
                "stop requested (%s): taking no new task, letting running tasks finish", why
            )
            self.requested.set()
        elif not self.hurried.is_set():
            self._log.warning(
                "stop requested again (%s): ending running tasks now, no longer waiting for "
                "a coordinator that is away",
                why,
            )
            self.hurried.set()
        else:
            self._log.info("stop requested again (%s): already stopping in a hurry", why)
