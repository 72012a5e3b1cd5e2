"""Sending webhook deliveries (docs/webhooks.md): a loop that claims the due ones
(coordinator/store_webhooks.py) and POSTs each in a task of its own, signed with its job's
secret, each attempt bounded by `--webhook-timeout-s`.

A receiver that answers an error or never answers holds one of `CONCURRENCY` slots for at most
that long and is retried later with a doubling delay; it never holds up other deliveries,
dispatch or the API (the loop and every attempt run beside them, and the database is only
touched to claim and to record). Every replica runs the loop: a claim makes each delivery one
replica's at a time. After a restart, deliveries written before it are simply due (or due again
once a dead replica's claim has lapsed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging

import httpx

from coordinator.db import Database, now
from coordinator.settings import Settings
from coordinator.store_webhooks import Due, claim_due, record_attempt

log = logging.getLogger(__name__)

CONCURRENCY = 32
"""Attempts in flight at once, per replica."""
POLL_S = 0.5
"""How often the loop looks for due deliveries when nothing wakes it (retries, other replicas)."""
CLAIM_MARGIN_S = 30.0
"""A claim lasts the attempt's time bound plus this, so that it outlives the attempt."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Signature` of a delivery: hex HMAC-SHA256 of `timestamp + "." + body`."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def retry_delay_s(attempts: int, first_s: float, max_s: float) -> float:
    """How long to wait after the `attempts`-th failed attempt: doubling, at most `max_s`."""
    return min(max_s, first_s * 2.0 ** min(attempts - 1, 60))


class Deliverer:
    """The delivery loop of one coordinator process."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Look for due deliveries now (one was just written or re-sent)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; a failed claim is logged and tried again."""
        async with httpx.AsyncClient(
            timeout=self._settings.webhook_timeout_s,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=CONCURRENCY),
        ) as client:
            try:
                while True:
                    # Cleared before the claim: a wake during it makes the next wait return.
                    self._wake.clear()
                    free = CONCURRENCY - len(self._in_flight)
                    if free > 0:
                        for due in await self._claim(free):
                            attempt = asyncio.create_task(self._attempt(client, due))
                            self._in_flight.add(attempt)
                            attempt.add_done_callback(self._done)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL_S):
                            await self._wake.wait()
            finally:
                for attempt in list(self._in_flight):
                    attempt.cancel()
                await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _done(self, attempt: asyncio.Task[None]) -> None:
        self._in_flight.discard(attempt)
        self._wake.set()  # a slot is free

    async def _claim(self, limit: int) -> list[Due]:
        lease_s = self._settings.webhook_timeout_s + CLAIM_MARGIN_S
        try:
            async with self._db.transaction() as conn:
                return await claim_due(conn, now(), lease_s, limit)
        except Exception:
            log.exception("claiming webhook deliveries failed")
            return []

    async def _attempt(self, client: httpx.AsyncClient, due: Due) -> None:
        body = due.body.encode()
        timestamp = str(int(now()))
        headers = {
            "Content-Type": "application/json",
            "X-Delivery-Id": due.id,
            "X-Timestamp": timestamp,
            "X-Signature": signature(due.secret, timestamp, body),
        }
        status: int | None = None
        error: str | None = None
        timeout_s = self._settings.webhook_timeout_s
        try:
            # httpx bounds each phase; this bounds the whole (a receiver that drips bytes).
            async with asyncio.timeout(timeout_s):
                request = client.build_request("POST", due.url, content=body, headers=headers)
                response = await client.send(request, stream=True)
                await response.aclose()  # its body is not read: only the status counts
            status = response.status_code
            if not 200 <= status < 300:
                error = f"answered HTTP {status}"
        except TimeoutError:
            error = f"no answer within {timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}".rstrip(": ")
        moment = now()
        s = self._settings
        retry_at = moment + retry_delay_s(due.attempts, s.webhook_retry_s, s.webhook_retry_max_s)
        try:
            async with self._db.transaction() as conn:
                state = await record_attempt(
                    conn, due, moment=moment, status=status, error=error, retry_at=retry_at
                )
        except Exception:
            # The claim lapses and the delivery is attempted again: a repeat, never a loss.
            log.exception("recording webhook delivery %s failed", due.id)
            return
        if error is not None:
            log.info("webhook delivery %s attempt %d: %s (%s)", due.id, due.attempts, error, state)
