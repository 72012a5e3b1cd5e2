"""Fuzzed host frames against a real coordinator process, while another host runs tasks.

10,000 frames drawn from agent.protocol's host frame models and mutated (tests/fuzzframes.py),
over four sessions of one fake host. Every refused frame gets its `error` frame with the code
the real parser gives it, in order, the session stays up (docs/protocol.md), nothing fails
inside the coordinator, and meanwhile a second host takes and finishes tasks, each exactly once.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import Phase, given, seed, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from agent.protocol import (
    AUTH_HEADER,
    Accept,
    Assign,
    Credits,
    Devices,
    Dump,
    Error,
    Finished,
    Frame,
    FrameError,
    Heartbeat,
    Hello,
    Reject,
    Reply,
    Request,
    Started,
    Submit,
    encode,
    parse_coordinator_frame,
    parse_host_frame,
)
from scripts.devstack import wait_until
from tests.coordinator.conftest import Farm, device
from tests.fuzzframes import Mutant, model_dicts, mutants

SESSIONS = 4
BATCHES_PER_SESSION = 100
FRAMES_PER_BATCH = 25  # 4 x 100 x 25 = 10,000 frames
TASKS_PER_SESSION = 3
RECV_S = 30.0
PARSE_CODES = frozenset({"bad_json", "unknown_type", "invalid_frame", "binary_frame"})
"""The codes of frames refused before handling: each such frame gets exactly one."""

HOST_FRAMES = st.one_of(
    *(
        model_dicts(model)
        for model in (
            *(Hello, Devices, Credits, Accept, Reject, Started),
            *(Submit, Dump, Finished, Request, Heartbeat, Error),
        )
    )
)


def _send(ws: ClientConnection, frame: Frame) -> None:
    ws.send(encode(frame))


@contextlib.contextmanager
def welcomed(
    farm: Farm, token: str, host_id: str, devices: list[str]
) -> Iterator[ClientConnection]:
    """A host connection that has said hello and been welcomed."""
    with connect(
        farm.coordinator.ws_url,
        additional_headers={AUTH_HEADER: f"Bearer {token}"},
        open_timeout=RECV_S,
        max_size=None,
    ) as ws:
        hello = Hello(
            protocol_version=1,
            host_id=host_id,
            agent_version="fuzz",
            devices=[device(d) for d in devices],
        )
        _send(ws, hello)
        assert parse_coordinator_frame(ws.recv(RECV_S)).type == "welcome"
        yield ws


def expected_error(mutant: Mutant) -> str | None:
    """The parse error code the coordinator must answer `mutant` with (None: no such error)."""
    try:
        frame = parse_host_frame(mutant.raw)
    except FrameError as exc:
        assert mutant.expect in (None, exc.code), (mutant.how, exc.code, mutant.raw[:200])
        return exc.code
    assert mutant.expect is None, (mutant.how, "parsed", mutant.raw[:200])
    # A hello after the welcome is refused by the handler, with the same kind of error.
    return "invalid_frame" if isinstance(frame, Hello) else None


def fuzz_session(ws: ClientConnection, number: int) -> int:
    """Send BATCHES_PER_SESSION batches of mutants on `ws`; returns how many frames went."""
    sent = 0

    @seed(number)
    @settings(
        max_examples=BATCHES_PER_SESSION, deadline=None, database=None, phases=[Phase.generate]
    )
    @given(st.lists(mutants(HOST_FRAMES), min_size=FRAMES_PER_BATCH, max_size=FRAMES_PER_BATCH))
    def fuzz(batch: list[Mutant]) -> None:
        nonlocal sent
        expected = [code for m in batch if (code := expected_error(m)) is not None]
        for mutant in batch:
            ws.send(mutant.raw)
        sent += len(batch)
        assert refusals_until_probe(ws) == expected

    try:
        fuzz()
    except ConnectionClosed as exc:
        raise AssertionError(f"the coordinator dropped the session: {exc}") from None
    return sent


def refusals_until_probe(ws: ClientConnection) -> list[str]:
    """Send a probe request, then read up to its reply: the parse error codes received first."""
    probe = uuid.uuid4().hex
    _send(ws, Request(id=probe, task_id="none", method="ping"))
    codes = []
    while True:
        frame = parse_coordinator_frame(ws.recv(RECV_S))
        if isinstance(frame, Reply) and frame.id == probe:
            return codes
        if isinstance(frame, Error):
            assert frame.code != "internal_error", frame
            if frame.code in PARSE_CODES:
                codes.append(frame.code)


class Worker:
    """A well-behaved host in a thread: takes each task it is assigned and finishes it."""

    def __init__(self, farm: Farm) -> None:
        self.host_id = farm.unique("worker")
        self.device = f"worker-device-{uuid.uuid4().hex}"
        self._connection = welcomed(farm, farm.token(self.host_id), self.host_id, [self.device])
        self.ws = self._connection.__enter__()
        self.assigned: list[str] = []
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Worker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(RECV_S)
        self._connection.__exit__(None, None, None)

    def _run(self) -> None:
        try:
            _send(self.ws, Credits(free=[self.device]))
            while not self._stop.is_set():
                try:
                    raw = self.ws.recv(1.0)
                except TimeoutError:
                    _send(self.ws, Heartbeat(sent_at=datetime.now(UTC)))
                    continue
                frame = parse_coordinator_frame(raw)
                if isinstance(frame, Assign):
                    self._finish(frame.task.task_id)
        except BaseException as exc:  # told to the test, which fails on it
            self.failure = exc

    def _finish(self, task_id: str) -> None:
        self.assigned.append(task_id)
        at = datetime.now(UTC)
        _send(self.ws, Accept(task_id=task_id))
        _send(self.ws, Started(task_id=task_id, started_at=at))
        done = {"key": f"s-{task_id}", "task_id": task_id, "seq": 0, "data": {"ok": True}}
        _send(self.ws, Submit(**done, status="success", finish=True))
        _send(
            self.ws, Finished(key=f"f-{task_id}", task_id=task_id, state="success", finished_at=at)
        )
        _send(self.ws, Credits(free=[self.device]))


@pytest.fixture
def api(farm: Farm) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=farm.coordinator.base_url,
        headers={"Authorization": f"Bearer {farm.api_key}"},
        timeout=RECV_S,
    ) as client:
        yield client


def _add_tasks(api: httpx.Client, job_id: str, device_id: str) -> list[str]:
    tasks = [{"remote_device_id": device_id} for _ in range(TASKS_PER_SESSION)]
    response = api.post(f"/api/jobs/{job_id}/tasks", json={"tasks": tasks})
    assert response.status_code == 201, response.text
    return [task["id"] for task in response.json()["tasks"]]


@pytest.mark.timeout(600)
# The websocket client masks frames with the `random` module; the worker thread sends while
# hypothesis draws, which it takes for a strategy using `random`.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_fuzzed_frames_are_refused_one_by_one_while_another_host_runs_tasks(
    farm: Farm, api: httpx.Client
) -> None:
    fuzz_host = farm.unique("fuzz")
    token = farm.token(fuzz_host)
    job = api.post("/api/jobs", json={"name": "fuzz", "script": "def main(agent): pass\n"})
    assert job.status_code == 201, job.text
    task_ids: list[str] = []
    sent = 0
    with Worker(farm) as worker:
        for session in range(SESSIONS):
            task_ids += _add_tasks(api, job.json()["id"], worker.device)
            with welcomed(farm, token, fuzz_host, [f"fuzz-device-{session}"]) as ws:
                sent += fuzz_session(ws, session)
            assert farm.coordinator.process.poll() is None, farm.coordinator.log_text()[-5000:]

        def all_ended() -> bool:
            states = [api.get(f"/api/tasks/{t}").json()["state"] for t in task_ids]
            return all(state == "success" for state in states)

        wait_until(all_ended, "every task of the worker to succeed", RECV_S * 2)
    assert worker.failure is None, repr(worker.failure)
    assert sent == SESSIONS * BATCHES_PER_SESSION * FRAMES_PER_BATCH
    assert Counter(worker.assigned) == Counter(task_ids)  # each task given once, to the worker
    log = farm.coordinator.log_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]
    assert f"host {fuzz_host} sent a bad frame: bad_json" in log
