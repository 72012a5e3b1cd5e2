"""The README's first command: run the example job on a local coordinator and daemon.

Starts everything on 127.0.0.1 (a coordinator with its data in demo-data/, a daemon with one
headless Chromium device, a local page), runs scripts/examples/browser_click.py as a job,
prints the task as the HTTP API returns it and saves the screenshot, then stops what it started.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import httpx

from scripts.devstack import (
    Coordinator,
    Daemon,
    add_tasks,
    create_job,
    free_port,
    wait_devices,
    wait_terminal,
)
from scripts.localsite import BUTTON_CENTER, serve_pages

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "scripts" / "examples" / "browser_click.py"


def main() -> int:
    data = ROOT / "demo-data"
    shutil.rmtree(data, ignore_errors=True)
    (data / "coordinator").mkdir(parents=True)
    (data / "daemon").mkdir()
    coordinator = Coordinator(data_dir=data / "coordinator", port=free_port())
    daemon = Daemon(dir=data / "daemon", coordinator=coordinator, host_id="demo-host")
    print(f"demo: coordinator on {coordinator.base_url} (data in {data})")
    coordinator.start()
    try:
        daemon.start()
        with serve_pages() as site, coordinator.http() as http:
            wait_devices(http, "demo-host", 1)
            job = create_job(http, EXAMPLE.read_text(), timeout_s=60)
            x, y = BUTTON_CENTER
            (task,) = add_tasks(http, job["id"], {"input": {"url": site, "x": x, "y": y}})
            print(f"demo: job {job['id']}, task {task['id']} created; waiting for the result")
            done = wait_terminal(http, task["id"])
            print(json.dumps(done, indent=2))
            for file in done["files"]:
                target = data / f"{file['name']}.{file['extension'].lstrip('.')}"
                target.write_bytes(http.get(file["url"]).content)
                print(f"demo: screenshot saved to {target}")
        print(
            f"demo: logs in {coordinator.proc.log_path if coordinator.proc else ''} "
            f"and {daemon.proc.log_path if daemon.proc else ''}"
        )
        return 0 if done["state"] == "success" else 1
    except (AssertionError, httpx.HTTPError) as exc:
        print(f"demo: failed: {exc}\n--- daemon log ---\n{daemon.log()}", file=sys.stderr)
        return 1
    finally:
        daemon.stop()
        coordinator.stop()


if __name__ == "__main__":
    sys.exit(main())
