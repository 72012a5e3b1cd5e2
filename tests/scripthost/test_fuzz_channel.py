"""Fuzzed script channel frames: the daemon's reader never raises anything but ChannelError, and
a script that writes a broken frame on its channel fails its task as `script_crashed`.

Frames are drawn from agent.scriptrpc's child message models and mutated (tests/fuzzframes.py),
plus invalid UTF-8 and broken framing, which only the channel has.
"""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from agent.scriptrpc import (
    MAX_CHANNEL_FRAME_BYTES,
    Call,
    ChannelError,
    Report,
    parse_child_message,
    read_frame,
)
from tests.fuzzframes import Mutant, model_dicts, mutants
from tests.scripthost.conftest import Runner

CHILD_FRAMES = model_dicts(Call) | model_dicts(Report)
FUZZ = settings(deadline=None, database=None, derandomize=True, phases=[Phase.generate])


@st.composite
def channel_bodies(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A frame's body, and whether it is known to be bad before the parser says so."""
    mutant: Mutant = draw(mutants(CHILD_FRAMES))
    if isinstance(mutant.raw, bytes):  # a websocket's binary frame: here, break its UTF-8
        cut = draw(st.integers(0, len(mutant.raw)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"]))
        return mutant.raw[:cut] + bad + mutant.raw[cut:], True
    return mutant.raw.encode(), mutant.expect is not None


def framed(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


async def _read_one(stream: bytes) -> object:
    reader = asyncio.StreamReader()
    reader.feed_data(stream)
    reader.feed_eof()
    obj = await read_frame(reader)
    return None if obj is None else parse_child_message(obj)


def parses(stream: bytes) -> bool:
    """True if the daemon would take the stream's first frame; False if it refuses it."""
    try:
        asyncio.run(_read_one(stream))
    except ChannelError:
        return False
    return True


# 1,000 examples: with hypothesis 6.170 (derandomized) they drew each of fuzzframes' 13
# mutations at least 27 times, each framing at least 140 times, a non-string `type` 27 times.
@settings(FUZZ, max_examples=1000)
@given(channel_bodies(), st.sampled_from(["whole", "short", "too_long", "header_only"]))
def test_the_reader_refuses_any_broken_frame_with_a_channel_error(
    body_and_bad: tuple[bytes, bool], framing: str
) -> None:
    body, bad = body_and_bad
    stream = {
        "whole": framed(body),
        "short": framed(body)[:-1] if body else b"\x00\x00",
        "too_long": struct.pack(">I", MAX_CHANNEL_FRAME_BYTES + 1) + body,
        "header_only": struct.pack(">I", len(body) + 1),
    }[framing]
    accepted = parses(stream)  # anything but a ChannelError fails the test here
    if bad or framing != "whole":
        assert not accepted


SCRIPT = """
import os, sys, time

def main(agent):
    channel = int(sys.argv[sys.argv.index("--fd") + 1])
    for frame in {frames!r}:
        os.write(channel, frame)
    time.sleep(1000)  # outlives its timeout: only the broken channel may end it
"""


# One runner for every example: it holds no state between runs.
@settings(FUZZ, max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(channel_bodies(), min_size=4, max_size=4))
def test_a_script_that_breaks_its_channel_fails_as_script_crashed(
    runner: Runner, bodies: list[tuple[bytes, bool]]
) -> None:
    first = framed(bodies[0][0])
    if parses(first):  # a mutation that happens to be a valid message: make it break framing
        first = struct.pack(">I", MAX_CHANNEL_FRAME_BYTES + 1) + first
    frames = [first, *(framed(body) for body, _ in bodies[1:])]
    outcome = asyncio.run(runner.run(SCRIPT.format(frames=frames), timeout_s=120))
    assert outcome.reason == "script_crashed", outcome
    assert (outcome.error or "").startswith("script host broke the channel protocol: "), outcome


pytestmark = pytest.mark.timeout(300)
