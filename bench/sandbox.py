"""Script host start: sandboxed (bubblewrap, an unprivileged user, a cgroup) against unsandboxed.

Runs the same trivial task through `agent.runner.run_task` again and again, alternating the two
ways, and takes from the call to the moment the script makes its first call (a submission the
backend records with the time). The baseline is `[scripts] sandbox = "off"` with no cgroup: the
script host as it started before the sandbox existed. Prints p50 and p99 of both and the ratio.

    .venv/bin/python -m bench.sandbox [--runs 40]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.protocol import Assignment, Dump, Submit
from agent.runner import run_task
from agent.sandbox import Isolation, probe
from agent.script_settings import ScriptSettings
from drivers.base import DeviceSession

SCRIPT = """
async def main(agent):
    await agent.utils.job.submit_task("success", {}, True)
"""


class _Session(DeviceSession):
    async def call(self, action: str, params: dict[str, Any]) -> Any:
        return None

    async def close(self) -> None:
        return None


class _Backend:
    """Accepts every submission and notes when the first one arrived."""

    def __init__(self) -> None:
        self.first_call_at: float | None = None

    async def submit(self, frame: Submit | Dump) -> dict[str, Any]:
        if self.first_call_at is None:
            self.first_call_at = time.perf_counter()
        return {"success": True}

    async def request(self, task_id: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return {}


async def _start_time(isolation: Isolation, n: int) -> float:
    backend = _Backend()
    assignment = Assignment(
        task_id=f"bench-{n}",
        job_id="bench",
        remote_device_id="bench-device",
        script_sha256="0" * 64,
        script_source=SCRIPT,
        timeout_s=60,
    )
    started = time.perf_counter()
    outcome = await run_task(
        assignment, _Session(), {}, backend, isolation, logging.getLogger("bench")
    )
    if outcome.state != "success" or backend.first_call_at is None:
        raise SystemExit(f"a bench task failed: {outcome}")
    return backend.first_call_at - started


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _bench(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        sandboxed = probe(ScriptSettings(work_root=Path(tmp)))
        if sandboxed.problems:
            raise SystemExit(sandboxed.report())
        plain = replace(probe(ScriptSettings(work_root=Path(tmp), sandbox="off")), cgroups=None)
        times: dict[str, list[float]] = {"sandboxed": [], "unsandboxed": []}
        await _start_time(sandboxed, -1)  # warm the page cache for both
        for n in range(runs):
            times["unsandboxed"].append(await _start_time(plain, n))
            times["sandboxed"].append(await _start_time(sandboxed, n))
    print(f"{runs} runs each, interleaved; start = run_task called -> the script's first call")
    print(f"{'':14}{'p50':>10}{'p99':>10}")
    for name, values in times.items():
        p50, p99 = statistics.median(values), _percentile(values, 0.99)
        print(f"{name:14}{p50 * 1000:>8.1f}ms{p99 * 1000:>8.1f}ms")
    ratio = statistics.median(times["sandboxed"]) / statistics.median(times["unsandboxed"])
    print(f"ratio (p50): {ratio:.2f}x  (target <= 1.2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(_bench(args.runs))


if __name__ == "__main__":
    main()
