"""`device-agent run --config FILE`: the long-running daemon."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from agent.config import ENV_PREFIX, AgentConfig, ConfigError, load_config
from agent.hardening import PRIVATE_UMASK, make_non_dumpable, scrub_environment
from agent.logsetup import configure_logging
from agent.sandbox import Isolation, log_isolation, probe, refuse_unsandboxed
from agent.sdnotify import from_environment
from agent.state import StateFileError
from agent.stopping import StopRequest

EXIT_CONFIG = 2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def register(commands: Any) -> None:
    parser = commands.add_parser("run", help="run the daemon")
    parser.add_argument("--config", type=Path, required=True, help="TOML configuration file")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    # Before anything holds a secret or makes a file: scripts run on this host are untrusted.
    make_non_dumpable()
    os.umask(PRIVATE_UMASK)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"device-agent: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        # Read once, then gone: Playwright, Chromium, adb and scripts inherit no token.
        scrub_environment(ENV_PREFIX)
    try:
        token = config.coordinator.read_token()
    except ConfigError as exc:
        print(f"device-agent: config error: {args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    isolation = probe(config.scripts)
    refusal = refuse_unsandboxed(isolation)
    if refusal is not None:
        print(f"device-agent: config error: {args.config}: {refusal}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(
        config.agent.log_level, config.agent.log_format, sys.stderr, host=config.agent.host_id
    )
    # websockets logs every handshake header at DEBUG, the Authorization header included.
    logging.getLogger("websockets").setLevel(logging.INFO)
    log_isolation(isolation, logging.getLogger("device_agent"))
    try:
        asyncio.run(_serve(config, args.config, token, isolation))
    except StateFileError as exc:
        logging.getLogger("device_agent").error("%s", exc)
        return EXIT_CONFIG
    except ConfigError as exc:  # found once running: the metrics port cannot be listened on
        print(f"device-agent: config error: {args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


async def _serve(config: AgentConfig, path: Path, token: str, isolation: Isolation) -> None:
    log = logging.getLogger("device_agent")
    stop = StopRequest(log)
    hangup = asyncio.Event()
    notifier, watchdog_s = from_environment(log)
    notifier.send("STATUS=starting: opening the state file, attaching the devices")
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.request, sig.name)
    loop.add_signal_handler(signal.SIGHUP, hangup.set)
    try:
        # Imported here: the drivers (Playwright, adbutils) take a second to load, which a
        # configuration error need not wait for.
        from agent.daemon import run_daemon

        await run_daemon(config, token, isolation, stop, notifier, watchdog_s, (path, hangup))
    finally:
        notifier.close()
        for sig in (*STOP_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(sig)
            # Closing the loop would restore the default action: a signal between here and
            # the exit would turn a finished stop into exit status 143.
            signal.signal(sig, signal.SIG_IGN)
