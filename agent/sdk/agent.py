"""`Agent`: the object a script's `main(agent)` receives."""

from __future__ import annotations

from typing import Any

from agent.sdk.actions import Actions
from agent.sdk.files import File
from agent.sdk.info import Arguments, Control, Info, Log
from agent.sdk.job import Utils
from agent.sdk.transport import Namespace, Transport


class Agent(Namespace):
    """Everything a script can do, scoped to its own task and device.

    `async def main(agent)` awaits the methods; `def main(agent)` gets the same methods as
    blocking calls. Annotate `main(agent: Agent)` for completion in an editor.
    """

    __slots__ = ("actions", "arguments", "control", "files", "info", "log", "utils")

    def __init__(
        self,
        transport: Transport,
        job_variables: dict[str, Any],
        automation_parameters: dict[str, Any],
        max_file_bytes: int,
    ) -> None:
        self.actions = Actions(transport)
        """Device control (tap, browse, screenshot, ...)."""
        self.utils = Utils(transport, max_file_bytes)
        """The job API: `agent.utils.job.submit_task(...)`, `get_current_task()`."""
        self.info = Info(transport)
        self.log = Log(transport)
        self.control = Control()
        self.arguments = Arguments(job_variables, automation_parameters)
        self.files = File
        """Build files for submit_task: `agent.files.from_bytes(...)`, `from_path(...)`."""
