"""The script host's main: connect, get ready, load the script, run `main(agent)`, report, exit.

A host may be started before its task exists (agent/hoststart.py): it imports and builds all it
needs, says `ready`, and only then waits for `init`, so that a task finds it warm.

`async def main(agent)` runs on this process's event loop. A plain `def main(agent)` runs in a
worker thread with the blocking agent (agent/sdk/blocking.py), the loop carrying its calls.
The process always ends with `os._exit` right after the daemon acknowledged the report, so that
threads or tasks the script left behind cannot keep it alive.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from agent.scripthost.client import RpcClient
from agent.scripthost.loader import LoadError, describe_exception, load_main
from agent.scripthost.tag import retag
from agent.scriptrpc import ReportKind, build_models
from agent.sdk import unawaited
from agent.sdk.agent import Agent
from agent.sdk.blocking import Blocking
from agent.sdk.errors import StopAutomation
from agent.sdk.results import RESULT_MODELS
from agent.sweep import TAG_PLACEHOLDER, TASK_ENV

EXIT_USAGE = 64

Outcome = tuple[ReportKind, dict[str, Any] | None, str | None]


def main(argv: list[str]) -> NoReturn:
    if len(argv) != 2 or argv[0] != "--fd" or not argv[1].isdigit():
        print("usage: python -m agent.scripthost --fd N", file=sys.stderr)
        os._exit(EXIT_USAGE)
    serve(int(argv[1]), warm=False)


def serve(fd: int, warm: bool) -> NoReturn:
    """Serve one task over the channel on `fd`; `warm` when `warm_up` already ran in this process
    (a fork of the zygote, agent/scripthost/zygote.py)."""
    asyncio.run(_serve(fd, warm))
    raise AssertionError("unreachable: _serve exits the process")


async def _serve(fd: int, warm: bool) -> NoReturn:
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(False)  # processes the script starts must not hold the channel open
    reader, writer = await asyncio.open_connection(sock=sock)
    client = RpcClient(reader, writer)
    if not warm:
        warm_up()
    await client.ready()
    init = await client.receive_init()
    if os.environ.get(TASK_ENV) == TAG_PLACEHOLDER:
        retag(init.task_id)
    client.start()
    # From here on, SDK coroutines are remembered with the line of the script that made them.
    unawaited.watch(init.script_name)
    try:
        main = load_main(Path(init.script), init.script_name)
    except LoadError as exc:
        outcome: Outcome = ("script_load_error", None, str(exc))
    else:
        agent = Agent(client, init.job_variables, init.automation_parameters, init.max_file_bytes)
        outcome = await _run_main(main, agent, init.script_name)
    kind, data, error = outcome
    try:
        await client.report(kind, data, error)
    except ValueError as exc:
        await client.report("bad_return_value", None, f"main's return value cannot be sent: {exc}")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def warm_up() -> None:
    """Build now what the first calls would build: the channel's models and the results'."""
    build_models()
    for model in RESULT_MODELS:
        model.model_rebuild(force=True)


async def _run_main(main: Callable[..., Any], agent: Agent, script_name: str) -> Outcome:
    """How main ended; an SDK coroutine it never awaited makes it a `script_error` naming it."""
    outcome = await _ended(main, agent, script_name)
    forgotten = "\n".join(unawaited.never_awaited())
    if not forgotten:
        return outcome
    kind, _, error = outcome
    if kind in ("script_error", "bad_return_value"):
        return (kind, None, f"{error}\n{forgotten}")
    return ("script_error", None, forgotten)


async def _ended(main: Callable[..., Any], agent: Agent, script_name: str) -> Outcome:
    try:
        if inspect.iscoroutinefunction(main):
            value = await main(agent)
        else:
            value = await asyncio.to_thread(main, Blocking(agent, asyncio.get_running_loop()))
            if inspect.isawaitable(value):
                value = await value
    except StopAutomation:
        return ("stopped", None, None)
    except BaseException as exc:
        return ("script_error", None, describe_exception(exc, script_name))
    return _returned(value)


def _returned(value: Any) -> Outcome:
    if value is None:
        return ("returned", None, None)
    data = value if isinstance(value, dict) else {"result": value}
    try:
        plain: dict[str, Any] = json.loads(json.dumps(data, allow_nan=False))
    except (TypeError, ValueError) as exc:
        return (
            "bad_return_value",
            None,
            f"main returned a value that is not JSON-serialisable ({type(value).__name__}): {exc}",
        )
    return ("returned", plain, None)
