"""Split KV streams (`kv_unified = false`): each slot and held prefix has a stream of its own.
Rows queued in any order get their own logits, prefixes copied stream to stream are reused,
and answers are those of the unified cache, up to llama.cpp's own noise; through the server,
an answer moved to keep the running slots together is counted and answers in full."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from pydoc_data.topics import topics

import httpx
import numpy as np
import pytest

from privserve.config import LlamaConfig
from privserve.engine.base import GenerationRequest, ModelSpec, SamplingParams, TokenLogprob
from privserve.engine.llama.context import ContextShape, LlamaContext
from privserve.engine.llama.engine import LlamaEngine
from privserve.engine.llama.model import LlamaModel
from tests.integration.conftest import MODEL_ID, NO_END
from tests.integration.server import RunningServer, start_server
from tests.integration.test_metrics import scrape, value
from tests.integration.test_sliding_window import SHARED, ask_in_turn, loaded_engines, questions
from tests.integration.test_speculation import NOISE, assert_same_up_to_noise

pytestmark = pytest.mark.model


def prose(model: LlamaModel, count: int, length: int) -> list[list[int]]:
    texts = [topics[name] for name in sorted(topics) if len(topics[name]) > 4 * length]
    return [model.tokenize(text, is_chat=False)[:length] for text in texts[:count]]


def test_rows_queued_out_of_sequence_order_get_their_own_logits(model_path: Path) -> None:
    """llama.cpp computes split streams a run of consecutive sequences at a time, so the
    context sorts a step's rows by sequence; each caller's row index must still find its
    token's logits, as when each sequence is decoded alone."""
    config = LlamaConfig(n_ctx=512, parallel=3)
    model = LlamaModel(ModelSpec("split-rows", model_path), config)
    try:
        shape = ContextShape(sequences=3, tokens_per_sequence=512, batch_tokens=256, threads=2)
        prompts = prose(model, 3, 40)
        alone = LlamaContext(model, shape)
        try:
            expected = []
            for sequence, prompt in enumerate(prompts):
                row = alone.add_run(prompt, 0, sequence, logits_last=True)
                alone.decode()
                expected.append(alone.logits(row).copy())
        finally:
            alone.close()
        split = LlamaContext(model, replace(shape, unified=False))
        try:
            # Queued 2, 0, 1, and sequence 0 in two runs: the rows move, the indexes stay.
            rows = {2: split.add_run(prompts[2], 0, 2, logits_last=True)}
            split.add_run(prompts[0][:25], 0, 0)
            rows[1] = split.add_run(prompts[1], 0, 1, logits_last=True)
            rows[0] = split.add_run(prompts[0][25:], 25, 0, logits_last=True)
            split.decode()
            assert sorted(split.batch_row(r) for r in rows.values()) != sorted(rows.values())
            for sequence, row in rows.items():
                got = split.logits(row)
                assert int(np.argmax(got)) == int(np.argmax(expected[sequence]))
                assert float(np.max(np.abs(got - expected[sequence]))) < NOISE
        finally:
            split.close()
    finally:
        model.close()


@pytest.fixture(scope="module")
def engines(model_path: Path) -> Iterator[dict[str, LlamaEngine]]:
    """The same two slots and one holder, unified and split (drafts on in both)."""
    configs = {
        name: LlamaConfig(n_ctx=2048, parallel=2, held_prefixes=1, kv_unified=unified)
        for name, unified in (("unified", True), ("split", False))
    }
    with loaded_engines(model_path, configs) as loaded:
        yield loaded


async def test_split_streams_reuse_copied_prefixes_and_answer_as_unified(
    engines: dict[str, LlamaEngine],
) -> None:
    """The shared start is copied from the holder's stream into each question's slot, and
    the answers part from the unified cache's only where two choices nearly tie."""
    prompts = questions(engines["split"])
    split, reused = await ask_in_turn(engines["split"], prompts)
    unified, _ = await ask_in_turn(engines["unified"], prompts)
    # A stream's window cells are dropped as its prompt moves on, so the second question
    # finds the start only past the first's window: it holds it, and the rest copy it.
    assert all(n >= SHARED - 1 for n in reused[2:]), reused
    for a, b in zip(unified, split, strict=True):
        assert_same_up_to_noise(a, b)


async def test_concurrent_answers_on_split_streams_match_answers_alone(
    engines: dict[str, LlamaEngine],
) -> None:
    """Two questions decoded in the same steps (their rows sorted into one run) answer as
    each does alone."""
    engine = engines["split"]
    prompts = questions(engine)[:2]
    alone, _ = await ask_in_turn(engine, prompts)
    sampling = SamplingParams(max_tokens=24, temperature=0.0, logprobs=True, top_logprobs=5)

    async def answer(prompt: list[int]) -> list[TokenLogprob]:
        tokens: list[TokenLogprob] = []
        async for event in engine.generate(GenerationRequest(prompt, sampling, "together")):
            tokens += event.logprobs
        return tokens

    async with asyncio.timeout(300):
        together = await asyncio.gather(*(answer(p) for p in prompts))
    for single, both in zip(alone, together, strict=True):
        assert_same_up_to_noise(single, both)


