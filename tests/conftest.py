"""Fixtures of the whole test session: the PostgreSQL cluster of tests/pg.py, when used."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import stop_cluster


@pytest.fixture(scope="session", autouse=True)
def postgresql_cluster() -> Iterator[None]:
    """Stops the cluster `fresh_database()` started (it starts at the first use, if any)."""
    yield
    stop_cluster()
