"""Stored credentials: host tokens and HTTP API keys, kept only as SHA-256 digests."""

from __future__ import annotations

import hashlib

from coordinator.db import now
from coordinator.sqlite_conn import Connection


def digest(secret: str) -> str:
    """The SHA-256 hex digest under which a token or API key is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def set_host_token(conn: Connection, host_id: str, token_sha256: str) -> None:
    """Create the host, or replace its token (the old one stops working)."""
    await conn.execute(
        "INSERT INTO hosts (id, token_sha256, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET token_sha256 = excluded.token_sha256",
        (host_id, token_sha256, now()),
    )


async def host_for_token(conn: Connection, token_sha256: str) -> str | None:
    async with conn.execute("SELECT id FROM hosts WHERE token_sha256 = ?", (token_sha256,)) as cur:
        row = await cur.fetchone()
    return None if row is None else str(row["id"])


async def touch_host(conn: Connection, host_id: str) -> None:
    await conn.execute("UPDATE hosts SET last_seen_at = ? WHERE id = ?", (now(), host_id))


async def set_api_key(conn: Connection, name: str, key_sha256: str) -> None:
    """Create the named API key, or replace its secret."""
    await conn.execute(
        "INSERT INTO api_keys (name, key_sha256, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT(name) DO UPDATE SET key_sha256 = excluded.key_sha256",
        (name, key_sha256, now()),
    )


async def api_key_name(conn: Connection, key_sha256: str) -> str | None:
    async with conn.execute("SELECT name FROM api_keys WHERE key_sha256 = ?", (key_sha256,)) as cur:
        row = await cur.fetchone()
    return None if row is None else str(row["name"])
