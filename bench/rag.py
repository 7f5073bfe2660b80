"""Knowledge-base (RAG) chat benchmark: privserve against llama.cpp's `llama-server`, one run.

The requests are FastGPT's knowledge-base chat (bench/rag_prompts.py): a system prompt with
instructions and six quoted chunks of real English or Chinese prose (1-3k tokens), sometimes
an earlier exchange, then a question; consecutive questions share some chunks. Answers run
up to 256 tokens and end where the model ends them; half the requests are greedy, half
sampled at temperature 0.7 (seeded). Each server is driven in turn (never two at once, so
they do not share the CPU), each level with its own questions, the same for every server:

- privserve as configured by default (drafts from the prompt on);
- privserve without drafts (`PRIVSERVE_LLAMA__DRAFT_MAX=0`);
- `llama-server` from the same llama.cpp (bench/build_llama_server.sh) with `-np`, `-kvu`
  and `--cache-reuse`; skipped, saying so, when it is not built;
- with `--servers ... llama-server-ngram`, llama-server with its own n-gram drafting
  (`--spec-type ngram-simple`) too.

For each level: time to first token and end-to-end latency p50/p95, output and prompt tok/s,
the load client's own CPU share (it shares the cores with the server, so it reads the stream
as bytes and parses only the usage chunk), the server's peak RSS; ratios against the peers.
Prints tables and writes JSON.

With `--converted qwen3-0.6b` it runs on a model of Qwen3-0.6B's sizes instead, random weights
converted by `privserve convert` (bench/random_checkpoint.py says what that can and cannot show).

    python bench/rag.py [--model gemma3-270m | --converted qwen3-0.6b [--bits 4]]
                        [--levels 1 4 8 16] [--requests 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from load import Sample, percentile
from privserve.models.bundled import BUNDLED_MODELS, materialize
from rag_prompts import requests as rag_requests
from random_checkpoint import add_model_arguments, converted_model
from result_file import write_json
from servers import Running, find_llama_server, start_llama_server, start_privserve

# llama-server's built-in template for each bundled model (the GGUF's own otherwise).
TEMPLATES = {"gemma3-270m": "gemma"}
# privserve's setups: the settings each runs with on top of the bench's own.
PRIVSERVE_SETUPS: dict[str, dict[str, str]] = {
    "privserve": {},
    "privserve-no-drafts": {"PRIVSERVE_LLAMA__DRAFT_MAX": "0"},
    "privserve-unified": {"PRIVSERVE_LLAMA__KV_UNIFIED": "true"},
    "privserve-split": {"PRIVSERVE_LLAMA__KV_UNIFIED": "false"},
}
# The llama-server setups (flags, one KV cache for all slots): its prompt cache, with a
# stream per slot (its default) or one cache (-kvu); as "llama-server-ngram", its own n-gram
# drafting from the prompt, which the pinned llama.cpp has but does not turn on by default.
LLAMA_SERVER_SETUPS: dict[str, tuple[list[str], bool]] = {
    "llama-server": (["--cache-reuse", "256"], False),
    "llama-server-kvu": (["--cache-reuse", "256"], True),
    "llama-server-ngram": (["--cache-reuse", "256", "--spec-type", "ngram-simple"], False),
}
TARGETS = [
    # (what, numerator, denominator, level, metric, at least (True) or at most)
    ("1 user tok/s vs llama-server, no drafts", "privserve-no-drafts", "llama-server", 1,
     "output_tok_s", 1.0, True),
    ("1 user tok/s vs no drafts", "privserve", "privserve-no-drafts", 1, "output_tok_s", 1.5,
     True),
    ("1 user tok/s vs llama-server", "privserve", "llama-server", 1, "output_tok_s", 1.3, True),
    ("8 users TTFT p95 vs llama-server", "privserve", "llama-server", 8, "ttft_p95_s", 0.4,
     False),
    ("8 users tok/s vs llama-server", "privserve", "llama-server", 8, "output_tok_s", 1.5, True),
    ("16 users tok/s vs no drafts", "privserve", "privserve-no-drafts", 16, "output_tok_s",
     0.97, True),
]  # fmt: skip
_FIRST_TEXT = re.compile(rb'"content":"(?!")')


@dataclass
class LevelResult:
    server: str
    users: int
    requests: int
    wall_s: float
    output_tok_s: float
    prompt_tok_s: float
    ttft_p50_s: float
    ttft_p95_s: float
    latency_p50_s: float
    latency_p95_s: float
    mean_prompt_tokens: float
    mean_completion_tokens: float
    client_cpu_share: float  # the load client's CPU seconds per wall second
    server_peak_rss_mb: float


def payload(messages: list[dict[str, str]], index: int, model: str, max_tokens: int) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        # No server's own defaults (a bundled model's repetition penalty): the same sampling.
        "repetition_penalty": 1.0,
        "repeat_penalty": 1.0,
        "top_p": 1.0,
    }
    if index % 2:
        body |= {"temperature": 0.7, "seed": index}
    else:
        body["temperature"] = 0
    return json.dumps(body, ensure_ascii=False).encode()


async def one_request(http: httpx.AsyncClient, body: bytes) -> Sample:
    """Times one streamed answer: the first chunk with text, and the usage at the end."""
    started = time.perf_counter()
    first: float | None = None
    received = bytearray()
    async with http.stream(
        "POST", "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    ) as response:
        response.raise_for_status()
        async for data in response.aiter_bytes():
            if first is None and _FIRST_TEXT.search(bytes(received[-16:]) + data):
                first = time.perf_counter() - started
            received += data
    latency = time.perf_counter() - started
    usage: dict[str, Any] = {}
    for line in reversed(bytes(received).split(b"\n")):
        if b'"usage":{' in line and line.startswith(b"data: "):
            usage = json.loads(line[6:])["usage"]
            break
    return Sample(
        first if first is not None else latency,
        latency,
        int(usage.get("completion_tokens") or 0),
        int(usage.get("prompt_tokens") or 0),
        int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
    )


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def drive(
    running: Running, key: str, users: int, bodies: list[bytes]
) -> tuple[list[Sample], float, float]:
    """`users` clients share the requests, each sending its next when one ends."""
    pending = list(reversed(bodies))
    samples: list[Sample] = []
    async with httpx.AsyncClient(
        base_url=running.base_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=1800,
        limits=httpx.Limits(max_connections=users + 4, max_keepalive_connections=0),
    ) as http:

        async def user() -> None:
            while pending:
                samples.append(await one_request(http, pending.pop()))

        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(user() for _ in range(users)))
        return samples, time.perf_counter() - started, time.process_time() - cpu


def bench_server(
    running: Running,
    key: str,
    levels: list[int],
    bodies: dict[int, list[bytes]],
    warmup: bytes,
    console: Console,
) -> list[LevelResult]:
    asyncio.run(drive(running, key, 1, [warmup]))
    results = []
    for users in levels:
        samples, wall, cpu = asyncio.run(drive(running, key, users, bodies[users]))
        ttfts = [s.ttft_s for s in samples]
        latencies = [s.latency_s for s in samples]
        completion = sum(s.completion_tokens for s in samples)
        prompt = sum(s.prompt_tokens for s in samples)
        result = LevelResult(
            running.name,
            users,
            len(samples),
            wall,
            completion / wall,
            prompt / wall,
            percentile(ttfts, 50),
            percentile(ttfts, 95),
            percentile(latencies, 50),
            percentile(latencies, 95),
            prompt / len(samples),
            completion / len(samples),
            cpu / wall,
            peak_rss_mb(running.process.pid),
        )
        console.print(
            f"  {running.name} x{users}: {result.output_tok_s:.1f} tok/s, TTFT p95 "
            f"{result.ttft_p95_s:.2f} s, client CPU {100 * result.client_cpu_share:.1f} %"
        )
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument(
        "--requests", type=int, default=8, help="requests per level, at least one per user"
    )
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--quotes", type=int, default=6, help="quoted chunks per question")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ctx", type=int, default=4096, help="context per request")
    parser.add_argument("--parallel", type=int, default=16, help="slots, every server")
    parser.add_argument("--servers", nargs="+", default=["privserve", "privserve-no-drafts",
                        "llama-server"],
                        choices=[*PRIVSERVE_SETUPS, *LLAMA_SERVER_SETUPS])  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("bench/results/rag.json"))
    parser.add_argument("--logs", type=Path, default=Path("bench/results/logs"))
    args = parser.parse_args()
    console = Console(width=130)
    converted = None
    if args.converted:
        with console.status(f"Building and converting {args.converted} at {args.bits} bits…"):
            converted = converted_model(args.converted, args.bits)
        args.model = converted.stem
    key = "bench-" + secrets.token_urlsafe(12)
    counts = {users: max(args.requests, users) for users in args.levels}
    conversations = rag_requests(1 + sum(counts.values()), quotes=args.quotes)
    bodies: dict[int, list[bytes]] = {}
    offset = 1
    for users, count in counts.items():
        bodies[users] = [
            payload(conversations[offset + i], offset + i, args.model, args.max_tokens)
            for i in range(count)
        ]
        offset += count
    warmup = payload(conversations[0], 0, args.model, 16)
    args.logs.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[LevelResult]] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        model_path = converted or materialize(BUNDLED_MODELS[args.model], Path(tmp) / "models")
        for name in args.servers:
            log = args.logs / f"rag-{name}.log"
            if name in PRIVSERVE_SETUPS:
                running = start_privserve(
                    Path(tmp) / name, key, args.threads, args.ctx, args.parallel, log,
                    model=str(converted or args.model), name=name,
                    # Chat alone, as llama-server: no embedding model in the RSS column.
                    settings={"PRIVSERVE_EMBEDDING__MODEL": "", **PRIVSERVE_SETUPS[name]},
                )  # fmt: skip
            else:
                binary = find_llama_server()
                if binary is None or not binary.exists():
                    notes.append(f"{name}: not built; run bench/build_llama_server.sh")
                    continue
                flags, unified = LLAMA_SERVER_SETUPS[name]
                running = start_llama_server(
                    binary, model_path, args.threads, args.ctx, args.parallel, log,
                    model_id=args.model, chat_template=TEMPLATES.get(args.model),
                    extra=flags, name=name, unified=unified,
                )  # fmt: skip
            console.print(f"{name} at {running.base_url}")
            try:
                results[name] = bench_server(running, key, args.levels, bodies, warmup, console)
            finally:
                running.stop()
    ratios = report(console, args, results, notes)
    write_json(
        console,
        args.out,
        {
            "model": args.model,
            "max_tokens": args.max_tokens,
            "quotes": args.quotes,
            "threads": args.threads,
            "parallel": args.parallel,
            "ctx_per_request": args.ctx,
            "levels": {name: [asdict(r) for r in rs] for name, rs in results.items()},
            "ratios": ratios,
            "notes": notes,
        },
    )


def report(
    console: Console,
    args: argparse.Namespace,
    results: dict[str, list[LevelResult]],
    notes: list[str],
) -> dict[str, Any]:
    table = Table(
        title=f"RAG chat on {args.model}: {args.quotes} quotes, answers up to {args.max_tokens} "
        f"tokens, {args.threads} threads, {args.parallel} slots"
    )
    for column in (
        "server",
        "users",
        "out tok/s",
        "prompt tok/s",
        "TTFT p50",
        "TTFT p95",
        "lat p50",
        "lat p95",
        "prompt",
        "answer",
        "client CPU",
        "peak RSS MB",
    ):
        table.add_column(column, justify="right")  # fmt: skip
    for rs in results.values():
        for r in rs:
            table.add_row(
                r.server, str(r.users), f"{r.output_tok_s:.1f}", f"{r.prompt_tok_s:.0f}",
                f"{r.ttft_p50_s:.2f}", f"{r.ttft_p95_s:.2f}", f"{r.latency_p50_s:.2f}",
                f"{r.latency_p95_s:.2f}", f"{r.mean_prompt_tokens:.0f}",
                f"{r.mean_completion_tokens:.0f}", f"{100 * r.client_cpu_share:.1f} %",
                f"{r.server_peak_rss_mb:.0f}",
            )  # fmt: skip
    console.print(table)

    def at(name: str, users: int) -> LevelResult | None:
        return next((r for r in results.get(name, []) if r.users == users), None)

    ratios: dict[str, Any] = {}
    pairs = [("privserve", "llama-server"), ("privserve-no-drafts", "llama-server"),
             ("privserve", "privserve-no-drafts"), ("privserve", "llama-server-ngram"),
             ("privserve", "llama-server-kvu"), ("privserve-unified", "privserve"),
             ("privserve-split", "privserve"), ("llama-server-kvu", "llama-server")]  # fmt: skip
    ratio_table = Table(title="ratios (output tok/s, TTFT p95, latency p95)")
    for column in ("pair", "users", "tok/s", "TTFT p95", "latency p95"):
        ratio_table.add_column(column, justify="right")
    for a, b in pairs:
        for users in args.levels:
            ra, rb = at(a, users), at(b, users)
            if ra is None or rb is None:
                continue
            row = {
                "output_tok_s": ra.output_tok_s / rb.output_tok_s,
                "ttft_p95_s": ra.ttft_p95_s / rb.ttft_p95_s,
                "latency_p95_s": ra.latency_p95_s / rb.latency_p95_s,
            }
            ratios.setdefault(f"{a}/{b}", {})[str(users)] = row
            ratio_table.add_row(
                f"{a} / {b}", str(users), f"{row['output_tok_s']:.2f}x",
                f"{row['ttft_p95_s']:.2f}x", f"{row['latency_p95_s']:.2f}x",
            )  # fmt: skip
    console.print(ratio_table)
    targets = Table(title="targets")
    for column in ("target", "measured", "goal", "met"):
        targets.add_column(column)
    met: dict[str, Any] = {}
    for what, a, b, users, metric, goal, at_least in TARGETS:
        row = ratios.get(f"{a}/{b}", {}).get(str(users))
        if row is None:
            continue
        value = row[metric]
        ok = value >= goal if at_least else value <= goal
        met[what] = {"ratio": value, "goal": goal, "met": ok}
        sign = ">=" if at_least else "<="
        targets.add_row(what, f"{value:.2f}x", f"{sign} {goal}x", "yes" if ok else "NO")
    console.print(targets)
    for note in notes:
        console.print(f"note: {note}")
    ratios["targets"] = met
    return ratios


if __name__ == "__main__":
    main()
