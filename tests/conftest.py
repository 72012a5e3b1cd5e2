"""Fixtures of the whole test session, and how pytest-xdist shares the test files among workers.

scripts/test.sh runs the suite on two workers. Each file goes to one worker whole (its module
fixtures start once), and the files whose script hosts carry fixed task ids ("task-1", "t-1")
go to one worker together, one after another: they look for leftover processes by that id
(tests/taskprocs.py), so another file's host with the same id, running at the same moment on
the other worker, would be taken for a leftover.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

from tests.pg import stop_cluster

FIXED_TASK_IDS = (
    "tests/scripthost/",
    "tests/test_scheduler_cancel.py",
    "tests/test_warm_hosts.py",
    "tests/test_zygote.py",
    "tests/test_session_reuse.py",
)


class FileScheduling(LoadScopeScheduling):
    """xdist's `loadfile`, with the fixed-task-id files as one unit."""

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return "fixed-task-ids" if path.startswith(FIXED_TASK_IDS) else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> FileScheduling:
    return FileScheduling(config, log)


@pytest.fixture(scope="session", autouse=True)
def postgresql_cluster() -> Iterator[None]:
    """Stops the cluster `fresh_database()` started (it starts at the first use, if any)."""
    yield
    stop_cluster()
