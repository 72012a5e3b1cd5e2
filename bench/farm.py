"""Farm load: many fake hosts (bench/fakehost.py) against the coordinator, which alone is measured.

Every fake device ends a task the moment it gets it, so the figures are the coordinator's:
1. connect every host; wait until the coordinator offers every device for work;
2. restart the coordinator (only one this bench started): SIGTERM, start again on the same
   data dir and port; the time until every host is welcomed and every device free again;
3. create one job and --tasks tasks in batches; assignments per second, creation -> `assign`
   latency, every task `success` and assigned exactly once, the coordinator's CPU per task;
4. throughout, sessions the coordinator dropped without being asked to.
With --replicas N the bench starts N coordinators on one PostgreSQL database; each host takes
them round-robin (the first URL differs by host, so the hosts spread evenly), tasks are created
through the first, and the CPU per task is that of all N added up. Their restart comes after
the load (else the load would run with every host on the survivors): SIGTERM to the first
replica, the time until its hosts are welcomed by the others and every device is free there,
then it is started again on the same port.
Each figure is printed with its target and the ratio to it. The whole run has a hard deadline
(--deadline-s): past it, the bench prints what it has and exits 1, as it does when a task did
not end `success` exactly once.

    .venv/bin/python -m bench.farm [--hosts 100] [--devices 10] [--tasks 20000] \\
        [--postgresql | --database postgresql://USER@HOST/DB [--database-pid PID]] \\
        [--replicas N]
    .venv/bin/python -m bench.farm --coordinator http://A:8765 --coordinator http://B:8765 \\
        --database postgresql://USER@HOST/DB [--coordinator-pid PID ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import farmrun
from bench.fakehost import Farm
from bench.farmstack import OwnCoordinator, api_client, create_credentials, host_ids, ws_url
from scripts.devstack import free_port
from tests.pg import Cluster

ASSIGN_RATE_TARGET = 500.0
RESTART_TARGET_S = 10.0
CPU_PER_TASK_TARGET_S = 1 / ASSIGN_RATE_TARGET
"""One core keeps up with the target rate."""


@dataclass
class Run:
    """What the run has reached and measured; printed whether it finished or not."""

    args: argparse.Namespace
    phase: str = "setup"
    farm: Farm | None = None
    coordinators: list[OwnCoordinator] = field(default_factory=list)
    """The coordinator or replicas the bench started (none with --coordinator)."""
    connect_s: float | None = None
    restart: farmrun.Restart | None = None
    load: farmrun.Load | None = None
    timed_out: bool = False
    connected_at_deadline: int = 0
    log_tail: list[str] = field(default_factory=list)

    async def close(self) -> None:
        if self.load is not None and self.load.began:
            self.load.stop()
        # Read before stopping anything: the closes and the shutdown would fill the tail.
        many = len(self.coordinators) > 1
        for i, coordinator in enumerate(self.coordinators):
            tail = coordinator.log_tail(20)
            self.log_tail += [f"[replica {i}] {line}" for line in tail] if many else tail
        if self.farm is not None:
            await self.farm.stop()
        await asyncio.gather(*(c.stop() for c in self.coordinators))


async def phases(run: Run, workdir: Path) -> None:
    args = run.args
    deadline_s = args.deadline_s
    hosts = host_ids(args.hosts)
    data_dir = args.data_dir or workdir / "coordinator"
    data_dir.mkdir(parents=True, exist_ok=True)  # SQLite would make it; PostgreSQL does not
    tokens, api_key = await create_credentials(data_dir, hosts, args.database)
    base_urls: list[str] = args.coordinator
    if not base_urls:
        run.coordinators = own_coordinators(data_dir, api_key, args.database, args.replicas)
        await asyncio.gather(*(c.start() for c in run.coordinators))
        base_urls = [c.base_url for c in run.coordinators]
    run.farm = farm = Farm.build(tokens, args.devices, [ws_url(url) for url in base_urls])
    async with contextlib.AsyncExitStack() as stack:
        views = [await stack.enter_async_context(api_client(u, api_key)) for u in base_urls]
        http = views[0]
        run.phase = "connect"
        run.connect_s = await farmrun.connect(farm, views, deadline_s)
        if len(run.coordinators) == 1:
            run.phase = "restart"
            coordinator = run.coordinators[0]
            run.restart = await farmrun.restart_coordinator(coordinator, farm, http, deadline_s)
        run.phase = "load"
        run.load = farmrun.Load(args.tasks, _coordinator_pids(run), args.database_pid)
        await farmrun.load(farm, http, run.load, deadline_s)
        if len(run.coordinators) > 1:
            # After the load: the stopped replica's hosts stay on the others, and the load is
            # to be measured with the hosts spread over every replica.
            run.phase = "restart"
            run.restart = await farmrun.restart_replica(run.coordinators, views, farm, deadline_s)
    run.phase = "done"


def own_coordinators(
    data_dir: Path, api_key: str, database: str | None, replicas: int
) -> list[OwnCoordinator]:
    """The coordinator, or `replicas` of them on one database, the bench starts. Each replica
    has a data dir of its own under `data_dir` (its log is there; the fake hosts store no
    files, which replicas would share through one data dir)."""
    if replicas == 1:
        return [OwnCoordinator(data_dir, free_port(), api_key, database=database)]
    dirs = [data_dir / f"replica-{i}" for i in range(replicas)]
    for replica_dir in dirs:
        replica_dir.mkdir(exist_ok=True)
    return [OwnCoordinator(d, free_port(), api_key, database=database) for d in dirs]


def _coordinator_pids(run: Run) -> list[int]:
    if run.coordinators:
        return [c.pid for c in run.coordinators if c.pid is not None]
    pids: list[int] = run.args.coordinator_pid
    return pids


def _against(value: float, target: float, higher_is_better: bool, unit: str = "") -> str:
    met = value >= target if higher_is_better else value <= target
    sign = ">=" if higher_is_better else "<="
    verdict = "met" if met else "missed"
    return f"(target {sign} {target:.3g}{unit}, {value / target:.2f}x, {verdict})"


def report(run: Run) -> bool:
    """Print every figure the run reached; whether the run completed and was correct."""
    args = run.args
    own = "started by the bench"
    if args.replicas > 1:
        own = f"{args.replicas} replicas on one database, {own}"
    print(
        f"farm: {args.hosts} hosts x {args.devices} devices, {args.tasks} tasks; coordinator: "
        + (", ".join(args.coordinator) if args.coordinator else own)
    )
    if run.connect_s is not None:
        print(f"connect: every device free after {run.connect_s:.1f} s")
    if run.restart is not None:
        r = run.restart
        what = "restart" if args.replicas == 1 else "restart of one replica (after the load)"
        print(
            f"{what}: its {r.hosts} hosts back and every device free {r.back_s:.1f} s after "
            f"SIGTERM {_against(r.back_s, RESTART_TARGET_S, False, ' s')}; "
            f"stop {r.stop_s:.1f} s, start {r.start_s:.1f} s"
        )
    correct = _report_load(run)
    if run.farm is not None:
        stats = run.farm.stats
        drops = sum(stats.drops.values())
        why = ", ".join(f"{n} x {reason}" for reason, n in stats.drops.most_common())
        verdict = "met" if not drops else "missed"
        print(f"session drops: {drops} (target 0, {verdict}){why and ': '}{why}")
        print(
            f"welcomes: {stats.welcomes}; closes at the restart: {stats.expected_closes}; "
            f"failed connection attempts: {stats.failed_connects}"
        )
        if stats.refused:
            correct = False
            print(
                "refused or unexpected: "
                + ", ".join(f"{n} x {w}" for w, n in stats.refused.items())
            )
    if run.timed_out:
        print(
            f"DEADLINE: {args.deadline_s:g} s reached during the {run.phase} phase, "
            f"{run.connected_at_deadline} of {args.hosts} hosts connected"
        )
    if run.timed_out or not correct:
        print("coordinator log, last lines:", *run.log_tail, sep="\n  ")
    return correct and not run.timed_out


def _report_load(run: Run) -> bool:
    """Print the load phase's figures; whether every task ended `success` exactly once."""
    if run.load is None or run.farm is None or not run.load.began:
        return run.phase == "done"
    tasks = run.load.tasks
    f = farmrun.figures(run.load, run.farm)
    if not run.load.complete:
        print("load cut short: the figures below cover only the tasks that got that far")
    if f.rate is not None:
        print(f"assignments/s: {f.rate:.1f} {_against(f.rate, ASSIGN_RATE_TARGET, True)}")
    for name, value, share in (("p50", f.p50_s, 0.5), ("p99", f.p99_s, 0.99)):
        if value is not None:
            # The queueing delay if the coordinator assigned at exactly the target rate.
            target = share * tasks / ASSIGN_RATE_TARGET
            print(
                f"creation -> assign {name}: {value:.2f} s {_against(value, target, False, ' s')}"
            )
    counts = ", ".join(f"{state} {n}" for state, n in sorted(run.load.counts.items()))
    print(
        f"tasks: {f.created} created, {f.assigned} assigned, {f.assigned_again} assigned more "
        f"than once (target 0), {f.finished} finished at the hosts; API: {counts or 'not read'}"
    )
    if f.coordinator_cpu_per_task_s is not None:
        cpu = f.coordinator_cpu_per_task_s * 1000
        target_ms = CPU_PER_TASK_TARGET_S * 1000
        print(f"coordinator CPU per task: {cpu:.2f} ms {_against(cpu, target_ms, False, ' ms')}")
    if f.database_cpu_per_task_s is not None:
        print(f"database server CPU per task: {f.database_cpu_per_task_s * 1000:.2f} ms")
    print(
        f"bench process CPU: {f.bench_cpu_s:.1f} s in {f.wall_s:.1f} s "
        f"({100 * f.bench_cpu_s / f.wall_s:.0f}% of one core; near 100% the bench is the limit)"
    )
    _report_ceiling(f)
    return f.assigned_again == 0 and run.load.counts == {"success": tasks}


