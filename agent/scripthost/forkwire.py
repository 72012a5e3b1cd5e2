"""What the daemon and a device's zygote (agent/scripthost/zygote.py) say over its control socket.

A SOCK_SEQPACKET socketpair: one JSON message per packet. The zygote says `ready` once it has
imported and built everything; the daemon sends `fork` with three descriptors (the new host's
channel, stdout and stderr) and the name of the host's work dir under the zygote's /task; the
zygote says `exited` with the exit code of each fork it reaped (negative: killed by that signal).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

MAX_MESSAGE_BYTES = 4096
FORK_FDS = 3
"""The descriptors a `fork` carries: channel, stdout, stderr."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZygoteReady(_Message):
    kind: Literal["ready"] = "ready"


class ForkRequest(_Message):
    kind: Literal["fork"] = "fork"
    id: int = Field(ge=0)
    task_dir: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


class ChildExited(_Message):
    kind: Literal["exited"] = "exited"
    id: int = Field(ge=0)
    returncode: int


ZygoteEvent = Annotated[ZygoteReady | ChildExited, Field(discriminator="kind")]
ZYGOTE_EVENT: TypeAdapter[ZygoteReady | ChildExited] = TypeAdapter(ZygoteEvent)
