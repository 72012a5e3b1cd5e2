"""Doctor check of the coordinator: it answers, accepts the host token, and agrees on the time.

The token is checked by the websocket's opening handshake alone (the coordinator refuses a bad
token with HTTP 401 before the upgrade); no `hello` is sent, so no session is made and a
running daemon's session is left alone. The clock is compared with the `Date` header of an
HTTP answer from the same server.
"""

from __future__ import annotations

import asyncio
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from agent import protocol as p
from agent.config import ConfigError, CoordinatorSettings
from agent.doctor import Check, fail, ok, warn

MAX_SKEW_S = 5.0
"""More than this between the host's clock and the coordinator's is worth fixing: timestamps
of starts and ends are the host's, deadlines are the coordinator's."""


def _http_url(ws_url: str) -> str:
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "/healthz", "", ""))


async def _skew(settings: CoordinatorSettings, url: str) -> float | None:
    """The coordinator's clock minus ours, in seconds (None: no Date header)."""
    context = settings.ssl_context()
    async with httpx.AsyncClient(
        timeout=settings.connect_timeout_s, verify=context if context is not None else True
    ) as client:
        before = time.time()
        response = await client.get(_http_url(url))
        after = time.time()
    date = response.headers.get("date")
    if date is None:
        return None
    # Date has whole seconds: half a second of its own error, plus the round trip.
    return parsedate_to_datetime(date).timestamp() + 0.5 - (before + after) / 2


async def _handshake(settings: CoordinatorSettings, url: str, token: str) -> None:
    ws = await connect(
        url,
        ssl=settings.ssl_context() if url.startswith("wss://") else None,
        additional_headers={p.AUTH_HEADER: f"Bearer {token}"},
        open_timeout=settings.connect_timeout_s,
        close_timeout=2,
    )
    await ws.close()


async def coordinator_checks(settings: CoordinatorSettings) -> list[Check]:
    """One check per coordinator URL, and one for the clock against the first that answers."""
    try:
        token = settings.read_token()
    except ConfigError:
        token = ""  # the token check says why; the coordinator is still worth asking
    checks: list[Check] = []
    skew: float | None = None
    for url in settings.urls:
        name = f"coordinator {url}"
        try:
            skew = await _skew(settings, url) if skew is None else skew
            await _handshake(settings, url, token)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                checks.append(
                    fail(
                        name,
                        "answers, but refused the host token (HTTP 401)",
                        "device-coordinator token create HOST_ID on the coordinator, then put "
                        "the token in coordinator.token_file",
                    )
                )
            else:
                checks.append(fail(name, f"answered HTTP {status}", "check coordinator.url's path"))
        except (OSError, httpx.HTTPError, WebSocketException, TimeoutError) as exc:
            checks.append(
                fail(
                    name,
                    f"cannot connect: {type(exc).__name__}: {exc}",
                    "check coordinator.url, that the coordinator runs, TLS (coordinator.ca_file)",
                )
            )
        else:
            checks.append(ok(name, "answers and accepts the host token"))
    if skew is not None:
        if abs(skew) > MAX_SKEW_S:
            checks.append(
                warn(
                    "clock",
                    f"{skew:+.0f} s from the coordinator's",
                    "synchronise the clocks (timedatectl set-ntp true)",
                )
            )
        else:
            checks.append(ok("clock", f"within {MAX_SKEW_S:g} s of the coordinator's"))
    return checks


def run_coordinator_checks(settings: CoordinatorSettings) -> list[Check]:
    return asyncio.run(coordinator_checks(settings))
