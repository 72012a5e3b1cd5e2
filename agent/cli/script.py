"""`device-agent script run FILE`: run a script on local devices, no coordinator setup needed.

Everything runs in this process (agent/localrun.py): a coordinator on a free 127.0.0.1 port, the
daemon with the local devices (`--device browser`, the default; `--device android:SERIAL`, a
phone attached to adb; `--sim`, a simulated phone started for the run; `--devices N` of them, so
that sub-tasks and waiting pairs run for real), one task per `--input`. It prints the run as it
happens (agent/runprint.py), then each task's final state, and saves the files into `--output`
(default ./script-run-output). Exit status: 0 when every task of the run ended `success`, 1 for
any other final state, 2 for bad arguments, a device that cannot be used, a stack that could not
start, a run that was stuck, or a file that would land outside `--output` (names are reduced to
safe ones first: agent/filenames.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from agent.localdevices import (
    BROWSER,
    MAX_DEVICES,
    SIM,
    DeviceChoice,
    LocalDeviceError,
    check_devices,
    parse_device,
)

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
SCRIPT_SOURCES = frozenset({"stdout", "stderr", "script", "call"})
"""Records the run's printer shows; the stack's own log leaves them out."""


def _json_object(value: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, e.g. \'{"url": "..."}\'')
    return parsed


def _device(value: str) -> DeviceChoice:
    try:
        return parse_device(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_DEVICES:
        raise argparse.ArgumentTypeError(f"{value!r}: give 1 to {MAX_DEVICES}")
    return int(value)


def register(commands: Any) -> None:
    parser = commands.add_parser("script", help="work with scripts locally")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser(
        "run",
        help="run a script against local devices",
        description="Run FILE on local devices with an in-process coordinator and daemon.",
    )
    run.add_argument("file", type=Path, metavar="FILE", help="the script (defines main(agent))")
    which = run.add_mutually_exclusive_group()
    which.add_argument(
        "--device",
        type=_device,
        default=BROWSER,
        metavar="DEVICE",
        help="browser (headless Chromium, the default) or android:SERIAL (a phone `adb devices` "
        "lists)",
    )
    which.add_argument(
        "--sim",
        action="store_const",
        dest="device",
        const=SIM,
        help="run on a simulated Android phone started for the run",
    )
    run.add_argument(
        "--devices",
        type=_count,
        default=1,
        metavar="N",
        help="how many local devices (browsers or simulated phones): a task that waits for "
        "its sub-tasks, or for another task, holds one meanwhile",
    )
    run.add_argument(
        "--input",
        type=_json_object,
        action="append",
        dest="inputs",
        metavar="JSON",
        help="a task's input (a JSON object); repeat for several tasks of the job, added in order",
    )
    run.add_argument(
        "--parameters", type=_json_object, default={}, help="the job's parameters (JSON)"
    )
    run.add_argument("--timeout", type=float, default=300.0, help="each task's timeout in seconds")
    run.add_argument(
        "--output", type=Path, default=Path("script-run-output"), help="folder for the files"
    )
    run.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="warning",
        help="of the local coordinator's and daemon's own log (the script's lines are always "
        "shown)",
    )
    run.set_defaults(handler=handle)


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level.upper())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(lambda record: record.__dict__.get("source") not in SCRIPT_SOURCES)
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.getLogger("websockets").setLevel(logging.INFO)


def handle(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        print(f"device-agent: script run: {args.file}: no such file", file=sys.stderr)
        return EXIT_USAGE
    try:
        check_devices(args.device, args.devices)
    except LocalDeviceError as exc:
        print(f"device-agent: script run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Imported here: the in-process coordinator and daemon take a second to load, which every
    # other subcommand (and a refused device) would pay.
    from agent.localrun import LocalRunError, run_local
    from agent.runprint import RunPrinter

    _configure_logging(args.log_level)
    try:
        run = asyncio.run(
            run_local(
                args.file,
                RunPrinter(sys.stdout),
                device=args.device,
                devices=args.devices,
                inputs=args.inputs,
                parameters=args.parameters,
                timeout_s=args.timeout,
                output_dir=args.output,
            )
        )
    except LocalRunError as exc:
        print(f"device-agent: script run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("device-agent: script run: interrupted; what it started is stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0 if run.succeeded else 1
