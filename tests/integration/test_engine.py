"""The llama engine itself, on the bundled model: what reaches a stream when a request
cannot start, the waiting list's lock, and the engine's health once its thread dies."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from privserve.config import LlamaConfig
from privserve.engine.base import GenerationRequest, ModelSpec, OutputConstraint, SamplingParams
from privserve.engine.llama.engine import LlamaEngine
from privserve.engine.llama.sequence import RunningSequence
from privserve.engine.llama.slots import Placement
from privserve.engine.llama.waiting import Waiting
from privserve.engine.streams import Outbox
from privserve.errors import InvalidRequest, ShuttingDown

pytestmark = pytest.mark.model


@pytest.fixture
def engine(model_path: Path) -> Iterator[LlamaEngine]:
    loaded = LlamaEngine.load(
        ModelSpec("engine-test", model_path),
        LlamaConfig(n_ctx=512, parallel=2),
        max_queued_requests=8,
    )
    yield loaded
    loaded.close()


def request(constraint: OutputConstraint | None = None) -> GenerationRequest:
    sampling = SamplingParams(max_tokens=4, temperature=0.0, constraint=constraint)
    return GenerationRequest([2, 105, 2364, 107], sampling, "r")


async def test_a_client_error_found_when_starting_reaches_the_stream_as_itself(
    engine: LlamaEngine,
) -> None:
    """Queued without the check (which would have answered 400): llama.cpp refuses the
    grammar on the engine thread, and the stream raises that InvalidRequest, not a 500."""
    empty_enum = OutputConstraint.json_schema({"enum": []}, param="response_format")
    stream = engine.generate(request(empty_enum))
    with pytest.raises(InvalidRequest) as raised:
        async with asyncio.timeout(30):
            async for _ in stream:
                pass
    assert raised.value.param == "response_format"
    with pytest.raises(InvalidRequest):
        engine.check_constraint(empty_enum)


async def test_starting_a_request_never_holds_the_lock_the_event_loop_takes(
    engine: LlamaEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the engine thread starts a request (copying cache cells, building samplers),
    another request can still be queued at once."""
    queued_meanwhile: list[bool] = []
    loop = asyncio.get_running_loop()
    admission = engine._admission
    start = admission._start

    def start_and_queue(
        waiting: Waiting, placement: Placement, outbox: Outbox
    ) -> tuple[RunningSequence | None, int]:
        if not queued_meanwhile:
            future = asyncio.run_coroutine_threadsafe(submit_one(), loop)
            queued_meanwhile.append(future.result(timeout=5))
        return start(waiting, placement, outbox)

    async def submit_one() -> bool:
        engine.generate(request())
        return True

    monkeypatch.setattr(admission, "_start", start_and_queue)
    first = engine.generate(request())
    async with asyncio.timeout(30):
        async for _ in first:
            pass
    assert queued_meanwhile == [True]


async def test_health_names_why_once_the_engine_thread_died(
    engine: LlamaEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert engine.health() is None

    class Fault(BaseException):
        """Not an Exception: nothing in the step loop catches it."""

    def die() -> None:
        raise Fault("simulated fault outside a step")

    monkeypatch.setattr(engine, "_step", die)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # expected: no noise
    stream = engine.generate(request())
    async with asyncio.timeout(30):
        while engine.health() is None:
            await asyncio.sleep(0.05)
    reason = engine.health()
    assert reason is not None and "simulated fault" in reason
    with pytest.raises(ShuttingDown):  # what was running is told, not left waiting
        async with asyncio.timeout(30):
            async for _ in stream:
                pass


@pytest.mark.parametrize("kept", [None, 64])
async def test_free_slots_keep_cached_prompts_only_up_to_the_budget(
    model_path: Path, kept: int | None
) -> None:
    """Four different 50-token prompts in turn: by default every free slot keeps its prompt
    (a later prompt sharing it reuses it); with a budget of 64 tokens, one at most."""
    engine = LlamaEngine.load(
        ModelSpec("keep-test", model_path),
        LlamaConfig(n_ctx=512, parallel=4, kept_prompt_tokens=kept),
        max_queued_requests=8,
    )
    try:
        for first in range(4):
            prompt = [2, *(1000 + 50 * first + i for i in range(49))]
            sampling = SamplingParams(max_tokens=2, temperature=0.0)
            async with asyncio.timeout(60):
                async for _ in engine.generate(GenerationRequest(prompt, sampling, "k")):
                    pass
        used = engine.stats().kv_cells_used
        assert used == (4 * 50 if kept is None else 2 * 50)  # the last one, and one kept
        # A prompt that shares the first one's start finds it cached, unless it was dropped.
        again = [2, *(1000 + i for i in range(49)), 7]
        events = [e async for e in engine.generate(GenerationRequest(again, sampling, "k"))]
        cached = events[-1].cached_tokens
        if kept is None:
            assert cached == 50
        else:
            assert cached <= 1  # at most the BOS, which every prompt shares
    finally:
        engine.close()
