"""What a drafted row costs: one sequence's decode step with 1 + k rows, at a prompt's depth.

A step that checks a k-token draft decodes 1 + k rows of one sequence. On a GPU, or on a
model whose layers mostly attend over a short window (Gemma 3), the extra rows are nearly
free; on a full-attention model on a CPU each row also attends over the whole prompt. This
times the step, in process (llama.cpp through privserve's own context, no server), for k
from 0 to 16 at depths 0 and the RAG prompt's, and prints each as a multiple of the k = 0
step: the draft pays when the tokens it is expected to add exceed that multiple less one.

    python bench/draft_rows.py [--model gemma3-270m | --converted qwen3-0.6b [--bits 4]]
                               [--depths 0 2300]

Prints a table and writes JSON (bench/results/draft_rows.json).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from privserve.config import LlamaConfig
from privserve.engine.base import ModelSpec
from privserve.engine.llama.context import ContextShape, LlamaContext
from privserve.engine.llama.model import LlamaModel
from random_checkpoint import add_model_arguments, chosen_model
from result_file import write_json

DRAFTS = (0, 1, 2, 4, 8, 16)


def step_times(
    model_path: Path, depths: list[int], drafts: tuple[int, ...], repeats: int, threads: int
) -> dict[int, dict[int, float]]:
    """Median seconds of a step with 1 + k rows, by depth and k."""
    ctx = max(256, max(depths) + max(drafts) + 64)  # LlamaConfig asks for 256 at least
    model = LlamaModel(ModelSpec("rows", model_path), LlamaConfig(n_ctx=ctx, n_threads=threads))
    shape = ContextShape(sequences=1, tokens_per_sequence=ctx, batch_tokens=512, threads=threads)
    context = LlamaContext(model, shape)
    token = model.tokenize("The", is_chat=False)[-1]
    times: dict[int, dict[int, float]] = {}
    try:
        for depth in depths:
            context.clear(0)
            for start in range(0, depth, 512):  # the prompt, not timed
                context.add_run([token] * min(512, depth - start), start, 0)
                context.decode()
            by_draft: dict[int, float] = {}
            for k in drafts:
                samples = []
                for _ in range(repeats + 1):
                    context.add_run([token] * (1 + k), depth, 0, logits_all=True)
                    started = time.perf_counter()
                    context.decode()
                    samples.append(time.perf_counter() - started)
                    context.keep_prefix(0, depth)  # as a rejected draft is dropped
                by_draft[k] = statistics.median(samples[1:])  # the first warms up
            times[depth] = by_draft
    finally:
        context.close()
        model.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--depths", type=int, nargs="+", default=[0, 2300])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("bench/results/draft_rows.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_path = chosen_model(args, Path(tmp))
        name = f"{args.converted} (converted, {args.bits} bits)" if args.converted else args.model
        times = step_times(model_path, args.depths, DRAFTS, args.repeats, args.threads)
    table = Table(title=f"one sequence's step with 1 + k rows, {name}, {args.threads} threads")
    table.add_column("depth", justify="right")
    for k in DRAFTS:
        table.add_column(f"k={k}", justify="right")
    for depth, by_draft in times.items():
        base = by_draft[0]
        table.add_row(
            str(depth),
            *(
                f"{1000 * by_draft[k]:.1f} ms" if k == 0 else f"{by_draft[k] / base:.2f}×"
                for k in DRAFTS
            ),
        )
    console = Console(width=120)
    console.print(table)
    console.print("k = 0 in milliseconds, the rest as multiples of it")
    write_json(
        console,
        args.out,
        {
            "model": name,
            "threads": args.threads,
            "step_s": {str(d): {str(k): s for k, s in t.items()} for d, t in times.items()},
            "ratio_to_one_row": {
                str(d): {str(k): s / t[0] for k, s in t.items()} for d, t in times.items()
            },
        },
    )


if __name__ == "__main__":
    main()
