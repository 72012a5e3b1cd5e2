"""Real parts for the script host tests: a small device session and job backend, both recording."""

from __future__ import annotations

import logging
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.protocol import Assignment, Submit
from agent.runner import BackendError, ScriptSettings, TaskOutcome, run_task
from agent.sandbox import Isolation, probe
from drivers.base import ActionError, DeviceSession

LOG_NAME = "test.scripthost"
DEVICE_INFO = {"id": "dev-1", "kind": "sim", "brand": "acme", "model": "t1", "width": 1080}
SCREENSHOT = {
    "screenshot": "aGVsbG8=",
    "compressedWidth": 540,
    "compressedHeight": 960,
    "originalWidth": 1080,
    "originalHeight": 1920,
}


class RecordingSession(DeviceSession):
    """Answers each action with a canned JSON value, or fails the ones named in `errors`."""

    def __init__(self, errors: dict[str, str] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.errors = errors or {}
        self.results: dict[str, Any] = {"screenshot": SCREENSHOT, "browse": {"url": "x"}}

    async def call(self, action: str, params: dict[str, Any]) -> Any:
        self.calls.append((action, params))
        if action in self.errors:
            raise ActionError(action, self.errors[action])
        return self.results.get(action)

    async def close(self) -> None:
        return None


class RecordingBackend:
    """Accepts every submission (unless told to refuse) and records the frames and requests."""

    def __init__(self, refuse: str | None = None) -> None:
        self.submits: list[Submit] = []
        self.refuse = refuse
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.answers: dict[str, dict[str, Any]] = {}

    async def submit(self, frame: Submit) -> dict[str, Any]:
        self.submits.append(frame)
        if self.refuse is not None:
            return {"success": False, "error": self.refuse}
        return {"success": True}

    async def request(self, task_id: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Answers the methods in `answers`; any other is refused as a coordinator would."""
        self.requests.append((task_id, method, params))
        if method not in self.answers:
            raise BackendError(f"unknown method '{method}'")
        return self.answers[method]


def assignment(source: str, timeout_s: float = 60, **fields: Any) -> Assignment:
    defaults: dict[str, Any] = {"task_id": "task-1", "job_id": "job-1", "remote_device_id": "dev-1"}
    return Assignment(
        **{**defaults, **fields},
        script_sha256="0" * 64,
        script_source=textwrap.dedent(source),
        timeout_s=timeout_s,
    )


class Runner:
    def __init__(self, work_root: Path, isolation: Isolation) -> None:
        self.session = RecordingSession()
        self.backend = RecordingBackend()
        self.isolation = replace(
            isolation, settings=ScriptSettings(work_root=work_root, kill_grace_s=5)
        )
        self.log = logging.getLogger(LOG_NAME)

    @property
    def settings(self) -> ScriptSettings:
        return self.isolation.settings

    def configure(self, **settings: Any) -> None:
        """Run the next scripts with these `[scripts]` keys changed."""
        changed = self.settings.model_copy(update=settings)
        self.isolation = replace(self.isolation, settings=changed)

    async def run(self, source: str, timeout_s: float = 60, **fields: Any) -> TaskOutcome:
        return await run_task(
            assignment(source, timeout_s, **fields),
            self.session,
            dict(DEVICE_INFO),
            self.backend,
            self.isolation,
            self.log,
        )


@pytest.fixture
def work_root(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.fixture(scope="session")
def host_isolation() -> Isolation:
    """What this machine enforces, probed once: every script host test runs sandboxed."""
    isolation = probe(ScriptSettings())
    assert not isolation.problems, isolation.report()
    return isolation


@pytest.fixture
def runner(work_root: Path, host_isolation: Isolation, caplog: pytest.LogCaptureFixture) -> Runner:
    caplog.set_level(logging.DEBUG, logger=LOG_NAME)
    return Runner(work_root, host_isolation)