async def test_a_sequence_moved_to_gather_the_running_ones_answers_as_alone(
    model_path: Path,
) -> None:
    """Three slots: the middle request ends early, the last one's stream is copied into the
    middle slot while it answers, and its answer is the one it gives alone (up to
    llama.cpp's noise between batch shapes)."""
    engine = LlamaEngine.load(
        ModelSpec("streams-gather", model_path),
        LlamaConfig(n_ctx=1024, parallel=3, kv_unified=False, draft_max=0),
        max_queued_requests=8,
    )
    try:
        prompts = [p[-150:] for p in questions(engine)[:3]]  # their own, distinct parts
        lengths = (40, 2, 40)

        async def answer(prompt: list[int], tokens: int) -> list[TokenLogprob]:
            sampling = SamplingParams(
                max_tokens=tokens, temperature=0.0, logprobs=True, top_logprobs=5
            )
            out: list[TokenLogprob] = []
            async for event in engine.generate(GenerationRequest(prompt, sampling, "gather")):
                out += event.logprobs
            return out

        alone = [await answer(p, n) for p, n in zip(prompts, lengths, strict=True)]
        # Fill the slots in order: each request starts once the one before has its slot.
        tasks = []
        async with asyncio.timeout(300):
            for prompt, tokens in zip(prompts, lengths, strict=True):
                tasks.append(asyncio.create_task(answer(prompt, tokens)))
                while engine.stats().running_requests < len(tasks):
                    await asyncio.sleep(0.01)
            together = await asyncio.gather(*tasks)
        assert engine.stats().gathered_sequences >= 1
        for single, both in zip(alone, together, strict=True):
            assert_same_up_to_noise(single, both)
    finally:
        engine.close()


@pytest.fixture(scope="module")
def three_slot_server(
    tmp_path_factory: pytest.TempPathFactory, api_key: str
) -> Iterator[RunningServer]:
    """A fresh server with three slots and no held prefixes: slot ids are 0, 1 and 2."""
    running = start_server(
        tmp_path_factory.mktemp("three-slots"),
        args=["--parallel", "3"],
        env={"PRIVSERVE_API_KEY": api_key, "PRIVSERVE_LLAMA__HELD_PREFIXES": "0"},
    )
    yield running
    running.stop()


async def test_an_answer_moved_beside_the_others_is_counted_and_answers_in_full(
    three_slot_server: RunningServer, api_key: str
) -> None:
    """Three answers started one after another take slots 0, 1 and 2 (each new prompt the
    free slot beside the running ones). When the middle one's client leaves, the last is
    moved into its slot, so that the two left run in one pass: the move is counted in
    `/metrics`, and the moved answer goes on to its full length."""
    server = three_slot_server
    gathered = "privserve_gathered_sequences_total"
    before = value(scrape(server), gathered, model=MODEL_ID)
    answering = [asyncio.Event() for _ in range(3)]
    middle_leaves = asyncio.Event()

    async def answer(i: int, http: httpx.AsyncClient) -> tuple[str | None, int]:
        payload = {
            "model": MODEL_ID,
            "messages": [{"role": "user", "content": f"Tell a long story about the number {i}."}],
            "max_tokens": 160,
            "temperature": 0,
            "logit_bias": NO_END,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        finish, tokens = None, 0
        async with http.stream("POST", "/v1/chat/completions", json=payload) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                event = json.loads(line.removeprefix("data: "))
                if event.get("usage"):
                    tokens = event["usage"]["completion_tokens"]
                for choice in event["choices"]:
                    if choice["delta"].get("content"):
                        answering[i].set()  # placed and decoding
                    finish = choice["finish_reason"] or finish
                if i == 1 and middle_leaves.is_set():
                    return None, 0  # leaving the block closes the connection mid-answer
        return finish, tokens

    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=server.root_url, headers=headers, timeout=120) as http:
        tasks = []
        for i in range(3):  # one at a time, so each takes the slot beside the last
            tasks.append(asyncio.create_task(answer(i, http)))
            await asyncio.wait_for(answering[i].wait(), 60)
        middle_leaves.set()
        first, middle, last = await asyncio.gather(*tasks)
    assert middle == (None, 0)
    assert first == ("length", 160)
    assert last == ("length", 160)
    assert value(scrape(server), gathered, model=MODEL_ID) == before + 1
