"""One user's RAG questions in turn, straight on the engine: prefill and decode apart.

Where bench/rag.py measures whole requests over HTTP, this drives privserve's llama engine in
process with the same requests (bench/rag_prompts.py), one at a time, and reports for each
setup the prompt's prefill speed (prompt tokens over the time to the first token) and the
answer's decode speed (the later tokens over their time), with the KV cells in use. Answers
are greedy and run to `--max-tokens` (end-of-turn tokens banned) so setups compare equal work.

Setups: drafts off and at several `draft_max`; free slots keeping every prompt against the
default budget (`kept_prompt_tokens`).

    python bench/rag_profile.py [--model gemma3-270m | --converted qwen3-0.6b [--bits 4]]
                                [--questions 12] [--max-tokens 128]
                                [--setups no-drafts drafts-16 no-drafts]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from privserve.config import LlamaConfig
from privserve.engine.base import GenerationRequest, ModelSpec, PromptMessage, SamplingParams
from privserve.engine.llama.engine import LlamaEngine
from rag_prompts import requests as rag_requests
from random_checkpoint import add_model_arguments, chosen_model
from result_file import write_json

# Each setup's draft_max and kept_prompt_tokens (None: the default budget).
SETUPS: dict[str, tuple[int, int | None]] = {
    "keep-all": (0, 1 << 30),  # no drafts, free slots keep every prompt
    "no-drafts": (0, None),
    "drafts-8": (8, None),
    "drafts-16": (16, None),
}


@dataclass
class SetupResult:
    setup: str
    draft_max: int
    kept_prompt_tokens: int | None
    prefill_tok_s: float  # median over the questions
    decode_tok_s: float
    last_prefill_tok_s: float  # the last quarter's, once free slots have filled
    last_decode_tok_s: float
    kv_cells_used_last: int
    drafted: int
    accepted: int


async def run(
    model_path: Path, setup: str, draft_max: int, kept: int | None, args: argparse.Namespace
) -> SetupResult:
    engine = LlamaEngine.load(
        ModelSpec(setup, model_path),
        LlamaConfig(
            n_ctx=args.ctx,
            parallel=args.parallel,
            n_threads=args.threads,
            draft_max=draft_max,
            kept_prompt_tokens=kept,
        ),
        max_queued_requests=4,
    )
    model = engine._model  # the bench reads the vocabulary's end tokens, to ban them
    end_tokens = [t for t in range(engine.vocab_size) if model.is_end_of_generation(t)]
    sampling = SamplingParams(
        max_tokens=args.max_tokens,
        temperature=0.0,
        logit_bias=tuple((t, -100.0) for t in end_tokens),
    )
    prefill: list[float] = []
    decode: list[float] = []
    try:
        for messages in rag_requests(args.questions):
            text = engine.render_chat([PromptMessage(m["role"], m["content"]) for m in messages])
            prompt = engine.tokenize(text, is_chat=True)
            started = time.perf_counter()
            first: float | None = None
            produced = 0
            async for event in engine.generate(GenerationRequest(prompt, sampling, setup)):
                if first is None:
                    first = time.perf_counter()
                produced = event.completion_tokens
            ended = time.perf_counter()
            assert first is not None
            prefill.append(len(prompt) / (first - started))
            decode.append((produced - 1) / (ended - first))
        stats = engine.stats()
    finally:
        engine.close()
    tail = max(1, len(prefill) // 4)
    return SetupResult(
        setup,
        draft_max,
        kept,
        statistics.median(prefill),
        statistics.median(decode),
        statistics.median(prefill[-tail:]),
        statistics.median(decode[-tail:]),
        stats.kv_cells_used,
        stats.draft_tokens,
        stats.accepted_draft_tokens,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--parallel", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("bench/results/rag_profile.json"))
    parser.add_argument(
        "--setups", nargs="+", choices=list(SETUPS), default=list(SETUPS),
        help="in this order; one may come again, to see the machine drift",
    )  # fmt: skip
    args = parser.parse_args()
    setups = [(name, *SETUPS[name]) for name in args.setups]
    console = Console(width=120)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model_path = chosen_model(args, Path(tmp))
        if args.converted:
            args.model = model_path.stem
        for setup, draft_max, kept in setups:
            result = asyncio.run(run(model_path, setup, draft_max, kept, args))
            console.print(f"  {setup}: decode {result.decode_tok_s:.1f} tok/s")
            results.append(result)
    table = Table(
        title=f"one user, RAG prompts, {args.model}, {args.parallel} slots of {args.ctx}, "
        f"{args.max_tokens}-token answers, {args.threads} threads"
    )
    for column in (
        "setup",
        "prefill tok/s",
        "decode tok/s",
        "last: prefill",
        "last: decode",
        "KV cells in use",
        "accepted/drafted",
    ):
        table.add_column(column, justify="right")  # fmt: skip
    for r in results:
        rate = f"{r.accepted}/{r.drafted}" if r.drafted else "-"
        table.add_row(
            r.setup, f"{r.prefill_tok_s:.0f}", f"{r.decode_tok_s:.1f}",
            f"{r.last_prefill_tok_s:.0f}", f"{r.last_decode_tok_s:.1f}",
            str(r.kv_cells_used_last), rate,
        )  # fmt: skip
    console.print(table)
    write_json(console, args.out, [asdict(r) for r in results])


if __name__ == "__main__":
    main()
