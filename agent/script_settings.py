"""The `[scripts]` section of the daemon config: how script hosts are run, isolated and limited.

Every value is checked when the config is read, so a nonsense limit or an account that does not
exist stops the daemon at start (exit 2, naming the key), never at the first task.
"""

from __future__ import annotations

import pwd
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.protocol import MAX_FILE_BYTES

MIB = 1024 * 1024
SandboxMode = Literal["bwrap", "off"]
NetworkPolicy = Literal["none", "outbound", "host"]


class ScriptSettings(BaseModel):
    """How script hosts are run (docs/security.md explains each isolation key)."""

    model_config = ConfigDict(extra="forbid")

    python: str = Field(
        default=sys.executable,
        description="Interpreter for script hosts; it must be able to import the agent package.",
    )
    kill_grace_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Seconds between SIGTERM and SIGKILL when a script's processes are ended.",
    )
    max_file_bytes: int = Field(
        default=MAX_FILE_BYTES,
        gt=0,
        le=MAX_FILE_BYTES,
        description="Largest file (decoded) a script may attach to submit_task.",
    )
    work_root: Path | None = Field(
        default=None,
        description="Parent of the per-task work dirs (made 0700 if missing); unset: system temp.",
    )
    request_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a script call waits on the coordinator link before it fails.",
    )
    sandbox: SandboxMode = Field(
        default="bwrap",
        description="bwrap: each script host in its own bubblewrap sandbox; off: trusted scripts.",
    )
    network: NetworkPolicy = Field(
        default="none",
        description="none: no network; outbound: internet via slirp4netns, not the host's "
        "loopback; host: the host's network (trusted scripts only).",
    )
    user: str = Field(
        default="nobody",
        min_length=1,
        description="Account (name or uid) scripts run as when the daemon runs as root.",
    )
    memory_max_mb: int = Field(
        default=1024, ge=16, le=1024 * 1024, description="Memory of a task's processes, MiB."
    )
    pids_max: int = Field(
        default=256, ge=8, le=65536, description="Processes and threads of a task, at most."
    )
    cpus: float = Field(default=1.0, gt=0, le=1024, description="CPU time of a task, in CPUs.")
    open_files_max: int = Field(
        default=1024, ge=32, le=1048576, description="RLIMIT_NOFILE of a script's processes."
    )
    file_size_max_mb: int = Field(
        default=1024, ge=1, le=1024 * 1024, description="RLIMIT_FSIZE: largest file written, MiB."
    )
    output_max_bytes: int = Field(
        default=MIB,
        ge=1024,
        le=1024 * MIB,
        description="stdout+stderr bytes of one task that reach the daemon's log; the rest is "
        "dropped and counted.",
    )
    output_lines_per_s: int = Field(
        default=200,
        ge=1,
        le=100_000,
        description="Output lines per second that reach the log (bursts up to one second's).",
    )

    timeline_max_entries: int = Field(
        default=10_000,
        ge=0,
        le=1_000_000,
        description="Timeline entries kept per run; the rest are counted (0: the timeline is "
        "off, only its count is kept).",
    )
    artifacts_max_bytes: int = Field(
        default=20 * MIB,
        ge=0,
        le=1024 * MIB,
        description="Bytes of artifacts (kept screenshots) per run; the rest are counted and "
        "noted in the timeline.",
    )

    @field_validator("user")
    @classmethod
    def _existing_account(cls, value: str) -> str:
        try:
            if value.isdigit():
                pwd.getpwuid(int(value))
            else:
                pwd.getpwnam(value)
        except KeyError:
            raise ValueError(f"no account {value!r} on this host") from None
        return value

    def account(self) -> tuple[int, int]:
        """The uid and gid of `user`."""
        entry = pwd.getpwuid(int(self.user)) if self.user.isdigit() else pwd.getpwnam(self.user)
        return entry.pw_uid, entry.pw_gid
