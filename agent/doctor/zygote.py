"""Doctor check of the zygote: one started the way the daemon starts a device's, one script host
forked from it until it says `ready`, both ended.

A host whose zygote cannot start or fork still runs every task, each in a script host started
on its own (a fresh interpreter: docs/security.md, "The zygote"), so a failure is a warning.
The zygote's home is a temporary folder, not the daemon's work root, which doctor leaves alone.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import replace
from pathlib import Path

from agent.doctor import Check, ok, warn
from agent.hoststart import HostStartError
from agent.sandbox import Isolation, SandboxError
from agent.zygote import start_zygote, zygote_possible

SAID_MAX_CHARS = 600
"""How much of what the zygote and its fork wrote on stderr a failed check quotes."""
FIX = (
    "allow user namespaces to the scripts' account, as the zygote's bubblewrap and each fork of "
    "it make one (sysctl user.max_user_namespaces above 0; on Ubuntu 24.04 also "
    "kernel.apparmor_restrict_unprivileged_userns = 0, or an AppArmor profile for bwrap), and "
    "leave room in scripts.memory_max_mb and scripts.pids_max for an interpreter with the "
    'script host imported; docs/security.md, "The zygote"'
)


def zygote_check(isolation: Isolation) -> Check:
    """Whether the daemon's tasks would be forked from a zygote, tried for real."""
    settings = isolation.settings
    if settings.sandbox == "off":
        return ok("zygote", 'not used (sandbox = "off"): script hosts start on their own')
    if isolation.problems:
        return warn("zygote", "not tried: the sandbox cannot run scripts", "fix the sandbox first")
    if settings.network == "outbound":
        return ok(
            "zygote",
            'not used (network = "outbound": each task has its own slirp4netns): script hosts '
            "start on their own",
        )
    if not zygote_possible(isolation):
        return warn(
            "zygote",
            "tasks will start cold: a root daemon without its capabilities sandboxes through a "
            "user namespace that maps root, where a zygote cannot run as the scripts' account",
            "run the daemon as root with its capabilities, or as its own user (the systemd unit)",
        )
    said: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="device-agent-doctor-") as home:
            in_home = settings.model_copy(update={"work_root": Path(home)})
            asyncio.run(_fork_one(replace(isolation, settings=in_home), _keeping(said)))
    except (HostStartError, SandboxError, OSError) as exc:
        output = f"; it said: {' | '.join(said)[-SAID_MAX_CHARS:]}" if said else ""
        return warn("zygote", f"tasks will start cold: {exc}{output}", FIX)
    return ok("zygote", "started as the daemon starts one; a script host forked from it is ready")


async def _fork_one(isolation: Isolation, log: logging.Logger) -> None:
    zygote = await start_zygote(isolation, log)
    try:
        host = await zygote.fork()
        await host.end(isolation.settings.kill_grace_s)
    finally:
        await zygote.close()


def _keeping(said: list[str]) -> logging.Logger:
    """A logger of this check alone (outside logging's tree, so whatever doctor's own logging
    shows) that keeps what the zygote and its fork wrote on stderr: they log it as warnings."""
    log = logging.Logger("device-agent.doctor.zygote", logging.WARNING)

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    log.addHandler(Keep())
    return log
