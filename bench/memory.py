"""Memory of an idle host: the daemon with 1 and with 20 simulated phones, and one warm host.

Starts a real coordinator, 20 simulated phones (`device-agent sim` processes) and the daemon
(sandbox on) twice: with one phone attached, then with all 20. Once every device is offered for
work (each has its next task's script host started, agent/ahead.py), it reads from /proc:
- the daemon's own resident memory (VmRSS);
- each device's warm script host's proportional set size (Pss, smaps_rollup: pages shared with
  other processes are split among them) summed over its processes: the device's zygote in its
  sandbox (bubblewrap's two processes and the interpreter) and the host forked from it for the
  next task (its three processes, agent/scripthost/zygote.py), or, where there is no zygote,
  bubblewrap's two and the interpreter; against a bare `python -c` interpreter's Pss measured
  in the same run.

    .venv/bin/python -m bench.memory [--phones 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.sweep import TAG_PLACEHOLDER, tagged_processes
from bench.phonefarm import phone_daemon, sim_phones
from drivers.sim import free_port as free_phone_port
from scripts.devstack import (
    Coordinator,
    devices_of,
    free_port,
    kill_adb_server,
    wait_until,
)

HOST = "bench-host"
KIB = 1024


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise KeyError("Pss")


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def warm_hosts(daemon_pid: int) -> list[int]:
    """Pss of each warm host of the daemon: its sandbox (a child of the daemon: the zygote's, or
    the host's own) and all the processes under it (each carries the placeholder tag)."""
    tagged = set(tagged_processes({TAG_PLACEHOLDER}))
    roots = [pid for pid in tagged if parent(pid) == daemon_pid]
    sizes = []
    for root in roots:
        members = {root}
        grew = True
        while grew:
            more = {pid for pid in tagged if parent(pid) in members} - members
            grew = bool(more)
            members |= more
        sizes.append(sum(pss_kib(pid) for pid in members))
    return sizes


def bare_interpreter_pss_kib() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(1.0)  # a bench, not a test: let the interpreter finish starting
        return pss_kib(proc.pid)
    finally:
        proc.kill()
        proc.wait(10)


def idle_host(phones: list[int], workdir: Path, coordinator: Coordinator) -> tuple[int, list[int]]:
    """The daemon's VmRSS and its warm hosts' Pss (KiB), idle with `phones` attached."""
    daemon, adb_port, adb_env = phone_daemon(workdir, coordinator, HOST, phones)
    try:
        daemon.start()
        assert daemon.proc is not None and daemon.proc.popen is not None
        pid = daemon.proc.popen.pid
        with coordinator.http() as http:
            wait_until(
                lambda: sum(d["free"] for d in devices_of(http, HOST)) == len(phones),
                f"{len(phones)} phones offered for work",
                180,
            )
        wait_until(lambda: len(warm_hosts(pid)) == len(phones), "a warm host per phone", 60)
        return status_kib(pid, "VmRSS"), warm_hosts(pid)
    finally:
        daemon.stop()
        kill_adb_server(adb_port, adb_env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        root = Path(tmp)
        (root / "coordinator").mkdir()
        coordinator = Coordinator(data_dir=root / "coordinator", port=free_port())
        ports = [free_phone_port() for _ in range(args.phones)]
        sims = sim_phones(ports, root)
        coordinator.start()
        try:
            for sim in sims:
                sim.start()
            (root / "one").mkdir()
            one_rss, one_hosts = idle_host(ports[:1], root / "one", coordinator)
            (root / "all").mkdir()
            all_rss, all_hosts = idle_host(ports, root / "all", coordinator)
        finally:
            coordinator.stop()
            for sim in sims:
                sim.stop()
        bare = bare_interpreter_pss_kib()
    warm = statistics.median(one_hosts + all_hosts)
    print(
        f"daemon VmRSS, idle: 1 phone {one_rss / KIB:.1f} MiB, {args.phones} phones "
        f"{all_rss / KIB:.1f} MiB ({(all_rss - one_rss) / KIB / (args.phones - 1):.2f} MiB "
        "per further phone)"
    )
    print(
        f"one device's warm script host (its zygote + the fork waiting), Pss: {warm / KIB:.1f} MiB "
        f"(median of {len(one_hosts + all_hosts)}); a bare `python -c` interpreter: "
        f"{bare / KIB:.1f} MiB; ratio {warm / bare:.2f}x"
    )
    total = sum(all_hosts)
    print(f"warm hosts of {args.phones} idle phones together: {total / KIB:.1f} MiB")


if __name__ == "__main__":
    main()
