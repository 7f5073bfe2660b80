"""Drafts from the prompt change speed, never output: the bundled model answers the RAG
bench's own prompts the same with and without them (greedy, and sampled with a seed), and a
drafted token checked by the model leaves the sampled distribution as the model's own."""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from privserve.config import LlamaConfig
from privserve.engine.base import (
    GenerationRequest,
    ModelSpec,
    PromptMessage,
    SamplingParams,
    TokenLogprob,
)
from privserve.engine.llama.engine import LlamaEngine
from privserve.engine.llama.sequence import RunningSequence

pytestmark = pytest.mark.model

BENCH = Path(__file__).resolve().parents[2] / "bench"


def rag_prompts() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rag_prompts", BENCH / "rag_prompts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["rag_prompts"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def engines(model_path: Path) -> Iterator[dict[int, LlamaEngine]]:
    loaded: dict[int, LlamaEngine] = {}
    try:
        for draft_max in (0, 8):
            loaded[draft_max] = LlamaEngine.load(
                ModelSpec(f"drafts-{draft_max}", model_path),
                # Every position of the sliding-window layers kept, as these tests were
                # written for (windows with drafts, greedy: test_sliding_window.py).
                LlamaConfig(n_ctx=4096, parallel=4, draft_max=draft_max, swa_full=True),
                max_queued_requests=64,
            )
        yield loaded
    finally:
        for engine in loaded.values():
            engine.close()


async def answer(
    engine: LlamaEngine, prompt: list[int], sampling: SamplingParams
) -> list[TokenLogprob]:
    """The answer's tokens with their log-probabilities."""
    tokens: list[TokenLogprob] = []
    async with asyncio.timeout(300):
        async for event in engine.generate(GenerationRequest(prompt, sampling, "spec")):
            tokens += event.logprobs
    return tokens


def bench_prompts(engine: LlamaEngine, count: int) -> list[list[int]]:
    """The RAG bench's requests (its English corpus, which ships with Python), as tokens."""
    prompts = []
    for messages in rag_prompts().requests(count, quotes=4, chinese=False):
        text = engine.render_chat([PromptMessage(m["role"], m["content"]) for m in messages])
        prompts.append(engine.tokenize(text, is_chat=True))
    return prompts


# llama.cpp's CPU kernels are not batch-invariant: the same greedy answer recomputed from a
# cached prompt, without drafts, moves log-probabilities by up to 0.2 here. Two runs agree
# token for token until a near-tie, where that noise may tip the choice either way.
NOISE = 0.5


@pytest.mark.parametrize(
    "sampling",
    [
        SamplingParams(max_tokens=160, temperature=0.0, logprobs=True, top_logprobs=5),
        # top_k sorts the candidates, so a seeded draw near a boundary picks a neighbour in
        # probability; over the whole vocabulary in id order, llama.cpp's noise moved the
        # boundaries of near-certain tokens enough to land on unrelated unlikely ones.
        SamplingParams(
            max_tokens=160, temperature=0.7, top_k=40, seed=1234, logprobs=True, top_logprobs=5
        ),
    ],
    ids=["greedy", "sampled-with-seed"],
)
async def test_answers_to_the_bench_prompts_are_the_same_with_and_without_drafts(
    engines: dict[int, LlamaEngine], sampling: SamplingParams
) -> None:
    """Token for token the same, with the same log-probabilities, up to llama.cpp's own
    noise: a run may part from the other only where that noise can tip the choice."""
    prompts = bench_prompts(engines[0], 4)
    before = engines[8].stats()
    plain = await asyncio.gather(*(answer(engines[0], p, sampling) for p in prompts))
    drafted = await asyncio.gather(*(answer(engines[8], p, sampling) for p in prompts))
    same = 0
    for a, b in zip(plain, drafted, strict=True):
        agreed = 0
        for x, y in zip(a, b, strict=False):
            if x.token != y.token:
                assert_parting_is_noise(x, y, greedy=sampling.temperature == 0.0)
                break
            assert abs(x.logprob - y.logprob) < NOISE, (agreed, x, y)
            agreed += 1
        else:
            assert len(a) == len(b)
        same += agreed
    assert same >= 0.6 * sum(len(a) for a in plain), "the runs parted too early to compare"
    after = engines[8].stats()
    assert engines[0].stats().draft_tokens == 0
    # Not vacuous: drafts were made, some were kept and some were not.
    accepted = after.accepted_draft_tokens - before.accepted_draft_tokens
    assert 0 < accepted < after.draft_tokens - before.draft_tokens


def assert_parting_is_noise(plain: TokenLogprob, drafted: TokenLogprob, *, greedy: bool) -> None:
    """Greedy: the two tokens nearly tie, as either run rated them. Sampled: the plain run's
    token was no near-certain choice, or the drafted one was among its next likeliest
    (a small shift of the probabilities moves a seeded draw near a boundary to the
    neighbouring token; a misused draw parts the runs anywhere)."""
    if greedy:
        assert nearly_tie(plain, drafted) or nearly_tie(drafted, plain), (plain, drafted)
    else:
        rated = {top.token for top in plain.top}
        assert plain.logprob < math.log(0.9) or drafted.token in rated, (plain, drafted)


def nearly_tie(chose: TokenLogprob, other: TokenLogprob) -> bool:
    """Whether the run that chose `chose` rated `other`'s token close to its own: among its
    top choices, or past them where those are flat (the model has no preference there) and
    the other run's pick was about as likely."""
    rated = {top.token: top.logprob for top in chose.top}
    if other.token in rated:
        return chose.logprob - rated[other.token] < NOISE
    flat = chose.logprob - min(rated.values()) < NOISE
    return flat and abs(other.logprob - chose.logprob) < NOISE


def assert_same_up_to_noise(a: list[TokenLogprob], b: list[TokenLogprob]) -> None:
    """Two greedy answers agree token by token, log-probabilities within NOISE, until they
    part, which they may only where two choices nearly tie."""
    for x, y in zip(a, b, strict=False):
        if x.token != y.token:
            assert nearly_tie(x, y) or nearly_tie(y, x), (x, y)
            return
        assert abs(x.logprob - y.logprob) < NOISE, (x, y)


@pytest.fixture(scope="module")
def unified_engine(model_path: Path) -> Iterator[LlamaEngine]:
    """One KV cache, where each sequence drafts what it proposes (with a stream per slot, a
    step drafts only when every sequence in it may, all to one length)."""
    engine = LlamaEngine.load(
        ModelSpec("drafts-unified", model_path),
        LlamaConfig(n_ctx=4096, parallel=4, draft_max=8, swa_full=True, kv_unified=True),
        max_queued_requests=64,
    )
    yield engine
    engine.close()


async def test_a_drafted_token_leaves_the_sampled_distribution_the_models_own(
    unified_engine: LlamaEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every answer's second token is checked against a fixed draft (the model's likeliest
    choice there); over many seeds its distribution must still be the model's, by a
    chi-square test at the 0.1 % level."""
    engine = unified_engine
    prompt = engine.tokenize("The capital of France is", is_chat=False)
    first_sampling = SamplingParams(max_tokens=1, temperature=0.0, logprobs=True)
    first = (await answer(engine, prompt, first_sampling))[0].token
    first_id = engine.tokenize(first, is_chat=False, add_special=False)
    assert len(first_id) == 1
    # The model's own distribution of the second token, after the likeliest first one.
    probe = SamplingParams(max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=20)
    expected = await expected_distribution(engine, prompt + first_id, probe)
    drafted_piece = max(expected, key=lambda piece: expected[piece])
    [draft_id] = engine.tokenize(drafted_piece, is_chat=False, add_special=False)

    def fixed_draft(self: RunningSequence, limit: int) -> list[int]:
        return [draft_id] if self.produced == 1 and limit > 0 else []

    monkeypatch.setattr(RunningSequence, "draft", fixed_draft)
    queue_room = asyncio.Semaphore(32)

    async def sampled(seed: int) -> list[TokenLogprob]:
        async with queue_room:
            sampling = SamplingParams(max_tokens=3, seed=seed, logprobs=True)
            return await answer(engine, prompt, sampling)

    before = engine.stats()
    answers = await asyncio.gather(*(sampled(seed) for seed in range(1000)))
    after = engine.stats()
    seconds = collections.Counter(a[1].token for a in answers if a[0].token == first)
    n = sum(seconds.values())
    # About one answer in five does (193 of 1,000 on one machine, over 200 on another); the
    # chi-square test needs only a few expected in each cell.
    assert n >= 150, "too few answers began with the likeliest first token to test"
    accepted = after.accepted_draft_tokens - before.accepted_draft_tokens
    drafted = after.draft_tokens - before.draft_tokens
    assert drafted >= 1000 and 0 < accepted < drafted  # both paths of the rule were taken
    statistic, degrees = chi_square(seconds, expected, n)
    assert statistic < chi_square_critical(degrees), (statistic, degrees, seconds, expected)


async def expected_distribution(
    engine: LlamaEngine, prompt: list[int], probe: SamplingParams
) -> dict[str, float]:
    events = [e async for e in engine.generate(GenerationRequest(prompt, probe, "probe"))]
    [logprob] = [lp for e in events for lp in e.logprobs]
    return {top.token: math.exp(top.logprob) for top in logprob.top}


def chi_square(
    observed: collections.Counter[str], expected: dict[str, float], n: int
) -> tuple[float, int]:
    """Pearson's statistic over the tokens expected at least 5 times, the rest pooled."""
    cells = [(observed[t], p * n) for t, p in expected.items() if p * n >= 5]
    kept = {t for t, p in expected.items() if p * n >= 5}
    rest_observed = n - sum(o for o, _ in cells)
    rest_expected = n - sum(e for _, e in cells)
    assert not kept.isdisjoint(observed)
    if rest_expected >= 5:
        cells.append((rest_observed, rest_expected))
    statistic = sum((o - e) ** 2 / e for o, e in cells)
    return statistic, len(cells) - 1


def chi_square_critical(degrees: int) -> float:
    """The 99.9th percentile of chi-square (Wilson-Hilferty; close enough from 1 degree)."""
    z = 3.090  # the normal's 99.9th percentile
    h = 2 / (9 * degrees)
    return float(degrees * (1 - h + z * math.sqrt(h)) ** 3)
