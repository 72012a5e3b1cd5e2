"""`device-agent outbox --config FILE`: what waits for the coordinator, read from the state file.

Safe while the daemon runs: it opens the SQLite file read-only (WAL lets it read beside the
daemon's writes).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from agent.config import ConfigError, load_config

EXIT_CONFIG = 2


def register(commands: Any) -> None:
    parser = commands.add_parser("outbox", help="show what waits in the outbox")
    parser.add_argument("--config", type=Path, required=True, help="TOML configuration file")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=handle)


def read_outbox(path: Path) -> dict[str, Any]:
    """The outbox's summary, per-task rows and dead letters."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        now = time.time()
        total = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0), MIN(created_at) FROM outbox"
        ).fetchone()
        tasks = db.execute(
            "SELECT task_id, COUNT(*), SUM(bytes), MIN(created_at), GROUP_CONCAT(DISTINCT kind) "
            "FROM outbox GROUP BY task_id ORDER BY MIN(id)"
        ).fetchall()
        dead = db.execute(
            "SELECT key, task_id, kind, bytes, error, dead_at FROM dead_letter ORDER BY dead_at"
        ).fetchall()
    finally:
        db.close()
    return {
        "items": total[0],
        "bytes": total[1],
        "oldest_age_s": round(now - total[2], 1) if total[2] is not None else None,
        "tasks": [
            {"task_id": t, "items": n, "bytes": b, "oldest_age_s": round(now - c, 1), "kinds": k}
            for t, n, b, c, k in tasks
        ],
        "dead_letter": [
            {"key": k, "task_id": t, "kind": kind, "bytes": b, "error": e, "dead_at": d}
            for k, t, kind, b, e, d in dead
        ],
    }


def handle(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"device-agent: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    path = config.agent.state_file
    try:
        report = read_outbox(path)
    except sqlite3.Error as exc:
        print(f"device-agent: cannot read the outbox in {path}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    age = report["oldest_age_s"]
    print(
        f"outbox {path}: {report['items']} item(s), {report['bytes']} bytes"
        + (f", oldest {age:.1f} s" if age is not None else "")
    )
    for task in report["tasks"]:
        print(
            f"  task {task['task_id']}: {task['items']} item(s), {task['bytes']} bytes, "
            f"oldest {task['oldest_age_s']:.1f} s ({task['kinds']})"
        )
    print(f"dead letters: {len(report['dead_letter'])}")
    for item in report["dead_letter"]:
        print(f"  {item['key']} (task {item['task_id']}, {item['kind']}): {item['error']}")
    return 0
