"""Doctor checks of the devices: the adb server and each phone, and a Chromium launch."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from agent.config import AgentConfig
from agent.doctor import Check, fail, ok, warn
from drivers.android.adb import ADB_ERRORS, AdbHost
from drivers.browser.host import BrowserUnavailable, ChromiumHost
from drivers.ocr import languages, tessdata_dir

LAUNCH_TIMEOUT_S = 20.0
"""A launch that takes longer than this is reported failed (the daemon waits launch_timeout_s)."""
ADB_ANSWER_TIMEOUT_S = 2.0


def adb_server_answers(port: int) -> bool:
    """Whether an adb server answers `host:version` on 127.0.0.1:`port`. Asked over a plain
    socket: adbutils, finding no server, would start one (on 5037 unless told otherwise)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=ADB_ANSWER_TIMEOUT_S) as s:
            s.sendall(b"000chost:version")
            return s.recv(4) == b"OKAY"
    except OSError:
        return False


def adb_checks(config: AgentConfig) -> list[Check]:
    """The daemon's own adb server (doctor does not start one) and each phone it lists."""
    settings = config.android
    if not settings.enabled:
        return [ok("adb", "not used (android.enabled = false)")]
    host = AdbHost(settings)
    if not adb_server_answers(host.port):
        return [
            fail(
                "adb",
                f"no adb server answers on 127.0.0.1:{host.port}",
                "start the daemon (it runs its own adb server on android.adb_port), or "
                f"{host.adb} -P {host.port} start-server",
            )
        ]
    # If the server goes away meanwhile, adbutils restarts it: on our port, as the daemon would.
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(host.port)
    try:
        devices = host.devices()
    except ADB_ERRORS as exc:
        return [fail("adb", f"the adb server on port {host.port} failed: {exc}", "restart it")]
    checks = [ok("adb", f"server on 127.0.0.1:{host.port} lists {len(devices)} device(s)")]
    for serial, state in sorted(devices.items()):
        name = f"phone {serial}"
        if state == "device":
            checks.append(ok(name, "attached"))
        elif state == "unauthorized":
            checks.append(
                fail(
                    name,
                    "unauthorized: the phone has not accepted this host's adb key",
                    "unlock the phone and accept the USB debugging prompt (always allow)",
                )
            )
        else:
            checks.append(warn(name, state, "reconnect the cable, or reboot the phone"))
    for address in settings.connect:
        if address not in devices:
            checks.append(
                warn(
                    f"phone {address}",
                    "in android.connect but not attached",
                    "check the phone is on and reachable; the daemon keeps connecting",
                )
            )
    if not devices and not settings.connect:
        checks.append(warn("phones", "none attached", "plug a phone in with USB debugging on"))
    return checks


async def _launch(config: AgentConfig) -> str:
    """Chromium's version; BrowserUnavailable if it does not launch."""
    settings = config.browser.model_copy(
        update={"launch_timeout_s": min(config.browser.launch_timeout_s, LAUNCH_TIMEOUT_S)}
    )
    host = ChromiumHost(settings)
    try:
        await host.browser()
        return host.version or "unknown version"
    finally:
        await host.stop()


def chromium_check(config: AgentConfig) -> Check:
    executable = Path(config.browser.executable)
    if not config.devices.browser:
        return ok("chromium", "not used (no [[devices.browser]])")
    fix = f"apt-get install chromium, or set browser.executable (now {executable})"
    if not os.access(executable, os.X_OK):
        return fail("chromium", f"{executable} is missing or not executable", fix)
    try:
        version = asyncio.run(_launch(config))
    except BrowserUnavailable as exc:
        return fail("chromium", str(exc), fix)
    return ok("chromium", f"{executable} launches (Chromium {version})")


def ocr_check() -> Check:
    """recognize_text's language data (the library comes with the tesserocr wheel); a host
    without it runs every other action, so its absence is a warning."""
    where = tessdata_dir()
    if where is None or "eng" not in languages():
        found = f"only {', '.join(sorted(languages()))} at {where}" if where else "none found"
        return warn(
            "ocr",
            f"no English Tesseract data ({found}): recognize_text fails",
            "apt-get install tesseract-ocr tesseract-ocr-eng, or set TESSDATA_PREFIX",
        )
    return ok("ocr", f"Tesseract data for {', '.join(sorted(languages()))} in {where}")
