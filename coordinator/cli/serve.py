"""`device-coordinator serve`: run the HTTP API and the host websocket on uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from agent.hardening import PRIVATE_UMASK
from agent.logsetup import configure_logging
from agent.protocol import MAX_FRAME_BYTES
from coordinator.cli.common import (
    EXIT_USAGE,
    add_database,
    location,
    positive_bytes,
    positive_count,
    positive_rate,
    positive_seconds,
)
from coordinator.settings import Settings

LOG_LEVELS = ("debug", "info", "warning", "error")
# Above MAX_FRAME_BYTES so that a slightly oversized frame reaches the parser and its sender
# gets a clear `frame_too_large` error instead of a closed connection.
WS_MAX_SIZE = MAX_FRAME_BYTES + 1024 * 1024
SHUTDOWN_GRACE_S = 5


def port_arg(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is not in 1..65535")
    return port


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "serve", help="run the coordinator", description="Run the coordinator until stopped."
    )
    add_database(parser, data_dir_required=True)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=port_arg, default=8765, help="port to listen on")
    parser.add_argument(
        "--grace-s",
        type=positive_seconds,
        default=30.0,
        help="seconds past a task's timeout before the coordinator ends it as timeout",
    )
    parser.add_argument(
        "--heartbeat-s",
        type=positive_seconds,
        default=10.0,
        help="heartbeat interval given to hosts; silence for two intervals closes a session",
    )
    parser.add_argument(
        "--max-script-bytes",
        type=positive_bytes,
        default=Settings.max_script_bytes,
        help="largest job script the API takes, in bytes (bigger: HTTP 413; default 1 MiB)",
    )
    parser.add_argument(
        "--max-input-bytes",
        type=positive_bytes,
        default=Settings.max_input_bytes,
        help="largest task input (its JSON) the API or add_sub_tasks takes, in bytes "
        "(default 256 KiB)",
    )
    parser.add_argument(
        "--rate-limit",
        type=positive_rate,
        default=Settings.rate_limit,
        metavar="PER_S",
        help="requests per second each API key may make, counted by each replica on its own "
        f"(more: HTTP 429 with Retry-After; default {Settings.rate_limit:g})",
    )
    parser.add_argument(
        "--rate-burst",
        type=positive_count,
        default=Settings.rate_burst,
        metavar="N",
        help="requests an API key may make at once after a quiet spell "
        f"(default {Settings.rate_burst})",
    )
    parser.add_argument(
        "--public-url",
        default=None,
        help="base URL of the public file links in data-dump proofs (default: the address "
        "the host connected to)",
    )
    parser.add_argument(
        "--webhook-timeout-s",
        type=positive_seconds,
        default=Settings.webhook_timeout_s,
        help="longest a webhook delivery attempt may take, in seconds "
        f"(default {Settings.webhook_timeout_s:g})",
    )
    parser.add_argument(
        "--webhook-retry-s",
        type=positive_seconds,
        default=Settings.webhook_retry_s,
        help="wait after a webhook delivery's first failed attempt, doubling after each later "
        f"one (default {Settings.webhook_retry_s:g})",
    )
    parser.add_argument(
        "--webhook-retry-max-s",
        type=positive_seconds,
        default=Settings.webhook_retry_max_s,
        help="longest wait between webhook delivery attempts "
        f"(default {Settings.webhook_retry_max_s:g})",
    )
    parser.add_argument(
        "--tls-cert",
        type=Path,
        default=None,
        help="PEM certificate (chain) to serve HTTPS and wss:// with; needs --tls-key",
    )
    parser.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert")
    parser.add_argument(
        "--metrics-auth",
        choices=("apikey", "none"),
        default=Settings.metrics_auth,
        help="whether GET /metrics asks for an API key like /api (default apikey); `none` "
        "serves the metrics to anyone who reaches the port",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines, or one JSON object per line (docs/operations.md, Logs)",
    )
    parser.set_defaults(run=run)


def tls_problem(cert: Path | None, key: Path | None) -> str | None:
    """What is wrong with --tls-cert/--tls-key (both or neither, and a pair that loads)."""
    if (cert is None) != (key is None):
        return "--tls-cert and --tls-key go together"
    if cert is not None:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
        except OSError as exc:  # ssl.SSLError is an OSError too
            return f"cannot load --tls-cert {cert} with --tls-key {key}: {exc}"
    return None


def run(args: argparse.Namespace) -> int:
    # Imported here so that `token` and `apikey` start fast.
    import uvicorn

    from coordinator.app import create_app
    from coordinator.db_version import prepare
    from coordinator.drain import drain_hosts
    from coordinator.service import NotifyingServer

    # What the coordinator writes (database, stored files) is its user's alone.
    os.umask(PRIVATE_UMASK)
    problem = tls_problem(args.tls_cert, args.tls_key)
    if problem is not None:
        print(f"device-coordinator: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    database = location(args)
    # A database this coordinator cannot use (unreachable, not at its schema) fails here, exit 2.
    asyncio.run(prepare(database))

    configure_logging(args.log_level, args.log_format, sys.stderr)
    # websockets logs every handshake header at DEBUG, host tokens included.
    logging.getLogger("websockets").setLevel(logging.INFO)
    settings = Settings(
        data_dir=args.data_dir,
        database=database,
        grace_s=args.grace_s,
        heartbeat_s=args.heartbeat_s,
        max_script_bytes=args.max_script_bytes,
        max_input_bytes=args.max_input_bytes,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        public_url=args.public_url,
        webhook_timeout_s=args.webhook_timeout_s,
        webhook_retry_s=args.webhook_retry_s,
        webhook_retry_max_s=args.webhook_retry_max_s,
        metrics_auth=args.metrics_auth,
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=None,
        access_log=False,
        ws_max_size=WS_MAX_SIZE,
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    where = f"{args.host}:{args.port}"
    server = NotifyingServer(
        config,
        lambda: f"serving on {where}, {len(app.state.ctx.sessions.all())} host(s) connected",
        lambda: drain_hosts(app.state.ctx.sessions, SHUTDOWN_GRACE_S),
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again under the
    # handlers it found; these make that second delivery a no-op, so a stop exits with status 0.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _ignore_after_shutdown)
    server.run()
    return 0 if server.started else 1


def _ignore_after_shutdown(signum: int, frame: FrameType | None) -> None:
    logging.getLogger(__name__).info("stopped by signal %d", signum)
