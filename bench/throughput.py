"""Throughput of trivial tasks on one host: tasks/s, CPU per task, latency.

Starts a real coordinator and one daemon (sandbox on, as in production) on 127.0.0.1, first with
`--devices` headless Chromium devices, then with as many simulated phones (`device-agent sim`
processes behind the daemon's own adb server), and in each setup creates `--tasks` trivial tasks
at once (`main` returns at once) and waits until all have ended. For each it prints:
- tasks/s: from the first task's creation to the last one's end (target >= 50/s);
- CPU per task over the run: the daemon and every process it started (script hosts and their
  sandboxes, warm ones included, the adb server), counted by a cgroup v1 `cpuacct` group the
  daemon starts in (bench/cpuacct.py), apart from the browser's (Chromium and Playwright's
  driver, from /proc), which is shown on its own (target <= 30 ms outside the browser);
- p50 / p99 from creation to end (the tasks are made all at once: mostly queueing);
- the coordinator's CPU per task and the bench's own (from /proc), which share the cores with
  the daemon: the rate the cores allow whatever the daemon does (cores / their CPU per task),
  and the rate they allow with the daemon's CPU per task as measured added (a measured bound, not
  a target).
Beside it, in the same run, the floor of a process per task: the CPU of starting one sandboxed
script host until it is ready (bubblewrap, the interpreter, the script host's imports), so the
CPU per task can be read against what a fresh process alone costs; and what the daemon does now
instead (agent/zygote.py): the CPU of forking one host from a device's zygote until it is ready
and ending it (the zygote's own start, once per device, not counted).

    .venv/bin/python -m bench.throughput [--tasks 500] [--devices 10]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from agent.hoststart import start_host
from agent.sandbox import probe
from agent.script_settings import ScriptSettings
from agent.zygote import start_zygote
from bench.cpuacct import CpuAccount
from bench.farmstack import cpu_seconds
from bench.phonefarm import phone_daemon, sim_phones
from bench.proctree import browser_cpu_s
from drivers.sim import free_port as free_phone_port
from scripts.devstack import (
    Coordinator,
    Daemon,
    create_job,
    free_port,
    kill_adb_server,
    wait_devices,
    wait_until,
)

HOST = "bench-host"
SCRIPT = "async def main(agent):\n    return {'ok': 1}\n"
TARGET_PER_S = 50.0
TARGET_CPU_MS = 30.0
ENDED = ("success", "failed", "timeout", "cancelled", "expired")
POLL_S = 0.5
"""How often the bench asks the coordinator how many tasks ended: seldom, as each question costs
the coordinator CPU; the run's end is the last task's end as the coordinator recorded it."""


@dataclass
class Figures:
    setup: str
    tasks: int
    seconds: float
    outside_cpu_s: float
    browser_cpu_s: float
    coordinator_cpu_s: float
    bench_cpu_s: float
    latencies: list[float]

    def show(self) -> None:
        rate = self.tasks / self.seconds
        outside_ms = 1000 * self.outside_cpu_s / self.tasks
        browser_ms = 1000 * self.browser_cpu_s / self.tasks
        p50, p99 = percentile(self.latencies, 0.5), percentile(self.latencies, 0.99)
        print(f"{self.setup}: {self.tasks} tasks in {self.seconds:.1f} s")
        print(f"  tasks/s: {rate:.1f} (target {TARGET_PER_S:g}: {rate / TARGET_PER_S:.2f}x)")
        print(
            f"  CPU per task outside the browser: {outside_ms:.1f} ms "
            f"(target {TARGET_CPU_MS:g}: {outside_ms / TARGET_CPU_MS:.2f}x); "
            f"browser: {browser_ms:.1f} ms"
        )
        print(f"  creation -> end: p50 {p50:.2f} s, p99 {p99:.2f} s")
        coordinator_s, bench_s = self.coordinator_cpu_s / self.tasks, self.bench_cpu_s / self.tasks
        shared = coordinator_s + bench_s
        every = shared + (self.outside_cpu_s + self.browser_cpu_s) / self.tasks
        cores = os.cpu_count() or 1
        print(
            f"  CPU per task, coordinator: {1000 * coordinator_s:.1f} ms, "
            f"bench: {1000 * bench_s:.1f} ms; ceiling on {cores} cores: "
            f"{cores / shared:.0f} tasks/s whatever the daemon does, "
            f"{cores / every:.0f} tasks/s with its CPU per task as measured"
        )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ended_count(http: httpx.Client, job_id: str) -> int:
    params: dict[str, Any] = {"job_id": job_id, "state": list(ENDED), "limit": 1}
    return int(http.get("/api/tasks", params={**params, "with_total": "true"}).json()["total"])


def job_tasks(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"job_id": job_id, "limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = http.get("/api/tasks", params=params).json()
        tasks += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return tasks


def run_load(
    coordinator: Coordinator,
    daemon: Daemon,
    account: CpuAccount,
    setup: str,
    count: int,
    devices: int,
) -> Figures:
    assert daemon.proc is not None and daemon.proc.popen is not None
    assert coordinator.proc is not None and coordinator.proc.popen is not None
    pid, coordinator_pid = daemon.proc.popen.pid, coordinator.proc.popen.pid
    with coordinator.http() as http:
        wait_until(
            lambda: len([d for d in wait_devices(http, HOST, devices) if d["free"]]) == devices,
            f"{devices} devices offered for work",
            120,
        )
        job = create_job(http, SCRIPT, timeout_s=60)
        before, browser_before = account.usage_s(), browser_cpu_s(pid)
        coordinator_before, bench_before = cpu_seconds(coordinator_pid), time.process_time()
        start = time.time()
        for offset in range(0, count, 500):
            body = {"tasks": [{"input": {}} for _ in range(min(500, count - offset))]}
            http.post(f"/api/jobs/{job['id']}/tasks", json=body).raise_for_status()
        wait_until(
            lambda: ended_count(http, job["id"]) == count, f"{count} tasks ended", 1800, POLL_S
        )
        after, browser_after = account.usage_s(), browser_cpu_s(pid)
        coordinator_after, bench_after = cpu_seconds(coordinator_pid), time.process_time()
        tasks = job_tasks(http, job["id"])
    failed = [t for t in tasks if t["state"] != "success"]
    if failed:
        raise SystemExit(f"{len(failed)} task(s) did not succeed, e.g. {failed[0]}")
    latencies = [
        (
            datetime.fromisoformat(t["finished_at"]) - datetime.fromisoformat(t["created_at"])
        ).total_seconds()
        for t in tasks
    ]
    last_end = max(datetime.fromisoformat(t["finished_at"]).timestamp() for t in tasks)
    browser = browser_after - browser_before
    return Figures(
        setup,
        count,
        last_end - start,
        after - before - browser,
        browser,
        coordinator_after - coordinator_before,
        bench_after - bench_before,
        latencies,
    )


def browsers(count: int, devices: int, workdir: Path) -> Figures:
    account = CpuAccount("bench-browsers")
    coordinator = Coordinator(data_dir=workdir / "coordinator", port=free_port())
    (workdir / "coordinator").mkdir()
    (workdir / "daemon").mkdir()
    daemon = Daemon(
        dir=workdir / "daemon",
        coordinator=coordinator,
        host_id=HOST,
        browsers=[{"name": f"browser-{i}"} for i in range(devices)],
        argv_prefix=account.prefix(),
    )
    coordinator.start()
    try:
        daemon.start()
        setup = f"{devices} browser devices"
        return run_load(coordinator, daemon, account, setup, count, devices)
    finally:
        daemon.stop()
        coordinator.stop()
        account.remove()


def phones(count: int, devices: int, workdir: Path) -> Figures:
    account = CpuAccount("bench-phones")
    coordinator = Coordinator(data_dir=workdir / "coordinator", port=free_port())
    (workdir / "coordinator").mkdir()
    ports = [free_phone_port() for _ in range(devices)]
    sims = sim_phones(ports, workdir)
    daemon, adb_port, adb_env = phone_daemon(
        workdir, coordinator, HOST, ports, argv_prefix=account.prefix()
    )
    coordinator.start()
    try:
        for sim in sims:
            sim.start()
        daemon.start()
        setup = f"{devices} simulated phones"
        return run_load(coordinator, daemon, account, setup, count, devices)
    finally:
        daemon.stop()
        coordinator.stop()
        for sim in sims:
            sim.stop()
        kill_adb_server(adb_port, adb_env)
        account.remove()


def host_start_cpu_ms(runs: int, workdir: Path) -> float:
    """CPU of starting one sandboxed script host until it is ready: a process per task's floor."""
    isolation = probe(ScriptSettings(work_root=workdir / "hosts", kill_grace_s=5))
    if isolation.problems:
        raise SystemExit(isolation.report())
    log = logging.getLogger("bench.throughput")

    account = CpuAccount("bench-floor")
    account.join(os.getpid())

    async def measure() -> float:
        costs = []
        for _ in range(runs):
            before = account.usage_s()
            host = await start_host(isolation, log)
            await host.end(5)
            costs.append(account.usage_s() - before)
        return 1000 * statistics.median(costs)

    try:
        return asyncio.run(measure())
    finally:
        account.remove()


