"""The coordinator's stop (SIGTERM): assign nothing more, close each host session with 1012,
let the frames already read commit, all within a bound; then uvicorn's own shutdown follows.

Left to uvicorn alone, the host websockets would be cut at once and the frames still being
handled cancelled after its grace. Here the registry is closed first (the dispatcher offers no
device, a new host connection is refused 503), each session is closed with 1012 "service
restart" (the host reconnects, to another replica or to this one once it is back), and each
session's loop handles what it had read before it ends (coordinator/host_loop.py).
"""

from __future__ import annotations

import asyncio
import logging

from agent.protocol import CLOSE_SERVICE_RESTART
from coordinator.sessions import SessionRegistry

log = logging.getLogger(__name__)


async def drain_hosts(sessions: SessionRegistry, bound_s: float) -> None:
    """Close every host session and wait, at most `bound_s`, until each has ended."""
    sessions.closing = True
    live = sessions.all()
    if not live:
        return
    log.info("stopping: closing %d host session(s) with %d", len(live), CLOSE_SERVICE_RESTART)
    try:
        async with asyncio.timeout(bound_s):
            await asyncio.gather(
                *(s.close(CLOSE_SERVICE_RESTART, "coordinator restarting") for s in live)
            )
            await sessions.emptied.wait()
    except TimeoutError:
        log.warning(
            "stopping: %d host session(s) still open after %g s", len(sessions.all()), bound_s
        )
