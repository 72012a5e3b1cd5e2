"""Each API key's rate limit: the token bucket's arithmetic, and 429 with Retry-After from a
coordinator started with a tiny limit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from coordinator.cli.main import build_parser
from coordinator.ratelimit import RateLimiter
from tests.coordinator.conftest import api_client

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.coordinator.conftest import Farm


def test_a_bucket_gives_its_burst_then_its_rate_per_key() -> None:
    clock = [0.0]
    limiter = RateLimiter(rate=0.5, burst=3, clock=lambda: clock[0])
    assert [limiter.take("a") for _ in range(4)] == [0, 0, 0, 2]
    assert limiter.take("b") == 0  # a bucket of its own
    clock[0] = 1.0  # half a request back: not yet
    assert limiter.take("a") == 1
    clock[0] = 2.0
    assert [limiter.take("a") for _ in range(2)] == [0, 2]
    clock[0] = 1000.0  # a long quiet spell refills the burst, no more
    assert [limiter.take("a") for _ in range(4)] == [0, 0, 0, 2]


async def test_over_the_limit_is_429_with_retry_after(start_farm: Callable[..., Farm]) -> None:
    # One request per 1000 s after a burst of 3: the fourth is refused however slow the machine.
    farm = start_farm("--rate-limit", "0.001", "--rate-burst", "3")
    async with farm.client() as client:
        job = await farm.make_job(client, type="manual")
        assert (await client.get("/api/devices")).status_code == 200
        assert (await client.get("/api/tasks", params={"job_id": job["id"]})).status_code == 200
        for method, path in (("GET", "/api/devices"), ("POST", "/api/jobs")):
            refused = await client.request(method, path, json={"name": "j", "script": "x"})
            assert refused.status_code == 429, refused.text
            assert 1 <= int(refused.headers["Retry-After"]) <= 1000
            assert refused.json()["detail"].startswith(
                "API key tests is over its rate limit of 0.001 requests/s (burst 3)"
            )
    other = farm.coordinator.create_api_key("other")
    async with api_client(farm.coordinator, other) as client:
        assert (await client.get("/api/devices")).status_code == 200
    async with api_client(farm.coordinator, "not-a-key") as client:
        assert (await client.get("/api/devices")).status_code == 401


def test_rate_flags_default_and_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(["serve", "--data-dir", "/tmp/x"])
    assert (args.rate_limit, args.rate_burst) == (100.0, 1000)
    for flag, value in (("--rate-limit", "0"), ("--rate-limit", "inf"), ("--rate-burst", "1.5")):
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(["serve", "--data-dir", "/tmp/x", flag, value])
        assert exited.value.code == 2, (flag, value)
        assert f"argument {flag}" in capsys.readouterr().err
