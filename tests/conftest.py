"""Fixtures of the whole test session: the PostgreSQL cluster of tests/pg.py, when used; and
how the tests are shared among pytest-xdist's workers (scripts/test.sh runs two)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import stop_cluster


@pytest.fixture(scope="session", autouse=True)
def postgresql_cluster() -> Iterator[None]:
    """Stops the cluster `fresh_database()` started (it starts at the first use, if any)."""
    yield
    stop_cluster()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup`, a test file runs whole on one worker (its module fixtures are
    made once), and tests/scripthost runs on one worker: its tests all name their task
    `task-1`, and a task's processes and cgroup are found by that name."""
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        group = "scripthost" if path.startswith("tests/scripthost/") else path
        item.add_marker(pytest.mark.xdist_group(group))
