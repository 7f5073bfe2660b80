"""The raw ceiling: the library's own batched greedy decode, in process, no server, no HTTP.

Like llama.cpp's llama-batched-bench: B sequences, their prompts computed first (not timed),
then every step decodes one token of each sequence in one batch; the argmax of each row
picks the next token. Reports decode tokens per second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from load import PROMPTS
from privserve.config import LlamaConfig
from privserve.engine.base import ModelSpec, PromptMessage, SamplingParams
from privserve.engine.llama.context import ContextShape, LlamaContext
from privserve.engine.llama.model import LlamaModel
from privserve.engine.llama.sampling import TokenSampler


@dataclass
class CeilingResult:
    batch: int
    decode_tokens: int
    decode_s: float
    tokens_per_s: float


def raw_decode(
    model_path: Path, threads: int, ctx: int, batches: list[int], tokens: int
) -> list[CeilingResult]:
    config = LlamaConfig(n_ctx=ctx, n_threads=threads)
    model = LlamaModel(ModelSpec("ceiling", model_path), config)
    greedy = TokenSampler(model, SamplingParams(max_tokens=tokens, temperature=0.0))
    results = []
    try:
        for batch in batches:
            shape = ContextShape(
                sequences=batch, tokens_per_sequence=ctx, batch_tokens=512, threads=threads
            )
            context = LlamaContext(model, shape)
            try:
                prompts = [
                    model.tokenize(
                        model.render_chat([PromptMessage("user", PROMPTS[i % len(PROMPTS)])]),
                        is_chat=True,
                    )
                    for i in range(batch)
                ]
                next_tokens = []
                for seq, prompt in enumerate(prompts):
                    row = context.add_run(prompt, 0, seq, logits_last=True)
                    context.decode()
                    next_tokens.append(greedy.sample(context.handle, row, context.logits(row)))
                positions = [len(p) for p in prompts]
                started = time.perf_counter()
                for _ in range(tokens - 1):
                    rows = [
                        context.add_run([tok], pos, seq, logits_last=True)
                        for seq, (tok, pos) in enumerate(zip(next_tokens, positions, strict=True))
                    ]
                    context.decode()
                    next_tokens = [
                        greedy.sample(context.handle, row, context.logits(row)) for row in rows
                    ]
                    positions = [p + 1 for p in positions]
                elapsed = time.perf_counter() - started
            finally:
                context.close()
            decoded = batch * (tokens - 1)
            results.append(CeilingResult(batch, decoded, elapsed, decoded / elapsed))
    finally:
        greedy.close()
        model.close()
    return results
