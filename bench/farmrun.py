"""The farm bench's phases: connect the fake hosts, restart the coordinator, load it with tasks.

Each phase waits by polling against a deadline. The load phase writes what it sees into a
`Load` record as it goes, so that a run cut short by its deadline still has figures to report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from bench.dispatch import percentile
from bench.fakehost import Farm
from bench.farmstack import (
    TASK_BATCH,
    OwnCoordinator,
    add_tasks,
    cpu_seconds,
    create_job,
    free_devices,
    server_cpu_seconds,
    state_counts,
)
from scripts.devstack import poll_until

POLL_S = 0.1


async def wait_all_free(farm: Farm, views: list[httpx.AsyncClient], deadline_s: float) -> None:
    """Until the coordinator offers every device of the farm for work (its devices API). With
    replicas, each marks `free` only the devices of the hosts whose sessions it holds
    (docs/scaling.md): the farm's free devices are the sum over `views`, one per replica."""
    hosts = {host.host_id for host in farm.hosts}

    async def all_free() -> bool:
        farm.check()
        free = [await free_devices(http, hosts) for http in views]
        return sum(free) == farm.device_count

    await poll_until(all_free, "every fake device free at the coordinator", deadline_s, POLL_S)


async def connect(farm: Farm, views: list[httpx.AsyncClient], deadline_s: float) -> float:
    """Start the hosts; the seconds until all their devices are free at the coordinator."""
    began = time.monotonic()
    farm.start()
    await wait_all_free(farm, views, deadline_s)
    return time.monotonic() - began


@dataclass(frozen=True)
class Restart:
    stop_s: float
    """From the SIGTERM until the old process exited."""
    start_s: float
    """From the start of the new process until its /healthz answers (one coordinator: right
    after the old one exited; a replica: once its hosts are back on the others)."""
    back_s: float
    """From the SIGTERM until every host is welcomed again and every device free."""
    hosts: int
    """The hosts whose sessions the stopped process held, which had to come back."""


async def restart_coordinator(
    coordinator: OwnCoordinator, farm: Farm, http: httpx.AsyncClient, deadline_s: float
) -> Restart:
    """Restart the coordinator under the connected farm and time the hosts' return."""
    began = time.monotonic()
    farm.stats.expect_closes = True
    stop_s, start_s = await coordinator.restart()

    async def all_back() -> bool:
        farm.check()
        return farm.welcomed_since(began) == len(farm.hosts)

    await poll_until(all_back, "every fake host welcomed again", deadline_s, POLL_S)
    # Every session of the old process has ended now: a close from here on is a drop.
    farm.stats.expect_closes = False
    await wait_all_free(farm, [http], deadline_s)
    return Restart(stop_s, start_s, time.monotonic() - began, len(farm.hosts))


async def restart_replica(
    replicas: list[OwnCoordinator],
    views: list[httpx.AsyncClient],
    farm: Farm,
    deadline_s: float,
) -> Restart:
    """Stop the first of `replicas` (`views` are their API clients, in the same order) under
    the connected farm, time its hosts' move to the others (round-robin, as the daemon does
    with a list of URLs) until every device is free there, then start it again on the same
    data dir and port. The hosts stay where they moved."""
    stopping, survivors = replicas[0], views[1:]
    moved = [h for h in farm.hosts if h.url == stopping.ws_url]
    began = time.monotonic()
    farm.stats.expect_closes = True
    await stopping.stop()
    stop_s = time.monotonic() - began

    def all_back() -> bool:
        farm.check()
        return farm.connected() == len(farm.hosts) and all(
            h.welcomed_at is not None and h.welcomed_at >= began for h in moved
        )

    await poll_until(
        all_back, "the stopped replica's hosts welcomed by the others", deadline_s, POLL_S
    )
    # Every session of the stopped replica has ended now: a close from here on is a drop.
    farm.stats.expect_closes = False
    await wait_all_free(farm, survivors, deadline_s)
    back_s = time.monotonic() - began
    starting = time.monotonic()
    await stopping.start()
    return Restart(stop_s, time.monotonic() - starting, back_s, len(moved))


def _cpu(pids: list[int]) -> float | None:
    return sum(cpu_seconds(pid) for pid in pids) if pids else None


