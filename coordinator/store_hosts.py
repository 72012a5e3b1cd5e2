"""Stored credentials: host tokens and HTTP API keys, kept only as SHA-256 digests."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from coordinator import schema as t
from coordinator.db import now
from coordinator.db_conn import Conn
from coordinator.dialect import insert


def digest(secret: str) -> str:
    """The SHA-256 hex digest under which a token or API key is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def set_host_token(conn: Conn, host_id: str, token_sha256: str) -> None:
    """Create the host, or replace its token (the old one stops working)."""
    stmt = insert(conn, t.hosts).values(id=host_id, token_sha256=token_sha256, created_at=now())
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[t.hosts.c.id], set_={"token_sha256": stmt.excluded.token_sha256}
        )
    )


async def host_for_token(conn: Conn, token_sha256: str) -> str | None:
    host_id = await conn.scalar(
        sa.select(t.hosts.c.id).where(t.hosts.c.token_sha256 == token_sha256)
    )
    return None if host_id is None else str(host_id)


async def touch_host(conn: Conn, host_id: str) -> None:
    await conn.execute(sa.update(t.hosts).where(t.hosts.c.id == host_id).values(last_seen_at=now()))


async def set_api_key(conn: Conn, name: str, key_sha256: str) -> None:
    """Create the named API key, or replace its secret."""
    stmt = insert(conn, t.api_keys).values(name=name, key_sha256=key_sha256, created_at=now())
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[t.api_keys.c.name], set_={"key_sha256": stmt.excluded.key_sha256}
        )
    )


async def api_key_name(conn: Conn, key_sha256: str) -> str | None:
    name = await conn.scalar(
        sa.select(t.api_keys.c.name).where(t.api_keys.c.key_sha256 == key_sha256)
    )
    return None if name is None else str(name)
