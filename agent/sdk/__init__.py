"""The `agent` object a user script's `main(agent)` receives, as typed classes.

    from agent.sdk import Agent

    async def main(agent: Agent) -> dict:
        task = await agent.utils.job.get_current_task()
        await agent.actions.browse(task.job_proof["url"])
        shot = await agent.actions.screenshot(1080, 1920, 80)
        await agent.utils.job.submit_task("success", {"ok": True}, True,
                                          [{"name": "page", "extension": "jpg",
                                            "base64Data": shot.screenshot}])

Every method is one call to the daemon, scoped to the script's own task and device. Actions raise
`ActionFailed`; job API methods return result objects (`.success`, `.error`). camelCase aliases of
the original API exist for every method (`submitTask`, `writeText`, ...).
"""

from agent.sdk.actions import Actions
from agent.sdk.agent import Agent
from agent.sdk.errors import ActionFailed, AgentError
from agent.sdk.files import File
from agent.sdk.info import Arguments, Control, Info, Log
from agent.sdk.job import Job, Utils
from agent.sdk.records import (
    AutomationInfo,
    Bounds,
    DeviceInfo,
    InsertedId,
    Node,
    Record,
    SubTask,
    SubTaskAssignment,
)
from agent.sdk.results import (
    AddSubTasksResult,
    AnotherJobTaskResult,
    AnotherTaskResult,
    AutomationVariablesResult,
    CheckpointResult,
    CurrentTaskResult,
    Result,
    ScreenshotResult,
    SubmitResult,
    SubTasksResult,
    TextBlock,
    TextResult,
)

__all__ = [
    "ActionFailed",
    "Actions",
    "AddSubTasksResult",
    "Agent",
    "AgentError",
    "AnotherJobTaskResult",
    "AnotherTaskResult",
    "Arguments",
    "AutomationInfo",
    "AutomationVariablesResult",
    "Bounds",
    "CheckpointResult",
    "Control",
    "CurrentTaskResult",
    "DeviceInfo",
    "File",
    "Info",
    "InsertedId",
    "Job",
    "Log",
    "Node",
    "Record",
    "Result",
    "ScreenshotResult",
    "SubTask",
    "SubTaskAssignment",
    "SubTasksResult",
    "SubmitResult",
    "TextBlock",
    "TextResult",
    "Utils",
]
