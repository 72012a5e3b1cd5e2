"""`device-agent doctor --config FILE`: what is wrong with this host, one line per check.

Each line is `ok`, `warn` or `fail`, what was found and, unless ok, the fix: the configuration,
the token file, the coordinator (answers, accepts the token, agrees on the time), adb and each
phone, a Chromium launch, the script sandbox (with what isolation is in force), a device's
zygote (started, one script host forked from it, both ended), the disk under
the outbox, the state file. Exit status: 0 with no `fail`, 1 with any, 2 when the configuration
does not parse (nothing else can be checked; `run` exits 2 for it too). Run it as the daemon's
user: it reads what the daemon reads, and changes nothing.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from agent.config import ConfigError, load_config
from agent.doctor import Check, fail, ok, warn
from agent.doctor.files import disk_check, state_check, token_check
from agent.sandbox import Isolation, probe, refuse_unsandboxed
from agent.script_settings import ScriptSettings

EXIT_FAILED = 1
EXIT_CONFIG = 2


def register(commands: Any) -> None:
    parser = commands.add_parser("doctor", help="check this host: config, coordinator, devices")
    parser.add_argument("--config", type=Path, required=True, help="TOML configuration file")
    parser.set_defaults(handler=handle)


def sandbox_check(settings: ScriptSettings) -> tuple[Check, Isolation]:
    """The sandbox's check, and the isolation in force (its facts are shown under it)."""
    isolation = probe(settings)
    refusal = refuse_unsandboxed(isolation)
    if refusal is not None:
        check = fail("sandbox", f"the daemon would refuse to start: {refusal}")
    elif settings.sandbox == "off":
        check = warn("sandbox", "off: scripts run unsandboxed (trusted scripts only)")
    elif isolation.problems:
        check = warn("sandbox", "; ".join(isolation.problems))
    else:
        check = ok("sandbox", "the daemon would start with this isolation")
    return check, isolation


def handle(args: argparse.Namespace) -> int:
    # Imported here: these checks load Playwright, adbutils, httpx and the script host, which
    # the other subcommands (and a bare `--help`) need not wait for.
    from agent.doctor.coordinator import run_coordinator_checks
    from agent.doctor.devices import adb_checks, chromium_check, ocr_check
    from agent.doctor.zygote import zygote_check

    # Each check reports what it found; the drivers' own log lines would only repeat it.
    logging.basicConfig(level=logging.CRITICAL)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(fail("config", str(exc), "fix the file or variable it names").line(), flush=True)
        return EXIT_CONFIG
    checks = [ok("config", f"{args.config} parses")]
    checks.append(token_check(config))
    checks += run_coordinator_checks(config.coordinator)
    checks += adb_checks(config)
    checks.append(chromium_check(config))
    checks.append(ocr_check())
    sandbox, isolation = sandbox_check(config.scripts)
    checks += [sandbox, zygote_check(isolation), disk_check(config), state_check(config)]
    for check in checks:
        print(check.line())
        if check is sandbox:
            for fact in isolation.facts:
                print(f"     {fact}")
    return EXIT_FAILED if any(c.status == "fail" for c in checks) else 0
