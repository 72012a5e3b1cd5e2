"""The daemon's Prometheus metrics (docs/operations.md, Metrics), on its own registry.

`DaemonMetrics` owns a `CollectorRegistry` (no global one): the counters and histograms the
scheduler and the script channel feed as tasks and actions end, and a collector that reads
live state when scraped (the outbox, the link, the devices, the drivers' recovery counts).
`serve_metrics` answers `GET /metrics` on `[metrics] listen`, on the daemon's event loop, so
that collector reads state on the loop that changes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.config import ConfigError, MetricsSettings
from agent.scriptrpc import ACTION_NAMES

LIMIT_REASONS = {"memory_limit": "memory", "pids_limit": "pids"}
"""Task failure reasons that are the sandbox's cgroup limits, and the limit's label."""
READ_TIMEOUT_S = 5.0
MAX_REQUEST_BYTES = 8192
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
ACTION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class LiveState:
    """What the collector reads at scrape time; filled in by the daemon once its parts exist."""

    def __init__(self) -> None:
        self.outbox: Callable[[], tuple[int, int, float]] = lambda: (0, 0, 0.0)
        """(items, bytes, age of the oldest in seconds)"""
        self.link: Callable[[], tuple[bool, int]] = lambda: (False, 0)
        """(connected, sessions established so far)"""
        self.devices: Callable[[], Iterable[tuple[str, str]]] = list
        """(kind, state) of each device"""
        self.recovery: Callable[[], Counter[str]] = Counter
        """Recovery steps tried, by step, summed over the devices."""


class _LiveCollector(Collector):
    def __init__(self, live: LiveState) -> None:
        self._live = live

    def collect(self) -> Iterable[Metric]:
        items, size, age = self._live.outbox()
        yield GaugeMetricFamily("device_agent_outbox_items", "Items queued in the outbox.", items)
        yield GaugeMetricFamily("device_agent_outbox_bytes", "Bytes queued in the outbox.", size)
        yield GaugeMetricFamily(
            "device_agent_outbox_oldest_age_seconds",
            "Age of the oldest item queued in the outbox (0 when empty).",
            age,
        )
        up, sessions = self._live.link()
        yield GaugeMetricFamily(
            "device_agent_link_up", "1 while a session with the coordinator is open.", int(up)
        )
        yield CounterMetricFamily(
            "device_agent_link_reconnects",
            "Sessions with the coordinator established after the first one.",
            max(0, sessions - 1),
        )
        devices = GaugeMetricFamily(
            "device_agent_devices", "Devices by kind and state.", labels=["kind", "state"]
        )
        for (kind, state), count in sorted(Counter(self._live.devices()).items()):
            devices.add_metric([kind, state], count)
        yield devices
        steps = CounterMetricFamily(
            "device_agent_recovery_steps",
            "Recovery-ladder steps tried on Android phones, by step.",
            labels=["step"],
        )
        for step, count in sorted(self._live.recovery().items()):
            steps.add_metric([step], count)
        yield steps


class DaemonMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.live = LiveState()
        self.registry.register(_LiveCollector(self.live))
        self._tasks = PromCounter(
            "device_agent_tasks",
            "Tasks ended on this host, by final state and reason (empty when none).",
            ["state", "reason"],
            registry=self.registry,
        )
        self._task_seconds = Histogram(
            "device_agent_task_duration_seconds",
            "Time from a task's start on this host to its end, by final state.",
            ["state"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._action_seconds = Histogram(
            "device_agent_action_duration_seconds",
            "Time one agent.actions call took, by action.",
            ["action"],
            buckets=ACTION_BUCKETS,
            registry=self.registry,
        )
        self._limit_hits = PromCounter(
            "device_agent_sandbox_limit_hits",
            "Tasks the kernel ended for a sandbox limit (cgroup memory or pids).",
            ["limit"],
            registry=self.registry,
        )

    def task_ended(self, state: str, reason: str | None, seconds: float) -> None:
        self._tasks.labels(state, reason or "").inc()
        self._task_seconds.labels(state).observe(seconds)
        if reason in LIMIT_REASONS:
            self._limit_hits.labels(LIMIT_REASONS[reason]).inc()

    def action_done(self, method: str, seconds: float) -> None:
        """A script's call ended; only `actions.<known name>` is counted (a script may call
        any name: unknown ones would be unbounded label values)."""
        action = method.removeprefix("actions.")
        if method.startswith("actions.") and action in ACTION_NAMES:
            self._action_seconds.labels(action).observe(seconds)


class MetricsPortError(ConfigError):
    """The metrics endpoint cannot listen (a port in use): exit 2, as a bad configuration."""


@contextlib.asynccontextmanager
async def serve_metrics(
    settings: MetricsSettings, registry: CollectorRegistry, log: logging.Logger
) -> AsyncIterator[None]:
    """Serve `GET /metrics` for the duration of the block (nothing when disabled)."""
    if not settings.enabled:
        yield
        return

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            if head.startswith(b"GET ") and path.split(b"?")[0] == b"/metrics":
                status, body = b"200 OK", generate_latest(registry)
            else:
                status, body = b"404 Not Found", b"only GET /metrics is served here\n"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; version=0.0.4; "
                b"charset=utf-8\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            async with asyncio.timeout(READ_TIMEOUT_S):
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a scraper that went away or sent no request: nothing to answer
        finally:
            writer.close()

    host, port = settings.address
    try:
        server = await asyncio.start_server(answer, host, port, limit=MAX_REQUEST_BYTES)
    except OSError as exc:
        raise MetricsPortError(
            f"key `metrics.listen`: cannot listen on {settings.listen}: {exc.strerror or exc}"
        ) from None
    log.info("metrics on http://%s/metrics", settings.listen)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()
