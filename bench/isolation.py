"""How often batching changes a greedy free-form answer, and how close the flipped tokens were.

Batched kernels add in another order than a lone request's, so at a near-tie a greedy answer
may take the other token. This sends free-form prompts alone, then all at once, to privserve
(and to llama-server when built, see bench/build_llama_server.sh), at temperature 0 with
logprobs, and reports for each answer that differs the first differing token and the gap
between the two likeliest tokens there. Prints a table and writes JSON.

    python bench/isolation.py [--prompts 16] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from load import NO_END
from result_file import write_json
from servers import MODEL_ID, Running, find_llama_server, start_llama_server, start_privserve

TOPICS = [
    "the history of tea",
    "how bridges stay up",
    "a day at the market",
    "why the sky is blue",
    "learning to swim",
    "the first trains",
    "a winter in the mountains",
    "how bees make honey",
    "the life of a river",
    "building a wooden boat",
    "the night sky in autumn",
    "a small bakery",
    "how paper is made",
    "a walk in the rain",
    "the oldest libraries",
    "how clocks work",
]


@dataclass
class Flip:
    prompt: int
    token_index: int
    alone_token: str
    batched_token: str
    gap: float  # logprob of the likeliest token minus the second, in the lone run


@dataclass
class IsolationResult:
    server: str
    prompts: int
    identical: int
    flips: list[Flip] = field(default_factory=list)


async def ask(http: httpx.AsyncClient, topic: str, max_tokens: int) -> list[dict[str, Any]]:
    response = await http.post(
        "/v1/chat/completions",
        json={
            "model": MODEL_ID,
            "messages": [{"role": "user", "content": f"Write about {topic}."}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 2,
            "logit_bias": NO_END,  # every answer runs to max_tokens
        },
    )
    response.raise_for_status()
    content: list[dict[str, Any]] = response.json()["choices"][0]["logprobs"]["content"]
    return content


async def measure(running: Running, key: str, prompts: int, max_tokens: int) -> IsolationResult:
    topics = TOPICS[:prompts]
    async with httpx.AsyncClient(
        base_url=running.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=600
    ) as http:
        alone = [await ask(http, t, max_tokens) for t in topics]
        together = await asyncio.gather(*(ask(http, t, max_tokens) for t in topics))
    result = IsolationResult(running.name, prompts, 0)
    for i, (a, b) in enumerate(zip(alone, together, strict=True)):
        tokens_a, tokens_b = [e["token"] for e in a], [e["token"] for e in b]
        if tokens_a == tokens_b:
            result.identical += 1
            continue
        j = next(k for k, (x, y) in enumerate(zip(tokens_a, tokens_b, strict=True)) if x != y)
        top = a[j]["top_logprobs"]
        gap = top[0]["logprob"] - top[1]["logprob"] if len(top) > 1 else float("nan")
        result.flips.append(Flip(i, j, tokens_a[j], tokens_b[j], gap))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--parallel", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("bench/results/isolation.json"))
    parser.add_argument("--logs", type=Path, default=Path("bench/results/logs"))
    args = parser.parse_args()
    console = Console(width=120)
    key = "bench-" + secrets.token_urlsafe(12)
    args.logs.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        running = start_privserve(
            home, key, args.threads, 4096, args.parallel, args.logs / "privserve.log"
        )
        [model_path] = (home / "models").glob("*.gguf")
        try:
            results.append(asyncio.run(measure(running, key, args.prompts, args.max_tokens)))
        finally:
            running.stop()
        binary = find_llama_server()
        if binary is not None and binary.exists():
            running = start_llama_server(
                binary,
                model_path,
                args.threads,
                4096,
                args.parallel,
                args.logs / "llama-server.log",
            )
            try:
                results.append(asyncio.run(measure(running, key, args.prompts, args.max_tokens)))
            finally:
                running.stop()
        else:
            console.print("llama-server: not found; run bench/build_llama_server.sh to include it")
    table = Table(title=f"greedy answers alone vs {args.prompts} at once, {args.max_tokens} tokens")
    for column in ("server", "identical", "flipped", "gap at flip: median", "max"):
        table.add_column(column, justify="right")
    for r in results:
        gaps = [f.gap for f in r.flips]
        table.add_row(
            r.server,
            f"{r.identical}/{r.prompts}",
            str(len(r.flips)),
            f"{statistics.median(gaps):.3f}" if gaps else "-",
            f"{max(gaps):.3f}" if gaps else "-",
        )
    console.print(table)
    write_json(console, args.out, [asdict(r) for r in results])


if __name__ == "__main__":
    main()