def fork_cpu_ms(runs: int, workdir: Path) -> float:
    """CPU of forking one script host from a zygote until it is ready, and ending it."""
    isolation = probe(ScriptSettings(work_root=workdir / "hosts", kill_grace_s=5))
    log = logging.getLogger("bench.throughput")
    account = CpuAccount("bench-fork")
    account.join(os.getpid())

    async def measure() -> float:
        zygote = await start_zygote(isolation, log)
        costs = []
        try:
            for _ in range(runs):
                before = account.usage_s()
                host = await zygote.fork()
                await host.end(5)
                costs.append(account.usage_s() - before)
        finally:
            await zygote.close()
        return 1000 * statistics.median(costs)

    try:
        return asyncio.run(measure())
    finally:
        account.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--devices", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        root = Path(tmp)
        (root / "floor").mkdir()
        floor = host_start_cpu_ms(20, root / "floor")
        forked = fork_cpu_ms(20, root / "floor")
        (root / "browsers").mkdir()
        on_browsers = browsers(args.tasks, args.devices, root / "browsers")
        (root / "phones").mkdir()
        on_phones = phones(args.tasks, args.devices, root / "phones")
    on_browsers.show()
    on_phones.show()
    print(f"floor: one sandboxed script host started until ready: {floor:.1f} ms of CPU (median)")
    print(
        f"zygote: one script host forked until ready and ended: {forked:.1f} ms of CPU "
        f"(median; {forked / floor:.2f}x the floor)"
    )


if __name__ == "__main__":
    main()
