"""The browser settings model (drivers/browser/options.py): what it refuses, naming the field;
the proxy password masked everywhere but on the wire; a task's settings over its job's."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from drivers.browser.options import BrowserOptions


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"proxy": {"server": "http://proxy:notaport"}}, "proxy.server"),
        ({"proxy": {"server": "ftp://proxy:21"}}, "proxy.server"),
        ({"proxy": {"server": "http://u:p@proxy:3128"}}, "proxy.server"),
        ({"proxy": {"server": "http://proxy:3128", "password": "x"}}, "proxy"),
        ({"locale": "english please"}, "locale"),
        ({"timezone_id": "Mars/Olympus"}, "timezone_id"),
        ({"geolocation": {"latitude": 91, "longitude": 0}}, "geolocation.latitude"),
        ({"geolocation": {"latitude": 0, "longitude": -181}}, "geolocation.longitude"),
        ({"extra_http_headers": {"Bad Name": "x"}}, "extra_http_headers"),
        ({"profile": "../escape"}, "profile"),
        ({"browser_address": "chrome://inspect"}, "browser_address"),
        ({"user_agnet": "typo"}, "user_agnet"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        BrowserOptions.model_validate(options)
    (error,) = caught.value.errors()
    assert ".".join(str(p) for p in error["loc"]) == field


def test_the_password_is_masked_except_on_the_wire() -> None:
    options = BrowserOptions.model_validate(
        {"proxy": {"server": "http://p:3128", "username": "u", "password": "hunter2"}}
    )
    assert "hunter2" not in repr(options) and "hunter2" not in str(options)
    assert "hunter2" in options.model_dump_json()
    assert BrowserOptions.model_validate_json(options.model_dump_json()) == options
    shown = options.shown()
    assert shown["proxy"] == {"server": "http://p:3128", "username": "u", "password": "***"}


def test_a_task_overrides_its_job_field_by_field() -> None:
    job = BrowserOptions(locale="en-GB", user_agent="Job/1")
    task = BrowserOptions.model_validate({"user_agent": "Task/1", "timezone_id": "UTC"})
    merged = task.over(job)
    assert (merged.locale, merged.user_agent, merged.timezone_id) == ("en-GB", "Task/1", "UTC")
