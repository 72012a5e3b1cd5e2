"""The coordinator's Prometheus metrics at `GET /metrics` (docs/operations.md, Metrics).

`CoordinatorMetrics` owns a `CollectorRegistry` (no global one): the dispatch latency
histogram the dispatcher feeds, and a collector of what is read when scraped: the tasks by
state and reason (one GROUP BY on the database, so every replica reports the same numbers) and
the hosts connected to this process. `--metrics-auth apikey` (the default) asks for an API key,
as /api does; `none` serves anyone who can reach the port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from coordinator import schema as t
from coordinator.api.auth import require_api_key
from coordinator.context import Context

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class _Snapshot(Collector):
    """What the last scrape read; `/metrics` refreshes it before rendering."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, str, int]] = []
        self.hosts = 0

    def collect(self) -> Iterable[Metric]:
        tasks = GaugeMetricFamily(
            "device_coordinator_tasks",
            "Tasks in the database by state and failure reason (empty when none).",
            labels=["state", "reason"],
        )
        for state, reason, count in self.tasks:
            tasks.add_metric([state, reason], count)
        yield tasks
        yield GaugeMetricFamily(
            "device_coordinator_hosts_connected",
            "Host sessions open on this coordinator process.",
            self.hosts,
        )


class CoordinatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._snapshot = _Snapshot()
        self.registry.register(self._snapshot)
        self._latency = Histogram(
            "device_coordinator_dispatch_latency_seconds",
            "Time from a task's creation to its assignment to a device, per assignment.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    @property
    def dispatched(self) -> Callable[[float], None]:
        """Told the seconds from creation to assignment of each task given out."""
        return self._latency.observe

    async def render(self, ctx: Context) -> bytes:
        c = t.tasks.c
        query = sa.select(c.state, c.failure_reason, sa.func.count()).group_by(
            c.state, c.failure_reason
        )
        async with ctx.db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        self._snapshot.tasks = sorted((s, r or "", int(n)) for s, r, n in rows)
        self._snapshot.hosts = len(ctx.sessions.all())
        return generate_latest(self.registry)


def add_metrics_route(app: FastAPI, metrics: CoordinatorMetrics, auth: str) -> None:
    """`GET /metrics`, with the API-key check when `auth` is "apikey"."""
    dependencies = [Depends(require_api_key)] if auth == "apikey" else []

    @app.get("/metrics", tags=["health"], dependencies=dependencies, include_in_schema=False)
    async def scrape(request: Request) -> Response:
        body = await metrics.render(request.app.state.ctx)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