@dataclass
class Load:
    """Phase 3 as far as it got: tasks created, what the hosts saw, CPU before and after."""

    tasks: int
    coordinator_pids: list[int]
    """The coordinator processes (replicas) whose CPU is counted, added up."""
    database_pid: int | None = None
    """The database server's (PostgreSQL's postmaster), whose CPU is counted with its
    backends'."""
    job_id: str | None = None
    created: dict[str, float] = field(default_factory=dict)
    """Task id -> when (time.monotonic) the POST that created it was sent."""
    began: float = 0.0
    ended: float | None = None
    """When the measurement ended: every task finished, or the run was cut short."""
    complete: bool = False
    """Every task was created and its `finished` acknowledged."""
    cpu_before: tuple[float | None, float | None, float] = (None, None, 0.0)
    """CPU seconds of (the coordinator, the database server, this process) when the phase
    began."""
    cpu_after: tuple[float | None, float | None, float] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    """The job's tasks by state, from the API, once every task is finished."""

    def _cpu_now(self) -> tuple[float | None, float | None, float]:
        database = self.database_pid
        return (
            _cpu(self.coordinator_pids),
            None if database is None else server_cpu_seconds(database),
            time.process_time(),
        )

    def start(self) -> None:
        self.cpu_before = self._cpu_now()
        self.began = time.monotonic()

    def stop(self) -> None:
        """Take the CPU readings that end the measurement (once)."""
        if self.cpu_after is None:
            self.cpu_after = self._cpu_now()
            self.ended = time.monotonic()


async def load(farm: Farm, http: httpx.AsyncClient, record: Load, deadline_s: float) -> None:
    """Create one job and `record.tasks` tasks in batches; wait until every task is finished."""
    record.start()
    job_id = record.job_id = await create_job(http)
    for first in range(0, record.tasks, TASK_BATCH):
        sent = time.monotonic()
        ids = await add_tasks(http, job_id, first, min(TASK_BATCH, record.tasks - first))
        record.created.update(dict.fromkeys(ids, sent))
    finished = farm.stats.finished

    def all_finished() -> bool:
        farm.check()
        return len(finished) >= len(record.created) and all(t in finished for t in record.created)

    await poll_until(all_finished, "every task finished at the fake hosts", deadline_s, POLL_S)
    record.complete = True
    record.stop()
    record.counts = await state_counts(http, job_id)


@dataclass(frozen=True)
class LoadFigures:
    created: int
    assigned: int
    """Created tasks that reached a host at least once."""
    assigned_again: int
    """Created tasks that reached a host more than once (must be 0)."""
    finished: int
    rate: float | None
    """Assignments per second, from the first `assign` to the last, as the hosts saw them."""
    p50_s: float | None
    p99_s: float | None
    """From the POST that created a task to the `assign` that brought it to a host."""
    coordinator_cpu_per_task_s: float | None
    database_cpu_per_task_s: float | None
    bench_cpu_s: float
    wall_s: float


def figures(record: Load, farm: Farm) -> LoadFigures:
    """The load phase's figures from what it recorded (complete or not)."""
    record.stop()
    assigns = farm.stats.assigns
    firsts = {t: assigns[t][0] for t in record.created if t in assigns}
    latencies = [firsts[t] - record.created[t] for t in firsts]
    span = max(firsts.values()) - min(firsts.values()) if len(firsts) > 1 else 0.0
    finished = sum(1 for t in record.created if t in farm.stats.finished)
    assert record.cpu_after is not None

    def per_task(before: float | None, after: float | None) -> float | None:
        if before is None or after is None or not finished:
            return None
        return (after - before) / finished

    assert record.ended is not None
    return LoadFigures(
        created=len(record.created),
        assigned=len(firsts),
        assigned_again=sum(1 for t in firsts if len(assigns[t]) > 1),
        finished=finished,
        rate=(len(firsts) - 1) / span if span > 0 else None,
        p50_s=percentile(latencies, 0.5) if latencies else None,
        p99_s=percentile(latencies, 0.99) if latencies else None,
        coordinator_cpu_per_task_s=per_task(record.cpu_before[0], record.cpu_after[0]),
        database_cpu_per_task_s=per_task(record.cpu_before[1], record.cpu_after[1]),
        bench_cpu_s=record.cpu_after[2] - record.cpu_before[2],
        wall_s=record.ended - record.began,
    )
