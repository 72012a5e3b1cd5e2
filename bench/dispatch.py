"""Dispatch latency: from a task's creation over HTTP to its script's first RPC.

Starts a real coordinator and daemon (one headless Chromium device, sandbox on) on 127.0.0.1,
then creates trivial tasks one at a time, each once the device is offered for work again (no
task waits behind another, and the device is warm: its next script host and browser context
are ready, agent/ahead.py), and takes, for each, the time
from just before `POST /api/jobs/{id}/tasks` to the moment its script makes its first call.
Beside it, in the same run, the cost of a bare `python -c pass` spawn: the floor any
process-per-task design pays. Prints p50 and p99 of both and their ratio.

    .venv/bin/python -m bench.dispatch [--tasks 200]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.devstack import (
    Coordinator,
    Daemon,
    add_tasks,
    create_job,
    devices_of,
    free_port,
    wait_devices,
    wait_terminal,
    wait_until,
)

SCRIPT = """
import time

async def main(agent):
    await agent.utils.job.submit_task("success", {"first_rpc_at": time.time()}, True)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spawn_costs(count: int) -> list[float]:
    costs = []
    for _ in range(count):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=60)
        costs.append(time.perf_counter() - start)
    return costs


def dispatch_latencies(count: int, workdir: Path) -> list[float]:
    (workdir / "coordinator").mkdir()
    (workdir / "daemon").mkdir()
    coordinator = Coordinator(data_dir=workdir / "coordinator", port=free_port())
    daemon = Daemon(dir=workdir / "daemon", coordinator=coordinator)
    coordinator.start()
    latencies = []
    try:
        daemon.start()
        with coordinator.http() as http:
            wait_devices(http, "host-1", 1)
            job = create_job(http, SCRIPT, timeout_s=60)
            for _ in range(count):
                # A warm device: its next task's script host and context are ready.
                wait_until(lambda: devices_of(http, "host-1")[0]["free"], "the device offered")
                created_at = time.time()
                (task,) = add_tasks(http, job["id"], {"input": {}})
                done = wait_terminal(http, task["id"])
                if done["state"] != "success":
                    raise SystemExit(f"task failed: {done}")
                latencies.append(done["result"]["first_rpc_at"] - created_at)
    finally:
        daemon.stop()
        coordinator.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    spawn = spawn_costs(50)
    with tempfile.TemporaryDirectory() as tmp:
        latency = dispatch_latencies(args.tasks, Path(tmp))
    p50, p99 = percentile(latency, 0.5), percentile(latency, 0.99)
    s50, s99 = percentile(spawn, 0.5), percentile(spawn, 0.99)
    print(f"tasks: {len(latency)} (sequential, 1 browser device)")
    print(f"creation -> first script RPC: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    print(f"bare `python -c pass` spawn:   p50 {s50 * 1000:.1f} ms, p99 {s99 * 1000:.1f} ms")
    print(f"ratio (dispatch / spawn): p50 {p50 / s50:.2f}x, p99 {p99 / s99:.2f}x")
    print(f"mean dispatch {statistics.mean(latency) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
