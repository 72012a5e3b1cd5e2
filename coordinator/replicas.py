"""What a coordinator does for the other replicas on its database: telling them (through
coordinator/herald.py) and acting on what they tell it. Without a herald (SQLite) every call
here acts on this coordinator alone.
"""

from __future__ import annotations

import asyncio
import logging

from agent.protocol import CLOSE_SESSION_REPLACED, Cancel
from coordinator.context import Context
from coordinator.herald import CancelNotice, Notice, SessionNotice, WorkNotice
from coordinator.sessions import HostSession

log = logging.getLogger(__name__)

_closing: set[asyncio.Task[None]] = set()
"""Closes of sessions another replica replaced, kept referenced until they are done."""


def stop_on_host(ctx: Context, host_id: str, task_id: str, reason: str) -> None:
    """Send `cancel` for the task to its host, through whichever replica holds its session."""
    session = ctx.sessions.get(host_id)
    if session is not None:
        session.send(Cancel(task_id=task_id, reason=reason))
    elif ctx.dispatcher.herald is not None:
        ctx.dispatcher.herald.tell(CancelNotice(host_id=host_id, task_id=task_id, reason=reason))


def welcomed(ctx: Context, session: HostSession) -> None:
    """Tell the other replicas, which close an older session of the host if they hold one."""
    if ctx.dispatcher.herald is not None:
        ctx.dispatcher.herald.tell(
            SessionNotice(host_id=session.host_id, session_id=session.session_id)
        )


def on_notice(ctx: Context, notice: Notice) -> None:
    """Act on a replica's notice (this one's own included)."""
    if isinstance(notice, WorkNotice):
        ctx.dispatcher.wake()
        return
    session = ctx.sessions.get(notice.host_id)
    if session is None:
        return
    if isinstance(notice, CancelNotice):
        session.send(Cancel(task_id=notice.task_id, reason=notice.reason))
    elif session.session_id != notice.session_id:
        log.info(
            "host %s session %s replaced by session %s on another replica",
            notice.host_id,
            session.session_id,
            notice.session_id,
        )
        closing = asyncio.create_task(session.close(CLOSE_SESSION_REPLACED, "session replaced"))
        _closing.add(closing)
        closing.add_done_callback(_closing.discard)
