"""The README's first command: run the example jobs on a local coordinator and daemon.

Starts everything on 127.0.0.1 (a coordinator with its data in demo-data/, a simulated Android
phone, a daemon with one headless Chromium device and the phone through its own adb server, a
local page), runs scripts/examples/browser_click.py and scripts/examples/android_login.py as
jobs, prints each task as the HTTP API returns it and saves the screenshots, then stops what it
started.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import httpx

from drivers.sim import free_port as free_phone_port
from scripts.devstack import (
    Coordinator,
    Daemon,
    Proc,
    add_tasks,
    android_config,
    create_job,
    free_port,
    kill_adb_server,
    wait_device,
    wait_devices,
    wait_terminal,
)
from scripts.localsite import BUTTON_CENTER, serve_pages

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "scripts" / "examples" / "browser_click.py"
ANDROID_EXAMPLE = ROOT / "scripts" / "examples" / "android_login.py"


def run_job(
    http: httpx.Client, data: Path, script: Path, task_input: dict[str, object], device: str
) -> bool:
    """Run `script` as a one-task job pinned to `device` (a remote_device_id); print the task,
    save its files; True on success."""
    job = create_job(http, script.read_text(), timeout_s=60)
    (task,) = add_tasks(http, job["id"], {"input": task_input, "remote_device_id": device})
    print(f"demo: {script.name}: job {job['id']}, task {task['id']} created; waiting")
    done = wait_terminal(http, task["id"])
    print(json.dumps(done, indent=2))
    for file in done["files"]:
        target = data / f"{file['name']}.{file['extension'].lstrip('.')}"
        target.write_bytes(http.get(file["url"]).content)
        print(f"demo: screenshot saved to {target}")
    return bool(done["state"] == "success")


def main() -> int:
    data = ROOT / "demo-data"
    shutil.rmtree(data, ignore_errors=True)
    (data / "coordinator").mkdir(parents=True)
    (data / "daemon").mkdir()
    (data / "adb-home").mkdir()
    phone_port, adb_port = free_phone_port(), free_port()
    adb_env = {"HOME": str(data / "adb-home")}  # the adb server's keys stay in demo-data/
    phone = Proc(
        [sys.executable, "-m", "agent.cli.main", "sim", "--port", str(phone_port)],
        data / "sim.log",
    )
    coordinator = Coordinator(data_dir=data / "coordinator", port=free_port())
    daemon = Daemon(
        dir=data / "daemon",
        coordinator=coordinator,
        host_id="demo-host",
        extra=android_config(adb_port, [f"127.0.0.1:{phone_port}"]),
        env=adb_env,
    )
    print(f"demo: coordinator on {coordinator.base_url} (data in {data})")
    phone.start()
    coordinator.start()
    try:
        phone.wait_log("listening")
        print(f"demo: simulated phone on 127.0.0.1:{phone_port}")
        daemon.start()
        with serve_pages() as site, coordinator.http() as http:
            devices = {d["kind"]: d["remote_device_id"] for d in wait_devices(http, "demo-host", 2)}
            wait_device(http, "demo-host", "available", devices["android"])
            x, y = BUTTON_CENTER
            ok = run_job(http, data, EXAMPLE, {"url": site, "x": x, "y": y}, devices["browser"])
            ok = run_job(http, data, ANDROID_EXAMPLE, {}, devices["android"]) and ok
        print(
            f"demo: logs in {coordinator.proc.log_path if coordinator.proc else ''} "
            f"and {daemon.proc.log_path if daemon.proc else ''}"
        )
        return 0 if ok else 1
    except (AssertionError, httpx.HTTPError) as exc:
        print(f"demo: failed: {exc}\n--- daemon log ---\n{daemon.log()}", file=sys.stderr)
        return 1
    finally:
        daemon.stop()
        coordinator.stop()
        kill_adb_server(adb_port, adb_env)
        phone.stop()


if __name__ == "__main__":
    sys.exit(main())
