"""`device-agent script run FILE`: run one script on a local device, no coordinator setup needed.

Everything runs in this process (agent/localrun.py): a coordinator on a free 127.0.0.1 port, the
daemon with one device, one task with `--input`. Prints the submissions and the final state and
saves the files into `--output` (default ./script-run-output). Exit status: 0 when the task ended
`success`, 1 for any other final state, 2 for bad arguments, a stack that could not start or a
file that would land outside `--output` (names are reduced to safe ones first: agent/filenames.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from agent.localdevices import DEVICE_KINDS

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _json_object(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, e.g. \'{"url": "..."}\'')
    return parsed


def register(commands: Any) -> None:
    parser = commands.add_parser("script", help="work with scripts locally")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser(
        "run",
        help="run one script against a local device",
        description="Run FILE once on a local device with an in-process coordinator and daemon.",
    )
    run.add_argument("file", type=Path, metavar="FILE", help="the script (defines main(agent))")
    run.add_argument(
        "--device", choices=sorted(DEVICE_KINDS), default="browser", help="the device kind"
    )
    run.add_argument("--input", type=_json_object, default={}, help="the task's input (JSON)")
    run.add_argument(
        "--parameters", type=_json_object, default={}, help="the job's parameters (JSON)"
    )
    run.add_argument("--timeout", type=float, default=300.0, help="the task's timeout in seconds")
    run.add_argument(
        "--output", type=Path, default=Path("script-run-output"), help="folder for the files"
    )
    run.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="warning"
    )
    run.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    # Imported here: the in-process coordinator and daemon take a second to load, which every
    # other subcommand would pay.
    from agent.localrun import LocalRunError, run_local

    if not args.file.is_file():
        print(f"device-agent: script run: {args.file}: no such file", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("websockets").setLevel(logging.INFO)
    try:
        run = asyncio.run(
            run_local(
                args.file,
                device=args.device,
                task_input=args.input,
                parameters=args.parameters,
                timeout_s=args.timeout,
                output_dir=args.output,
            )
        )
    except LocalRunError as exc:
        print(f"device-agent: script run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    print(run.report())
    return 0 if run.task["state"] == "success" else 1
