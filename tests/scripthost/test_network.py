"""The network policy of `[scripts] network`, as a script sees it through the real sandbox.

A listener of the test on the host's 127.0.0.1 stands for the host's loopback services (adb,
the coordinator): only `host` reaches it. `outbound` has its own interface (slirp4netns) whose
gateway to the host's loopback (10.0.2.2) is disabled.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from tests.scripthost.conftest import Runner

PROBE = """
import socket
from pathlib import Path

def attempt(host, port):
    try:
        socket.create_connection((host, port), timeout=5).close()
        return "connected"
    except OSError as exc:
        return "error: " + type(exc).__name__

def main(agent):
    port = agent.arguments.job_variables["port"]
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return {
        "interfaces": sorted(line.split(":")[0].strip() for line in lines),
        "host_loopback": attempt("127.0.0.1", port),
        "slirp_gateway": attempt("10.0.2.2", port),
    }
"""


@pytest.fixture
def host_service() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


async def test_none_has_only_its_own_loopback(runner: Runner, host_service: int) -> None:
    runner.configure(network="none")
    outcome = await runner.run(PROBE, input={"port": host_service})
    assert outcome.data is not None, outcome.error
    assert outcome.data["interfaces"] == ["lo"]
    assert outcome.data["host_loopback"] == "error: ConnectionRefusedError"
    assert outcome.data["slirp_gateway"].startswith("error: ")


@pytest.mark.parametrize("privileged", [True, False], ids=["setpriv", "userns"])
async def test_outbound_has_a_network_but_not_the_hosts_loopback(
    runner: Runner, host_service: int, privileged: bool
) -> None:
    runner.configure(network="outbound")
    runner.isolation = replace(runner.isolation, as_root=privileged)
    outcome = await runner.run(PROBE, input={"port": host_service})
    assert outcome.data is not None, outcome.error
    assert outcome.data["interfaces"] == ["lo", "tap0"]
    assert outcome.data["host_loopback"] == "error: ConnectionRefusedError"
    assert outcome.data["slirp_gateway"].startswith("error: ")


async def test_host_shares_the_hosts_network(runner: Runner, host_service: int) -> None:
    runner.configure(network="host")
    outcome = await runner.run(PROBE, input={"port": host_service})
    assert outcome.data is not None, outcome.error
    assert outcome.data["host_loopback"] == "connected"
