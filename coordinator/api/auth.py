"""API-key authentication for /api: `Authorization: Bearer <api key>`, and each key's rate
limit (coordinator/ratelimit.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from coordinator.context import Context
from coordinator.store_hosts import api_key_name, digest

_bearer = HTTPBearer(auto_error=False, description="An API key from `device-coordinator apikey`.")


def get_context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


ContextDep = Annotated[Context, Depends(get_context)]


async def require_api_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The calling key's name; 401 when the key is missing or unknown, 429 (with
    `Retry-After`, in seconds) when the key is over its rate limit."""
    if credentials is None:
        raise HTTPException(
            status_code=401,
            detail="missing API key: send 'Authorization: Bearer <api key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    async with get_context(request).db.transaction() as conn:
        name = await api_key_name(conn, digest(credentials.credentials))
    if name is None:
        raise HTTPException(
            status_code=401, detail="unknown API key", headers={"WWW-Authenticate": "Bearer"}
        )
    limiter = get_context(request).limiter
    wait_s = limiter.take(name)
    if wait_s:
        raise HTTPException(
            status_code=429,
            detail=f"API key {name} is over its rate limit of {limiter.rate:g} requests/s "
            f"(burst {limiter.burst}); retry in {wait_s} s",
            headers={"Retry-After": str(wait_s)},
        )
    return name


CallerDep = Annotated[str, Depends(require_api_key)]
"""The calling API key's name: the caller's owner identity (jobs it creates are its own)."""
