"""Fixtures for end-to-end tests: a real coordinator process, real daemons, a local site."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.devstack import Coordinator, Daemon, free_port
from scripts.localsite import serve_pages
from tests.pg import fresh_database


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[Coordinator]:
    data = tmp_path / "coordinator"
    data.mkdir()
    coord = Coordinator(data_dir=data, port=free_port(), database=fresh_database())
    coord.start()
    yield coord
    coord.stop()


@pytest.fixture
def make_daemon(tmp_path: Path, coordinator: Coordinator) -> Iterator[Any]:
    daemons: list[Daemon] = []

    def make(**kwargs: Any) -> Daemon:
        d = tmp_path / f"daemon{len(daemons)}"
        d.mkdir()
        daemon = Daemon(dir=d, coordinator=coordinator, **kwargs)
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        daemon.stop()


@pytest.fixture
def site() -> Iterator[str]:
    with serve_pages() as url:
        yield url
