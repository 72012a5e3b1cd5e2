"""Android action throughput and screenshot latency: through the daemon, and directly with
uiautomator2, against the same simulated phone in the same run.

Starts a simulated phone (`device-agent sim`, its own process), a real coordinator and a daemon
with only Android enabled (its own adb server). Through the daemon: a task's script times
`tap` calls (actions per second) and `screenshot(720, 1280, 80)` calls (latency), each one RPC from
the script host to the daemon, the daemon's worker thread, adb and the uiautomator2 server. Direct:
the same calls with uiautomator2 in this process (`d.click`, `d.screenshot()`) through the same
adb server. Prints both and their ratio (daemon / direct; the target is <= 1.3x).

    .venv/bin/python -m bench.android [--taps 200] [--shots 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import adbutils  # type: ignore[import-untyped,unused-ignore]
import uiautomator2 as u2  # type: ignore[import-untyped,unused-ignore]

from drivers.sim import free_port
from scripts.devstack import (
    Coordinator,
    Daemon,
    Proc,
    add_tasks,
    android_config,
    create_job,
    kill_adb_server,
    wait_device,
    wait_terminal,
)

HOST = "bench-host"
SCRIPT = """
import time

async def main(agent):
    a = agent.actions
    await a.tap(10, 10)
    await a.screenshot(720, 1280, 80)
    start = time.perf_counter()
    for _ in range(TAPS):
        await a.tap(10, 10)
    taps_s = time.perf_counter() - start
    shots = []
    for _ in range(SHOTS):
        start = time.perf_counter()
        await a.screenshot(720, 1280, 80)
        shots.append(time.perf_counter() - start)
    return {"taps_s": taps_s, "shots": shots}
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def direct(adb_port: int, serial: str, taps: int, shots: int) -> dict[str, Any]:
    client = adbutils.AdbClient(host="127.0.0.1", port=adb_port, socket_timeout=10)
    d = u2.connect(client.device(serial))
    d.click(10, 10)
    d.screenshot()
    start = time.perf_counter()
    for _ in range(taps):
        d.click(10, 10)
    taps_s = time.perf_counter() - start
    latencies = []
    for _ in range(shots):
        start = time.perf_counter()
        d.screenshot()
        latencies.append(time.perf_counter() - start)
    return {"taps_s": taps_s, "shots": latencies}


def through_daemon(workdir: Path, taps: int, shots: int) -> tuple[dict[str, Any], dict[str, Any]]:
    (workdir / "coordinator").mkdir()
    (workdir / "daemon").mkdir()
    (workdir / "home").mkdir()
    phone_port, adb_port = free_port(), free_port()
    env = {"HOME": str(workdir / "home")}
    phone = Proc(
        [sys.executable, "-m", "agent.cli.main", "sim", "--port", str(phone_port)],
        workdir / "sim.log",
    )
    coordinator = Coordinator(data_dir=workdir / "coordinator", port=free_port())
    daemon = Daemon(
        dir=workdir / "daemon",
        coordinator=coordinator,
        host_id=HOST,
        browsers=[],
        extra=android_config(adb_port, [f"127.0.0.1:{phone_port}"], health_interval_s=5.0),
        env=env,
    )
    phone.start()
    phone.wait_log("listening")
    coordinator.start()
    try:
        daemon.start()
        with coordinator.http() as http:
            wait_device(http, HOST, "available")
            script = SCRIPT.replace("TAPS", str(taps)).replace("SHOTS", str(shots))
            job = create_job(http, script, timeout_s=600)
            (task,) = add_tasks(http, job["id"], {"input": {}})
            done = wait_terminal(http, task["id"], deadline_s=600)
            if done["state"] != "success":
                raise SystemExit(f"bench task failed: {done}\n{daemon.log()[-2000:]}")
            wait_device(http, HOST, "available")
            baseline = direct(adb_port, f"127.0.0.1:{phone_port}", taps, shots)
        return done["result"], baseline
    finally:
        daemon.stop()
        coordinator.stop()
        kill_adb_server(adb_port, env)
        phone.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=200)
    parser.add_argument("--shots", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-android-") as tmp:
        daemon, u2_direct = through_daemon(Path(tmp), args.taps, args.shots)
    rows = []
    for name, figures in (("daemon", daemon), ("u2 direct", u2_direct)):
        rate = args.taps / figures["taps_s"]
        shots = figures["shots"]
        p50, p99 = statistics.median(shots), percentile(shots, 0.99)
        rows.append((name, rate, p50, p99))
        print(
            f"{name:>10}: tap {rate:7.1f} actions/s; "
            f"screenshot p50 {p50 * 1000:6.1f} ms, p99 {p99 * 1000:6.1f} ms"
        )
    (_, d_rate, d_p50, d_p99), (_, u_rate, u_p50, u_p99) = rows
    print(
        f"     ratio: tap time {u_rate / d_rate:.2f}x; screenshot p50 {d_p50 / u_p50:.2f}x, "
        f"p99 {d_p99 / u_p99:.2f}x (daemon / direct; target <= 1.3x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
