"""doctor's adb lines against the real adb server and a simulated phone: a phone attached, then
the same phone unauthorized (it asks for the host's key again), each on its own line."""

from __future__ import annotations

from agent.config import AgentConfig
from agent.doctor.devices import adb_checks
from tests.android.conftest import on_phone
from tests.sim.conftest import AdbServer, SimHandle


def lines(adb: AdbServer, connect: list[str]) -> list[str]:
    config = AgentConfig.model_validate(
        {
            "android": {
                "enabled": True,
                "adb_path": adb.adb,
                "adb_port": adb.port,
                "connect": connect,
            }
        }
    )
    return [check.line() for check in adb_checks(config)]


def test_doctor_shows_each_phone_and_an_unauthorized_one(
    adb_server: AdbServer, sim_phone: SimHandle
) -> None:
    serial = sim_phone.serial
    found = lines(adb_server, [serial, "127.0.0.1:1"])
    assert found[0].startswith(f"ok   adb: server on 127.0.0.1:{adb_server.port} lists ")
    assert f"ok   phone {serial}: attached" in found
    assert "warn phone 127.0.0.1:1: in android.connect but not attached" in " ".join(found)

    on_phone(sim_phone, lambda phone: phone.require_authorization())
    try:
        adb_server.wait_state(serial, "unauthorized")
        unauthorized = [
            x for x in lines(adb_server, [serial]) if x.startswith(f"fail phone {serial}")
        ]
        assert len(unauthorized) == 1, unauthorized
        assert "unauthorized" in unauthorized[0]
        assert "accept the USB debugging prompt" in unauthorized[0]
    finally:
        on_phone(sim_phone, lambda phone: phone.authorize())
