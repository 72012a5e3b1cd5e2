"""A task's browser settings against a real headless Chromium: what a local site and the page
see, persistent profiles, attaching over CDP. The proxy, and a plain task beside a profile, are
tested end to end (tests/e2e/test_browser_settings.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from drivers.base import ActionError, DeviceSession, SessionSettings
from drivers.browser.config import BrowserSettings, BrowserSlot
from drivers.browser.device import BrowserDevice
from drivers.browser.host import ChromiumHost
from drivers.browser.options import BrowserOptions
from scripts.devstack import wait_until
from tests.recording_http import Recorder, recording_server

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def profiles_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state") / "browser-profiles"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def device(profiles_dir: Path) -> AsyncIterator[BrowserDevice]:
    settings = BrowserSettings(profiles_dir=profiles_dir)
    host = ChromiumHost(settings)
    await host.start()
    assert host.running, host.launch_error
    yield BrowserDevice(BrowserSlot(name="browser-opts"), host, settings)
    await host.stop()


@pytest.fixture(scope="module")
def site() -> Iterator[Recorder]:
    with recording_server() as recorder:
        yield recorder


@contextlib.asynccontextmanager
async def opened(
    device: BrowserDevice, job_id: str = "job-1", **options: Any
) -> AsyncIterator[DeviceSession]:
    settings = SessionSettings(job_id=job_id, browser=BrowserOptions.model_validate(options))
    session = await device.open_session(f"task-{job_id}", settings)
    try:
        yield session
    finally:
        await session.close()


async def evaluate(session: DeviceSession, js: str) -> Any:
    return await session.call("evaluate", {"js": js})


async def test_the_site_and_the_script_see_the_settings(
    device: BrowserDevice, site: Recorder
) -> None:
    async with opened(
        device,
        user_agent="FarmBot/1.0",
        extra_http_headers={"X-Farm": "yes"},
        locale="fr-CA",
        timezone_id="Asia/Tokyo",
        geolocation={"latitude": 48.85, "longitude": 2.35},
        viewport={"width": 500, "height": 400},
    ) as session:
        await session.call("browse", {"url": site.url + "settings"})
        (headers,) = site.seen("/settings")
        assert headers["user-agent"] == "FarmBot/1.0"
        assert headers["x-farm"] == "yes"
        assert headers["accept-language"].startswith("fr-CA")
        assert await evaluate(session, "navigator.language") == "fr-CA"
        zone = "Intl.DateTimeFormat().resolvedOptions().timeZone"
        assert await evaluate(session, zone) == "Asia/Tokyo"
        assert await evaluate(session, "[innerWidth, innerHeight]") == [500, 400]
        where = """() => new Promise((ok, no) => navigator.geolocation.getCurrentPosition(
            p => ok([p.coords.latitude, p.coords.longitude]), e => no(e.message)))"""
        assert await evaluate(session, where) == [48.85, 2.35]
        # Screen coordinates follow the task's viewport, not the slot's.
        with pytest.raises(ActionError, match="outside the 500x400 screen"):
            await session.call("tap", {"x": 600, "y": 10})


COOKIE = "document.cookie"


async def test_a_profile_keeps_cookies_and_storage_for_the_next_task_of_its_job_only(
    device: BrowserDevice, site: Recorder, profiles_dir: Path
) -> None:
    other = BrowserDevice(BrowserSlot(name="browser-opts-2"), device._host, device._settings)
    settings = SessionSettings(job_id="job-1", browser=BrowserOptions(profile="shop"))
    first = await device.open_session("task-first", settings)
    second = asyncio.create_task(other.open_session("task-second", settings))
    await first.call("browse", {"url": site.url})
    await evaluate(first, "document.cookie = 'visit=1; max-age=3600'")
    await evaluate(first, "localStorage.setItem('cart', 'apple')")
    assert not second.done()  # one task at a time: it waits for the first to let go
    await first.close()
    saved = profiles_dir / "job-1" / "shop.json"
    modes = [stat.S_IMODE(p.stat().st_mode) for p in (saved, saved.parent, profiles_dir)]
    assert modes == [0o600, 0o700, 0o700]

    later = await asyncio.wait_for(second, DEADLINE_S)
    try:
        await later.call("browse", {"url": site.url + "again"})
        assert await evaluate(later, COOKIE) == "visit=1"
        assert await evaluate(later, "localStorage.getItem('cart')") == "apple"
        (headers,) = site.seen("/again")
        assert headers["cookie"] == "visit=1"
    finally:
        await later.close()
    async with opened(device, job_id="job-2", profile="shop") as other_job:
        await other_job.call("browse", {"url": site.url})
        assert await evaluate(other_job, COOKIE) == ""
        assert await evaluate(other_job, "localStorage.getItem('cart')") is None


def read_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


async def test_a_profile_that_cannot_be_read_fails_the_session_clearly(
    device: BrowserDevice, profiles_dir: Path
) -> None:
    broken = profiles_dir / "job-4" / "broken.json"
    broken.parent.mkdir(mode=0o700, parents=True)
    broken.write_text("{not json")
    with pytest.raises(ActionError, match="the profile broken cannot be read"):
        async with opened(device, job_id="job-4", profile="broken"):
            pass
    assert not device._host.profiles.lock(broken).locked()  # free again for the next task


@pytest.fixture
def remote_chromium(tmp_path: Path) -> Iterator[str]:
    """Another Chromium, listening for CDP on a port of its choosing; yields its address."""
    proc = subprocess.Popen(
        [
            BrowserSettings().executable,
            "--headless",
            "--no-first-run",
            "--disable-gpu",
            "--no-sandbox",  # as Playwright launches it: the tests may run as root
            "--remote-debugging-port=0",
            f"--user-data-dir={tmp_path / 'remote'}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port_file = tmp_path / "remote" / "DevToolsActivePort"
    try:

        def port() -> str | None:
            if proc.poll() is not None:
                raise AssertionError(f"the remote Chromium exited {proc.returncode}")
            lines = port_file.read_text().splitlines() if port_file.exists() else []
            return lines[0] if lines else None

        yield f"http://127.0.0.1:{wait_until(port, 'the CDP port', DEADLINE_S)}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


async def test_a_task_attaches_to_a_running_browser(
    device: BrowserDevice, site: Recorder, remote_chromium: str
) -> None:
    async with opened(device, browser_address=remote_chromium, user_agent="Attached/1") as s:
        await s.call("browse", {"url": site.url + "attached"})
        (headers,) = site.seen("/attached")
        assert headers["user-agent"] == "Attached/1"
        # The page is the other browser's: its own list of targets holds it.
        targets = await asyncio.to_thread(read_json, remote_chromium + "/json/list")
        assert site.url + "attached" in [target["url"] for target in targets]
    # Detached, the other browser still runs; the daemon's own one too.
    assert await asyncio.to_thread(read_json, remote_chromium + "/json/version")
    assert device._host.running


async def test_an_address_that_does_not_answer_fails_the_session_clearly(
    device: BrowserDevice,
) -> None:
    with pytest.raises(ActionError, match=r"cannot attach to http://127\.0\.0\.1:9/"):
        async with opened(device, browser_address="http://127.0.0.1:9/"):
            pass
    assert device._host.running