def _report_ceiling(f: farmrun.LoadFigures) -> None:
    """The rate the machine's cores allow when the coordinator, the database server and the
    bench share them: cores / their CPU per task together (a measured bound, not a target)."""
    if f.coordinator_cpu_per_task_s is None or not f.finished:
        return
    parts = [f.coordinator_cpu_per_task_s, f.bench_cpu_s / f.finished]
    if f.database_cpu_per_task_s is not None:
        parts.append(f.database_cpu_per_task_s)
    total = sum(parts)
    cores = os.cpu_count() or 1
    named = "coordinator + database + bench" if len(parts) == 3 else "coordinator + bench"
    print(
        f"CPU per task, {named}: {total * 1000:.2f} ms; ceiling on {cores} cores: "
        f"{cores / total:.0f} tasks/s {_against(cores / total, ASSIGN_RATE_TARGET, True)}"
    )


async def main_async(args: argparse.Namespace) -> int:
    run = Run(args)
    with tempfile.TemporaryDirectory(prefix="farm-") as tmp:
        try:
            async with asyncio.timeout(args.deadline_s):
                await phases(run, Path(tmp))
        except TimeoutError:
            run.timed_out = True
            if run.farm is not None:
                run.connected_at_deadline = run.farm.connected()
        finally:
            await run.close()
        return 0 if report(run) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--devices", type=int, default=10, help="devices per host")
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument(
        "--coordinator",
        action="append",
        default=[],
        metavar="URL",
        help="base URL of a running coordinator (repeat for replicas: each host uses them "
        "round-robin); without it the bench starts its own and also times a restart",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="the data dir of the --coordinator(s), where the bench makes host tokens and an "
        "API key (needed with --coordinator)",
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        help="a PostgreSQL URL: the coordinators' database (the bench's own coordinator's, or "
        "that of the --coordinator(s)); without it, SQLite in the data dir",
    )
    parser.add_argument(
        "--coordinator-pid",
        type=int,
        action="append",
        default=[],
        help="with --coordinator: a process whose CPU time to count per task (repeat for "
        "replicas: their CPU is added up)",
    )
    parser.add_argument(
        "--postgresql",
        action="store_true",
        help="start a throwaway PostgreSQL cluster (tests/pg.py) for the coordinator and count "
        "its server's CPU per task",
    )
    parser.add_argument(
        "--database-pid",
        type=int,
        help="with --database: the PostgreSQL server's postmaster, whose CPU (with its "
        "backends') to count per task",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        metavar="N",
        help="start N coordinator replicas on one PostgreSQL database (needs --postgresql or "
        "--database); the hosts take them round-robin, their CPU is added up, and the restart "
        "stops one after the load",
    )
    parser.add_argument("--deadline-s", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    if args.replicas > 1 and (args.coordinator or not (args.postgresql or args.database)):
        parser.error("--replicas needs --postgresql or --database, and not --coordinator")
    if args.postgresql and (args.database or args.coordinator):
        parser.error("--postgresql starts its own database: not with --database or --coordinator")
    if args.database_pid is not None and args.database is None:
        parser.error("--database-pid goes with --database")
    if args.coordinator and args.data_dir is None and args.database is None:
        parser.error(
            "--coordinator needs --data-dir or --database (to make the host tokens and API key)"
        )
    if not args.coordinator and (args.data_dir or args.coordinator_pid):
        parser.error("--data-dir and --coordinator-pid go with --coordinator")
    return args


def main() -> None:
    began = time.monotonic()
    args = parse_args()
    cluster = None
    if args.postgresql:
        cluster = Cluster.start()
        args.database = cluster.create_database()
        args.database_pid = cluster.postmaster_pid()
        print(f"database: a throwaway PostgreSQL cluster, {args.database}")
    try:
        status = asyncio.run(main_async(args))
    finally:
        if cluster is not None:
            cluster.stop()
    print(f"total {time.monotonic() - began:.1f} s")
    sys.exit(status)


if __name__ == "__main__":
    main()
