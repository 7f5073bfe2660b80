"""Prefix reuse as a knowledge-base app causes it: a few long system prompts, many questions."""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass

from load import Sample, client, stream_chat

WORDS = [
    "the",
    "report",
    "notes",
    "that",
    "river",
    "water",
    "quality",
    "improved",
    "after",
    "the",
    "new",
    "treatment",
    "plant",
    "opened",
    "while",
    "costs",
    "for",
    "the",
    "city",
    "fell",
    "and",
    "residents",
    "asked",
    "for",
    "more",
    "parks",
    "schools",
    "and",
    "safer",
    "roads",
    "in",
    "every",
    "district",
    "during",
    "the",
    "long",
    "summer",
    "months",
    "of",
    "the",
    "year",
]
QUESTIONS = [
    "What improved?",
    "What did residents ask for?",
    "When was this?",
    "What fell?",
    "Summarise the notes.",
    "Name one district concern.",
    "What opened?",
    "Who asked?",
]


@dataclass
class PrefixResult:
    server: str
    system_prompts: int
    questions_each: int
    prompt_tokens_mean: float
    warm_cached_tokens_mean: float
    cold_ttft_mean_s: float
    warm_ttft_mean_s: float
    warm_over_cold: float


def system_prompts(count: int, words: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        f"Knowledge base {i}. Answer from these notes only. "
        + " ".join(rng.choice(WORDS) for _ in range(words))
        for i in range(count)
    ]


async def interleaved(
    base_url: str, key: str, server: str, prompts: list[str], model: str
) -> PrefixResult:
    """Question q of every prompt, then question q + 1 of every prompt, one at a time."""
    cold: list[Sample] = []
    warm: list[Sample] = []
    async with client(base_url, key, 1) as http:
        for q, question in enumerate(QUESTIONS):
            for prompt in prompts:
                messages = [
                    {"role": "system", "content": prompt},
                    {"role": "user", "content": question},
                ]
                sample = await stream_chat(http, messages, 4, model)
                (cold if q == 0 else warm).append(sample)
    cold_ttft = statistics.fmean(s.ttft_s for s in cold)
    warm_ttft = statistics.fmean(s.ttft_s for s in warm)
    return PrefixResult(
        server,
        len(prompts),
        len(QUESTIONS),
        statistics.fmean(s.prompt_tokens for s in cold + warm),
        statistics.fmean(s.cached_tokens for s in warm),
        cold_ttft,
        warm_ttft,
        warm_ttft / cold_ttft,
    )
