"""Chat serving benchmark: privserve against llama.cpp's servers and the raw ceiling, one run.

Every server serves the bundled model with the same threads and per-request context and is
driven in turn (never two at once, so they do not share the CPU):

- streaming chat clients at each concurrency level, 128 completion tokens per request,
  temperature 0, a bounded number of requests: aggregate tok/s, TTFT and latency p50/p95;
- prefix reuse: four ~1,500-token system prompts, eight questions each, interleaved: warm
  against cold time to first token;
- the raw ceiling: the library's batched greedy decode in process (bench/ceiling.py).

References: llama-cpp-python's server (`python -m llama_cpp.server`) and llama.cpp's C++
`llama-server` (built by bench/build_llama_server.sh; skipped, saying so, when absent).
Prints tables, writes JSON with every figure and the privserve/reference ratios.

    python bench/chat.py [--levels 1 4 8 16 32] [--max-tokens 128] [--parallel 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ceiling import CeilingResult, raw_decode
from load import LevelResult, drive
from prefix import PrefixResult, interleaved, system_prompts
from result_file import write_json
from servers import (
    MODEL_ID,
    Running,
    find_llama_server,
    start_llama_cpp_python,
    start_llama_server,
    start_privserve,
)

TARGETS = [
    # (what, ratio key, concurrency, minimum or maximum)
    ("tok/s at 16 vs llama-server", "llama-server", 16, 1.1),
    ("tok/s at 16 vs llama_cpp.server", "llama_cpp.server", 16, 3.0),
    ("tok/s at 16 vs raw ceiling", "ceiling", 16, 0.85),
    ("tok/s at 1 vs llama-server", "llama-server", 1, 0.95),
]


def bench_levels(
    running: Running, key: str, levels: list[int], max_tokens: int, console: Console
) -> list[LevelResult]:
    asyncio.run(drive(running.base_url, key, running.name, 1, 1, 8, MODEL_ID))  # warm-up
    results = []
    for level in levels:
        # Enough requests to keep every client busy for two answers, at least four in all.
        result = asyncio.run(
            drive(
                running.base_url, key, running.name, level, max(4, 2 * level), max_tokens, MODEL_ID
            )
        )
        console.print(
            f"  {running.name} x{level}: {result.tokens_per_s:.1f} tok/s, "
            f"TTFT p50 {result.ttft_p50_s:.3f} s"
        )
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ctx", type=int, default=4096, help="context per request")
    parser.add_argument(
        "--parallel", type=int, default=16, help="slots, privserve and llama-server"
    )
    parser.add_argument("--prefix-words", type=int, default=1150, help="~1,500 tokens")
    parser.add_argument(
        "--gpu-layers",
        type=int,
        default=None,
        help="layers on the GPU for privserve and llama-server (-1: all); default: each's own",
    )
    parser.add_argument("--skip", nargs="*", default=[], help="servers to leave out")
    parser.add_argument("--out", type=Path, default=Path("bench/results/chat.json"))
    parser.add_argument("--logs", type=Path, default=Path("bench/results/logs"))
    args = parser.parse_args()
    console = Console(width=120)
    key = "bench-" + secrets.token_urlsafe(12)
    levels: dict[str, list[LevelResult]] = {}
    prefixes: list[PrefixResult] = []
    notes: list[str] = []
    prompts = system_prompts(4, args.prefix_words)
    args.logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        running = start_privserve(
            home,
            key,
            args.threads,
            args.ctx,
            args.parallel,
            args.logs / "privserve.log",
            args.gpu_layers,
        )
        [model_path] = (home / "models").glob("*.gguf")
        try:
            console.print(f"privserve at {running.base_url}")
            levels["privserve"] = bench_levels(running, key, args.levels, args.max_tokens, console)
            prefixes.append(
                asyncio.run(interleaved(running.base_url, key, running.name, prompts, MODEL_ID))
            )
        finally:
            running.stop()

        binary = find_llama_server()
        if "llama-server" in args.skip:
            notes.append("llama-server: skipped by --skip")
        elif binary is None or not binary.exists():
            notes.append(
                "llama-server: not found; run bench/build_llama_server.sh "
                "(or set PRIVSERVE_BENCH_LLAMA_SERVER) to include it"
            )
        else:
            running = start_llama_server(
                binary,
                model_path,
                args.threads,
                args.ctx,
                args.parallel,
                args.logs / "llama-server.log",
                args.gpu_layers,
            )
            try:
                console.print(f"llama-server at {running.base_url} ({binary})")
                levels["llama-server"] = bench_levels(
                    running, key, args.levels, args.max_tokens, console
                )
                prefixes.append(
                    asyncio.run(interleaved(running.base_url, key, running.name, prompts, MODEL_ID))
                )
            finally:
                running.stop()

        if "llama_cpp.server" in args.skip:
            notes.append("llama_cpp.server: skipped by --skip")
        else:
            running = start_llama_cpp_python(
                model_path, args.threads, args.ctx, args.logs / "llama_cpp.server.log"
            )
            try:
                console.print(f"llama_cpp.server at {running.base_url}")
                levels["llama_cpp.server"] = bench_levels(
                    running, key, args.levels, args.max_tokens, console
                )
            finally:
                running.stop()

        console.print("raw ceiling (in process)")
        ceiling = raw_decode(model_path, args.threads, args.ctx, args.levels, args.max_tokens)

    ratios = report(console, args, levels, prefixes, ceiling, notes)
    write_json(
        console,
        args.out,
        {
            "model": MODEL_ID,
            "max_tokens": args.max_tokens,
            "threads": args.threads,
            "parallel": args.parallel,
            "ctx_per_request": args.ctx,
            "levels": {name: [asdict(r) for r in rs] for name, rs in levels.items()},
            "prefix_reuse": [asdict(p) for p in prefixes],
            "ceiling": [asdict(c) for c in ceiling],
            "ratios": ratios,
            "notes": notes,
        },
    )


def report(
    console: Console,
    args: argparse.Namespace,
    levels: dict[str, list[LevelResult]],
    prefixes: list[PrefixResult],
    ceiling: list[CeilingResult],
    notes: list[str],
) -> dict[str, Any]:
    table = Table(
        title=f"streaming chat, {args.max_tokens} tokens per request, {args.threads} threads"
    )
    for column in ("server", "clients", "tok/s", "TTFT p50", "TTFT p95", "lat p50", "lat p95"):
        table.add_column(column, justify="right")
    ceiling_by_batch = {c.batch: c for c in ceiling}
    references = [name for name in levels if name != "privserve"]
    ratio_table = Table(title="privserve tok/s as a ratio of each reference (higher is better)")
    for column in ("clients", *(f"vs {name}" for name in references), "vs raw ceiling"):
        ratio_table.add_column(column, justify="right")
    ratios: dict[str, Any] = {}
    for i, level in enumerate(args.levels):
        ours = levels["privserve"][i]
        for rs in levels.values():
            r = rs[i]
            table.add_row(
                r.server,
                str(level),
                f"{r.tokens_per_s:.1f}",
                f"{r.ttft_p50_s:.3f}",
                f"{r.ttft_p95_s:.3f}",
                f"{r.latency_p50_s:.2f}",
                f"{r.latency_p95_s:.2f}",
            )
        raw = ceiling_by_batch[level]
        table.add_row(
            "raw ceiling", str(level), f"{raw.tokens_per_s:.1f}", "", "", "", "", end_section=True
        )
        level_ratios: dict[str, dict[str, float]] = {}
        for name in references:
            ref = levels[name][i]
            level_ratios[name] = {
                "tokens_per_s": ours.tokens_per_s / ref.tokens_per_s,
                "ttft_p50": ours.ttft_p50_s / ref.ttft_p50_s,
                "latency_p50": ours.latency_p50_s / ref.latency_p50_s,
            }
        level_ratios["ceiling"] = {"tokens_per_s": ours.tokens_per_s / raw.tokens_per_s}
        ratios[str(level)] = level_ratios
        ratio_table.add_row(
            str(level), *(f"{v['tokens_per_s']:.2f}x" for v in level_ratios.values())
        )
    console.print(table)
    console.print(ratio_table)

    prefix_table = Table(title="prefix reuse: 4 system prompts x 8 questions, interleaved")
    columns = ("server", "prompt tokens", "warm cached", "cold TTFT", "warm TTFT", "warm / cold")
    for column in columns:
        prefix_table.add_column(column, justify="right")
    for p in prefixes:
        prefix_table.add_row(
            p.server,
            f"{p.prompt_tokens_mean:.0f}",
            f"{p.warm_cached_tokens_mean:.0f}",
            f"{p.cold_ttft_mean_s:.3f}",
            f"{p.warm_ttft_mean_s:.3f}",
            f"{p.warm_over_cold:.3f}",
        )
    console.print(prefix_table)
    ratios["prefix_warm_over_cold"] = {p.server: p.warm_over_cold for p in prefixes}

    targets = Table(title="targets")
    for column in ("target", "ratio", "goal", "met"):
        targets.add_column(column, justify="right")
    for what, reference, clients, goal in TARGETS:
        value = ratios.get(str(clients), {}).get(reference, {}).get("tokens_per_s")
        if value is None:
            targets.add_row(what, "n/a", f">= {goal}", "not measured")
        else:
            targets.add_row(what, f"{value:.2f}", f">= {goal}", "yes" if value >= goal else "NO")
    our_prefix = next((p for p in prefixes if p.server == "privserve"), None)
    if our_prefix is not None:
        met = "yes" if our_prefix.warm_over_cold <= 0.1 else "NO"
        targets.add_row("warm / cold TTFT", f"{our_prefix.warm_over_cold:.3f}", "<= 0.1", met)
    console.print(targets)
    for note in notes:
        console.print(note)
    return ratios


if __name__ == "__main__":
    main()
