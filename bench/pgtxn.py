"""The coordinator's CPU per PostgreSQL transaction: `Database.transaction()` against SQLAlchemy's
`engine.begin()`.

On a throwaway PostgreSQL cluster (tests/pg.py), runs --transactions transactions of two `Hot`
statements (coordinator/db_conn.py) each way, in alternating rounds: through the coordinator's
`Database.transaction()` (one connection kept open, a transaction of Hot statements committed
on asyncpg, coordinator/db.py), and through a pooled `engine.begin()` (a checkout, SQLAlchemy's
begin and commit, a checkin: the baseline). Prints each round's CPU per transaction (this
process's, the server's left out) and the ratio of the median of each way.

    .venv/bin/python -m bench.pgtxn [--transactions 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import sqlalchemy as sa

from coordinator.db import Database
from coordinator.db_conn import AsyncConn, Conn, Hot
from coordinator.db_engine import make_engine
from coordinator.db_location import postgresql_location
from tests.pg import Cluster

STATEMENT = Hot(sa.select(sa.bindparam("b_x", type_=sa.Integer) + 1))
STATEMENTS = 2
"""Hot statements a transaction: a `started` alone, or a `finished` after a final submit."""

Transaction = Callable[[], AbstractAsyncContextManager[Conn]]


async def cpu_per_transaction(transaction: Transaction, count: int) -> float:
    began = time.process_time()
    for i in range(count):
        async with transaction() as conn:
            for _ in range(STATEMENTS):
                await conn.execute(STATEMENT, {"b_x": i})
    return (time.process_time() - began) / count


async def measure(url: str, count: int, rounds: int) -> None:
    location = postgresql_location(url)
    db = await Database.open(location)
    engine = make_engine(location)

    @asynccontextmanager
    async def pooled() -> AsyncIterator[Conn]:
        async with engine.begin() as aconn:
            yield AsyncConn(aconn)

    ways: dict[str, Transaction] = {
        "Database.transaction()": db.transaction,
        "engine.begin()": pooled,
    }
    figures: dict[str, list[float]] = {name: [] for name in ways}
    try:
        for _ in range(rounds):
            for name, transaction in ways.items():
                figures[name].append(await cpu_per_transaction(transaction, count))
    finally:
        await engine.dispose()
        await db.close()
    for name, values in figures.items():
        shown = ", ".join(f"{v * 1e6:.0f}" for v in values)
        print(f"{name}: {shown} µs of CPU a transaction of {STATEMENTS} Hot statements")
    ours, baseline = (statistics.median(v) for v in figures.values())
    print(f"ratio of the medians, Database.transaction() / engine.begin(): {ours / baseline:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cluster = Cluster.start()
    try:
        asyncio.run(measure(cluster.create_database(), args.transactions, args.rounds))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
