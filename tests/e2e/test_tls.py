"""TLS end to end: a real coordinator serving https and wss:// with a CA made for the test, and
a real daemon that verifies it with `coordinator.ca_file` (and fails clearly without it)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from scripts.devstack import (
    Coordinator,
    Daemon,
    Tls,
    add_tasks,
    create_job,
    devices_of,
    free_port,
    wait_devices,
    wait_terminal,
    wait_until,
)
from tests.pg import fresh_database


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = Tls(cert=tmp_path / "cert.pem", key=tmp_path / "key.pem", ca=tmp_path / "ca.pem")
    for i, pem in enumerate(server.cert_chain_pems):
        pem.write_to_path(str(files.cert), append=i > 0)
    server.private_key_pem.write_to_path(str(files.key))
    ca.cert_pem.write_to_path(str(files.ca))
    return files


@pytest.fixture
def coordinator(tmp_path: Path, tls: Tls) -> Iterator[Coordinator]:
    data = tmp_path / "coordinator"
    data.mkdir()
    coord = Coordinator(data_dir=data, port=free_port(), tls=tls, database=fresh_database())
    coord.start()
    yield coord
    coord.stop()


@pytest.fixture
def daemon_dir(tmp_path: Path) -> Path:
    path = tmp_path / "daemon"
    path.mkdir()
    return path


def test_a_task_runs_end_to_end_over_wss_verified_by_ca_file(
    coordinator: Coordinator, tls: Tls, daemon_dir: Path
) -> None:
    assert coordinator.base_url.startswith("https://")
    daemon = Daemon(dir=daemon_dir, coordinator=coordinator, ca_file=tls.ca)
    daemon.start()
    try:
        with coordinator.http() as http:
            wait_devices(http, "host-1", 1)
            job = create_job(http, "def main(agent):\n    return {'over': 'tls'}\n")
            (task,) = add_tasks(http, job["id"], {"input": {}})
            done = wait_terminal(http, task["id"])
    finally:
        daemon.stop()
    assert done["state"] == "success", done
    assert done["result"] == {"over": "tls"}
    assert f"coordinator {coordinator.ws_url}" in daemon.log()


def test_without_the_ca_the_daemon_says_certificate_verify_failed_and_keeps_trying(
    coordinator: Coordinator, daemon_dir: Path
) -> None:
    daemon = Daemon(dir=daemon_dir, coordinator=coordinator, browsers=[])
    daemon.start()
    try:
        wait_until(
            lambda: daemon.log().count("certificate verify failed") >= 2,
            "two failed connects naming the certificate",
        )
        assert daemon.proc is not None and daemon.proc.popen is not None
        assert daemon.proc.popen.poll() is None, daemon.log()
        with coordinator.http() as http:
            assert devices_of(http, "host-1") == []
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log()
    assert daemon.token not in daemon.log()


@pytest.mark.parametrize("pair", ["cert only", "key is the cert"])
def test_serve_with_an_unusable_tls_pair_exits_2(tmp_path: Path, tls: Tls, pair: str) -> None:
    flags = ["--tls-cert", str(tls.cert)]
    if pair == "key is the cert":
        flags += ["--tls-key", str(tls.cert)]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "coordinator.cli.main",
            "serve",
            "--data-dir",
            str(tmp_path),
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "--tls-cert" in done.stderr and "--tls-key" in done.stderr
