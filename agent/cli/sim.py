"""`device-agent sim [--port P]`: run one simulated Android phone until SIGTERM/SIGINT.

It prints the address to give `adb connect`; the phone speaks the real adb transport and
uiautomator2 server protocols (see drivers/sim).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from drivers.sim import SimPhone, SimPhoneError
from drivers.sim.phone import EMULATOR_PORTS

EXIT_USAGE = 2
EXIT_LISTEN = 1


def register(commands: Any) -> None:
    parser = commands.add_parser("sim", help="run a simulated Android phone for adb")
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="TCP port on 127.0.0.1 (default: a free port outside 5554-5585)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    port: int = args.port
    if port in EMULATOR_PORTS or not 0 <= port <= 65535:
        print(
            f"device-agent sim: port {port} is not usable: the adb server scans 5554-5585 "
            "for emulators on its own (the phone would show up twice); choose another",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        asyncio.run(_serve(port))
    except SimPhoneError as exc:
        print(f"device-agent sim: {exc}", file=sys.stderr)
        return EXIT_LISTEN
    return 0


async def _serve(port: int) -> None:
    phone = SimPhone()
    await phone.start(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"simulated phone listening; run: adb connect {phone.serial}", flush=True)
    try:
        await stop.wait()
    finally:
        await phone.stop()
