"""Browser settings through the real stack: HTTP API → coordinator → daemon → headless Chromium.

One coordinator and one daemon with one browser device run three tasks of one job, in order: the
first with settings of its own (user agent, header, locale, time zone, a proxy with credentials,
a profile), the second naming the same profile, the third plain (it takes the context opened
ahead). The first and the third save a file through the browser and read it from their work
dir. A local site records what the
browser sent it; a local proxy records what went through it. The proxy password shows nowhere.
"""

from __future__ import annotations

from typing import Any

from scripts.devstack import Coordinator, add_tasks, create_job, wait_devices, wait_terminal
from tests.recording_http import recording_server

PROXY_USER, PROXY_PASSWORD = "farm", "pr0xy-pa55word-e2e"

LOOK = """
import os

async def main(agent):
    task = await agent.utils.job.get_current_task()
    want = task.job_proof
    await agent.actions.browse(want["site"])
    seen = {
        "language": await agent.actions.evaluate("navigator.language"),
        "zone": await agent.actions.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone"),
        "cookie": await agent.actions.evaluate("document.cookie"),
    }
    await agent.actions.evaluate("document.cookie = 'visit=1; max-age=3600'")
    if "proxied" in want:
        await agent.actions.browse(want["proxied"])
        seen["title"] = await agent.actions.evaluate("document.title")
    name = await agent.actions.save_file("language.txt", seen["language"])
    with open(name) as saved:
        seen["saved"] = [saved.read(), os.path.realpath(name)]
    return seen
"""


def test_a_task_runs_with_its_settings_its_profile_and_its_proxy(
    coordinator: Coordinator, make_daemon: Any
) -> None:
    daemon = make_daemon()
    daemon.start()
    with (
        recording_server() as site,
        recording_server(proxy_auth=(PROXY_USER, PROXY_PASSWORD)) as proxy,
        coordinator.http() as http,
    ):
        wait_devices(http, "host-1", 1)
        job = create_job(http, LOOK, timeout_s=60)
        bad = {"browser": {"proxy": {"server": "http://proxy:port"}}}
        refused = http.post(f"/api/jobs/{job['id']}/tasks", json={"tasks": [bad]})
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == [
            "body",
            "tasks",
            0,
            "browser",
            "proxy",
            "server",
        ]

        own = {
            "user_agent": "FarmBot/2.0",
            "extra_http_headers": {"X-Farm": "e2e"},
            "locale": "fr-CA",
            "timezone_id": "Asia/Tokyo",
            "proxy": {"server": proxy.url, "username": PROXY_USER, "password": PROXY_PASSWORD},
            "profile": "shop",
        }
        first, second, plain = add_tasks(
            http,
            job["id"],
            {
                "input": {"site": site.url + "first", "proxied": "http://shop.example/"},
                "browser": own,
            },
            {"input": {"site": site.url + "second"}, "browser": {"profile": "shop"}},
            {"input": {"site": site.url + "plain"}},
        )
        ended = [wait_terminal(http, t["id"]) for t in (first, second, plain)]
        assert [t["state"] for t in ended] == ["success"] * 3, ended

        # What the site and the script saw: the first task's settings, and only its.
        assert ended[0]["result"] == {
            "language": "fr-CA",
            "zone": "Asia/Tokyo",
            "cookie": "",
            "title": "shop.example",
            "saved": ["fr-CA", "/task/language.txt"],
        }
        # Every page of the first task went through the proxy (Playwright sends even loopback
        # addresses through it), which answered them itself.
        assert not site.seen("/first")
        (headers,) = proxy.seen(site.url + "first")
        assert headers["user-agent"] == "FarmBot/2.0"
        assert headers["x-farm"] == "e2e"
        assert headers["accept-language"].startswith("fr-CA")
        assert proxy.seen("http://shop.example/"), proxy.requests
        # The profile kept the first task's cookie for the second; the plain task has none.
        assert ended[1]["result"]["cookie"] == "visit=1"
        assert site.seen("/second")[0]["cookie"] == "visit=1"
        assert ended[2]["result"]["cookie"] == ""
        (plain_headers,) = site.seen("/plain")
        assert "FarmBot" not in plain_headers["user-agent"] and "x-farm" not in plain_headers
        assert ended[2]["result"]["zone"] != "Asia/Tokyo"
        # A file the browser saves for the script is in its work dir, whether its session was
        # opened for it (the first) or ahead of it (the plain one).
        plain_language = ended[2]["result"]["language"]
        assert ended[2]["result"]["saved"] == [plain_language, "/task/language.txt"]

        # The password went to the proxy and nowhere else.
        assert ended[0]["browser"]["proxy"]["password"] == "***"
        answers = [
            http.get(f"/api/tasks/{first['id']}").text,
            http.get(f"/api/tasks?job_id={job['id']}").text,
            http.get(f"/api/jobs/{job['id']}").text,
        ]
        assert not [a for a in answers if PROXY_PASSWORD in a]
    assert PROXY_PASSWORD not in daemon.log()
    assert PROXY_PASSWORD not in (coordinator.data_dir / "coordinator.log").read_text()
