"""Sliding-window layers that keep only their window (the bundled Gemma 3 has 15 of 18): a
start shared by many prompts is still reused, through a holder, and answers are those of a
cache that keeps every position, up to llama.cpp's own noise. On a unified KV cache, where
holders share their slots' cells (test_split_streams.py covers a stream per slot)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from pydoc_data.topics import topics

import pytest

from privserve.config import LlamaConfig
from privserve.engine.base import GenerationRequest, ModelSpec, SamplingParams, TokenLogprob
from privserve.engine.llama.engine import LlamaEngine
from tests.integration.test_speculation import NOISE, assert_same_up_to_noise

pytestmark = pytest.mark.model

SHARED = 700
# Each question's own tokens after the shared start. A long one moves its slot's window past
# the start; a short one's first token still sees the start through the window, so a start
# reused without its window would change it.
OWN = (1000, 1000, 200, 1000, 200, 1000)
QUESTIONS = len(OWN)
GREEDY = SamplingParams(max_tokens=24, temperature=0.0, logprobs=True, top_logprobs=5)


@pytest.fixture(scope="module")
def engines(model_path: Path) -> Iterator[dict[str, LlamaEngine]]:
    """Two slots of 2,048 tokens each way: windows with one holder (and drafts, whose
    rejected tokens are dropped from the windows too), windows without one, and every
    position kept."""
    one = {"n_ctx": 2048, "parallel": 2, "kv_unified": True}
    with loaded_engines(
        model_path,
        {
            "held": LlamaConfig(**one, held_prefixes=1),  # drafts too
            "unheld": LlamaConfig(**one, held_prefixes=0, draft_max=0),
            "full": LlamaConfig(**one, swa_full=True, draft_max=0),
        },
    ) as loaded:
        yield loaded


@contextlib.contextmanager
def loaded_engines(
    model_path: Path, configs: dict[str, LlamaConfig]
) -> Iterator[dict[str, LlamaEngine]]:
    """An engine per config on the bundled model, by name; all closed on leaving."""
    loaded: dict[str, LlamaEngine] = {}
    try:
        for name, config in configs.items():
            loaded[name] = LlamaEngine.load(
                ModelSpec(f"engine-{name}", model_path), config, max_queued_requests=8
            )
        yield loaded
    finally:
        for engine in loaded.values():
            engine.close()


def questions(engine: LlamaEngine) -> list[list[int]]:
    """Prompts of real prose: one shared start of SHARED tokens, then their OWN tokens."""
    texts = [topics[name][:6000] for name in sorted(topics) if len(topics[name]) > 6000]
    shared = engine.tokenize(texts[0], is_chat=False)[:SHARED]
    return [
        shared + engine.tokenize(text, is_chat=False, add_special=False)[:own]
        for text, own in zip(texts[1:], OWN, strict=False)
    ]


async def ask_in_turn(
    engine: LlamaEngine, prompts: list[list[int]]
) -> tuple[list[list[TokenLogprob]], list[int]]:
    """Each prompt's greedy answer, one after another, and the prompt tokens it found cached."""
    answers, reused = [], []
    for prompt in prompts:
        before = engine.stats().cached_prompt_tokens
        tokens: list[TokenLogprob] = []
        async with asyncio.timeout(300):
            async for event in engine.generate(GenerationRequest(prompt, GREEDY, "swa")):
                tokens += event.logprobs
        answers.append(tokens)
        reused.append(engine.stats().cached_prompt_tokens - before)
    return answers, reused


async def test_a_shared_start_is_reused_through_a_holder(
    engines: dict[str, LlamaEngine],
) -> None:
    prompts = questions(engines["held"])
    _, held = await ask_in_turn(engines["held"], prompts)
    _, unheld = await ask_in_turn(engines["unheld"], prompts)
    # From the second question on, the shared start comes from the holder.
    assert all(n >= SHARED - 1 for n in held[1:]), held
    # Not vacuous: without a holder the slots' windows have moved past the shared start.
    assert sum(n >= SHARED - 1 for n in unheld[1:]) < QUESTIONS - 1, unheld


async def test_answers_match_a_cache_that_keeps_every_position(
    engines: dict[str, LlamaEngine],
) -> None:
    """Each question's first token (what the prompt's cache decides) has the same top
    choices with the same log-probabilities; the answers part only where two choices nearly
    tie (this base model on reference prose ties often)."""
    prompts = questions(engines["held"])
    windowed, reused = await ask_in_turn(engines["held"], prompts)
    full, _ = await ask_in_turn(engines["full"], prompts)
    assert all(n >= SHARED - 1 for n in reused[1:]), reused
    for a, b in zip(full, windowed, strict=True):
        first_full = {top.token: top.logprob for top in a[0].top}
        first_windowed = {top.token: top.logprob for top in b[0].top}
        both = first_full.keys() & first_windowed.keys()
        assert len(both) >= 4, (a[0], b[0])
        assert all(abs(first_full[t] - first_windowed[t]) < NOISE for t in both), (a[0], b[0])
        assert_same_up_to_noise(a, b)


async def test_a_full_cache_drops_held_starts_and_the_step_goes_on(
    model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two held starts of 300 tokens fill 600 of 1,024 cells on their own once their slots
    have moved on; two new 480-token prompts then find no room until they are dropped."""
    engine = LlamaEngine.load(
        ModelSpec("swa-full-cache", model_path),
        LlamaConfig(n_ctx=512, parallel=2, held_prefixes=2, draft_max=0, kv_unified=True),
        max_queued_requests=8,
    )
    try:
        texts = [engine.tokenize(topics[n][:6000], is_chat=False) for n in sorted(topics)]
        texts = [t for t in texts if len(t) > 600]
        x, y = texts[0][:300], texts[1][:300]
        held = [x + texts[2][1:101], x + texts[3][1:101], y + texts[4][1:101], y + texts[5][1:101]]
        _, reused = await ask_in_turn(engine, held)
        assert reused[1] >= 299 and reused[3] >= 299, reused  # both starts were held
        new = [texts[6][:480], texts[7][:480]]
        sampling = SamplingParams(max_tokens=8, temperature=0.0)

        async def answer(prompt: list[int]) -> str | None:
            events = [e async for e in engine.generate(GenerationRequest(prompt, sampling, "x"))]
            return events[-1].finish_reason

        with caplog.at_level("INFO", logger="privserve.engine.llama.engine"):
            async with asyncio.timeout(300):
                made = await asyncio.gather(*(answer(p) for p in new))
        assert made == ["length", "length"]
        assert "KV cache full" in caplog.text
    finally:
        engine.close()
