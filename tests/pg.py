"""A throwaway PostgreSQL cluster for the tests, and the switch that puts coordinators on it.

With DEVICE_AGENT_TEST_DATABASE=postgresql, `fresh_database()` gives each coordinator a new
database in one cluster per test session: made with initdb in a temp dir, listening on a free
127.0.0.1 port (trust authentication: it lives as long as the session), and stopped by the
session fixture in tests/conftest.py. Run as root (CI), the server runs as `nobody`, since
PostgreSQL refuses to run as root. Without the switch, `fresh_database()` is None: SQLite.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

SWITCH = "DEVICE_AGENT_TEST_DATABASE"
PG_LIB = Path("/usr/lib/postgresql")
"""Debian keeps each PostgreSQL version's initdb and pg_ctl in PG_LIB/VERSION/bin."""
NOBODY = 65534
SUPERUSER = "tests"
COMMAND_TIMEOUT_S = 60


def enabled() -> bool:
    """Whether this session runs coordinators on PostgreSQL (the switch says so)."""
    value = os.environ.get(SWITCH, "sqlite")
    if value not in ("sqlite", "postgresql"):
        raise RuntimeError(f"{SWITCH} must be sqlite or postgresql, not {value!r}")
    return value == "postgresql"


def _bin_dir() -> Path:
    """The newest installed version's (Debian's layout), else the one on PATH."""
    versions = sorted(
        (int(d.name), d / "bin")
        for d in (PG_LIB.iterdir() if PG_LIB.is_dir() else [])
        if d.name.isdigit() and (d / "bin" / "initdb").exists()
    )
    if versions:
        return versions[-1][1]
    found = shutil.which("initdb")
    if found is None:
        raise RuntimeError(
            f"{SWITCH}=postgresql needs PostgreSQL's initdb and pg_ctl, in {PG_LIB}/VERSION/bin "
            "or on PATH (Debian: apt-get install postgresql)"
        )
    return Path(found).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Cluster:
    bin_dir: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, program: str, *args: str) -> None:
        """Run a server program, as `nobody` when we are root."""
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:
            command = [
                "setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                *command,
            ]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
            env={**os.environ, "HOME": str(self.root)},
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr}{done.stdout}")

    @classmethod
    def start(cls) -> Cluster:
        root = Path(tempfile.mkdtemp(prefix="device-agent-pg-"))
        if os.geteuid() == 0:
            os.chown(root, NOBODY, NOBODY)
        cluster = cls(_bin_dir(), root, _free_port())
        cluster._run(
            "initdb",
            "-D",
            str(cluster.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        settings = (
            f"-p {cluster.port} -c listen_addresses=127.0.0.1 -k {root} "
            # A throwaway cluster: nothing to make durable.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        cluster._run(
            "pg_ctl",
            "-D",
            str(cluster.data),
            "-l",
            str(root / "server.log"),
            "-o",
            settings,
            "-w",
            "-t",
            str(COMMAND_TIMEOUT_S),
            "start",
        )
        return cluster

    def postmaster_pid(self) -> int:
        """The server's main process (the first line of its data dir's postmaster.pid)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database's URL."""
        name = f"coordinator_{uuid.uuid4().hex[:12]}"
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name)
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def dump(url: str) -> bytes:
    """Every row of the database at `url`, as pg_dump writes them."""
    done = subprocess.run(
        [str(_bin_dir() / "pg_dump"), "--data-only", "--dbname", url],
        capture_output=True,
        timeout=COMMAND_TIMEOUT_S,
        check=True,
    )
    return done.stdout


_cluster: Cluster | None = None


def fresh_database() -> str | None:
    """A new database's URL when the switch is on, else None (the coordinator uses SQLite in
    its data dir)."""
    return postgresql_database() if enabled() else None


def postgresql_database() -> str:
    """A new database's URL, whatever the switch says (replicas need PostgreSQL); the cluster
    starts at the first call."""
    global _cluster
    if _cluster is None:
        _cluster = Cluster.start()
    return _cluster.create_database()


def session_postmaster_pid() -> int | None:
    """The session cluster's server process, if one was started."""
    return None if _cluster is None else _cluster.postmaster_pid()


def stop_cluster() -> None:
    """Stop the session's cluster, if one was started."""
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        _cluster = None
