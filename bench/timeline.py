"""The timeline's cost: a script making 1,000 actions, run with its timeline and without.

Runs the same task through `agent.runner.run_task` (sandboxed script host, as the daemon runs
it) again and again, in pairs of one run each way, and takes its run time (run_task called ->
returned). With the timeline: every call is recorded as the daemon records it, batched into
`timeline` frames committed to a real outbox (SQLite, synchronous=FULL) in a temporary
directory. Without: `run_task` given no timeline (the run as it was before timelines existed).
Both end as the daemon ends a run: its `finished` committed to the outbox (with the timeline's
last batch in the same commit).
The action is the cheapest there is, a device session that answers at once: the worst case for
the timeline's share of the run. Prints the median and best of both and the median of the
pairs' ratios (target <= 1.1x), and the daemon side's CPU time (this process: the script host
is a child, not counted), a figure the machine's load moves less: each way's median, the
median of the pairs' differences, and what recording a call costs alone, in a tight loop.

    .venv/bin/python -m bench.timeline [--runs 10] [--actions 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import protocol as p
from agent.outbox import Outbox, OutboxSettings
from agent.runner import run_task
from agent.sandbox import Isolation, probe
from agent.script_settings import ScriptSettings
from agent.timeline import ArtifactBlob, Timeline, TimelineEntry, note_outcome, record_call
from drivers.base import DeviceSession

SCRIPT = """
async def main(agent):
    for i in range({actions}):
        await agent.actions.tap(i, i)
    await agent.utils.job.submit_task("success", {{}}, True)
"""
LOG = logging.getLogger("bench")


class _Session(DeviceSession):
    async def call(self, action: str, params: dict[str, Any]) -> Any:
        return None

    async def close(self) -> None:
        return None


class _Backend:
    async def submit(self, frame: p.Submit | p.Dump) -> dict[str, Any]:
        return {"success": True}

    async def request(self, task_id: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return {}


async def _run(
    isolation: Isolation, outbox: Outbox, with_timeline: bool, actions: int, n: int
) -> tuple[float, float]:
    assignment = p.Assignment(
        task_id=f"bench-{n}-{with_timeline}",
        job_id="bench",
        remote_device_id="bench-device",
        script_sha256="0" * 64,
        script_source=SCRIPT.format(actions=actions),
        timeout_s=300,
    )

    def batch(entries: list[TimelineEntry], artifacts: list[ArtifactBlob]) -> p.TimelineBatch:
        return p.TimelineBatch(
            key=uuid.uuid4().hex,
            task_id=assignment.task_id,
            attempt=1,
            entries=entries,
            artifacts=artifacts,
        )

    async def sink(entries: list[TimelineEntry], artifacts: list[ArtifactBlob]) -> None:
        await outbox.put(batch(entries, artifacts))

    timeline = None
    if with_timeline:
        settings = isolation.settings
        timeline = Timeline(sink, settings.timeline_max_entries, settings.artifacts_max_bytes, LOG)
    before = outbox.items
    started, cpu = time.perf_counter(), time.process_time()
    outcome = await run_task(
        assignment, _Session(), {}, _Backend(), isolation, LOG, timeline=timeline
    )
    # Both ways end as the daemon ends a run: its `finished` committed to the outbox, with the
    # timeline's last batch just ahead of it in the same commit.
    ahead = None
    if timeline is not None:
        note_outcome(timeline, outcome.state, outcome.reason, outcome.error)
        ahead = batch(*timeline.last_batch())
    finished = p.Finished(
        key=uuid.uuid4().hex,
        task_id=assignment.task_id,
        state=outcome.state,
        finished_at=datetime.now(UTC),
        attempt=1,
    )
    await outbox.put(finished, ends_task=True, ahead=ahead)
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    if outcome.state != "success":
        raise SystemExit(f"a bench task failed: {outcome}")
    if outbox.items < before + (2 if with_timeline else 1):
        raise SystemExit("the run's end (and timeline) were not recorded in the outbox")
    return took, cpu


async def _bench(runs: int, actions: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-timeline-") as tmp:
        isolation = probe(ScriptSettings(work_root=Path(tmp)))
        if isolation.problems:
            raise SystemExit(isolation.report())
        outbox = await Outbox.open(Path(tmp) / "state.db", OutboxSettings(), LOG)
        try:
            times: dict[str, list[tuple[float, float]]] = {"with timeline": [], "without": []}
            await _run(isolation, outbox, False, actions, -1)  # warm the page cache
            for n in range(runs):
                # Each pair back to back, in turn one way first then the other: a load that
                # drifts (other work on the machine) touches both alike.
                if n % 2:
                    times["with timeline"].append(await _run(isolation, outbox, True, actions, n))
                    times["without"].append(await _run(isolation, outbox, False, actions, n))
                else:
                    times["without"].append(await _run(isolation, outbox, False, actions, n))
                    times["with timeline"].append(await _run(isolation, outbox, True, actions, n))
        finally:
            await outbox.close()
    print(f"{runs} runs each, in pairs; {actions} actions per run; run time = run_task")
    for name, values in times.items():
        wall = [w for w, _ in values]
        cpu = statistics.median(c for _, c in values)
        print(
            f"{name:14}{statistics.median(wall) * 1000:>9.1f} ms median"
            f"{min(wall) * 1000:>9.1f} ms best   daemon CPU {cpu * 1000:.1f} ms median"
        )
    pairs = list(zip(times["with timeline"], times["without"], strict=True))
    ratio = statistics.median(w[0] / wo[0] for w, wo in pairs)
    cpu = statistics.median(w[1] - wo[1] for w, wo in pairs)
    print(
        f"timeline's daemon CPU: {cpu * 1000:+.1f} ms a run, median of the pairs' differences"
        f" ({cpu / actions * 1e6:+.1f} us an action); recording alone, {actions} calls in a"
        f" tight loop (best of 5): {await _recording_alone(actions) / actions * 1e6:.1f} us a call"
    )
    print(f"ratio: {ratio:.3f}x median of the pairs' ratios  (target <= 1.1x)")


async def _recording_alone(actions: int) -> float:
    """Seconds `record_call` takes for `actions` calls one after another (no run, no sink); the
    best of 5 tries (a garbage collection or a page fault in one try is not the recording)."""
    at = datetime.now(UTC)
    tries = []
    for _ in range(5):
        timeline = Timeline(None, actions, 0, LOG)
        started = time.process_time()
        for i in range(actions):
            record_call(timeline, "actions.tap", {"x": i, "y": i}, at, 0.0001, None, None)
        tries.append(time.process_time() - started)
    return min(tries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--actions", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(_bench(args.runs, args.actions))


if __name__ == "__main__":
    main()
