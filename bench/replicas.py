"""Replicas on Ray Serve: throughput, time to first token and prefix-cache hit rate with one
replica, and with two behind Ray's own router and behind privserve's prefix router, in one
run, on a knowledge-base load (a few long system prompts, many questions each).

Each configuration is `privserve serve --replicas N` on a local Ray instance, serving the
bundled model; they run in turn, never two at once. The hit rate is the share of prompt
tokens the replicas took from their caches (the servers' own usage). Prints a table and
writes JSON with ratios to the one-replica run and of the two routers. On a machine with
fewer cores than replicas times threads, two replicas share the same cores: the table shows
what routing does to the cache, not a scaling gain.

    python bench/replicas.py [--prompts 8] [--requests 64] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from load import Sample, client, percentile, stream_chat
from prefix import QUESTIONS, system_prompts
from servers import MODEL_ID, Running, free_port, launch, wait_ready

CONFIGS = [
    ("1 replica", 1, "prefix"),
    ("2 replicas, Ray's router", 2, "default"),
    ("2 replicas, prefix router", 2, "prefix"),
]


@dataclass
class ConfigResult:
    name: str
    replicas: int
    router: str
    requests: int
    tokens_per_s: float
    ttft_p50_s: float
    ttft_p95_s: float
    prompt_tokens: int
    cached_tokens: int
    hit_rate: float
    client_cpu_share: float  # the load client's CPU, as a share of all the machine's cores


def start(home: Path, key: str, replicas: int, router: str, args: argparse.Namespace) -> Running:
    port = free_port()
    cores = os.cpu_count() or 1
    env = {
        **os.environ,
        "PRIVSERVE_HOME": str(home),
        "PRIVSERVE_API_KEY": key,
        "HF_HUB_OFFLINE": "1",
        "PRIVSERVE_RAY__ROUTER": router,
        "PRIVSERVE_RAY__REPLICA_CPUS": str(cores / replicas),
    }
    cmd = [sys.executable, "-m", "privserve", "serve", "--port", str(port), "--model", MODEL_ID]
    cmd += ["--replicas", str(replicas), "--embedding-model", "", "--parallel", str(args.parallel)]
    cmd += ["--threads", str(max(1, cores // replicas)), "--ctx-size", str(args.ctx)]
    process = launch(cmd, args.logs / f"replicas-{replicas}-{router}.log", env)
    wait_ready(f"http://127.0.0.1:{port}/health", process, timeout_s=300)
    return Running(f"{replicas}-{router}", process, f"http://127.0.0.1:{port}")


async def knowledge_base_load(
    base_url: str, key: str, prompts: list[str], args: argparse.Namespace
) -> tuple[list[Sample], float]:
    """`requests` questions over the prompts in a seeded random order, `concurrency` at once."""
    rng = random.Random(args.seed)
    work = [(rng.choice(prompts), rng.choice(QUESTIONS)) for _ in range(args.requests)]
    samples: list[Sample] = []
    async with client(base_url, key, args.concurrency) as http:

        async def one_client() -> None:
            while work:
                system, question = work.pop()
                messages = [
                    {"role": "system", "content": system},
                    {"role": "user", "content": question},
                ]
                samples.append(await stream_chat(http, messages, args.max_tokens, MODEL_ID))

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(args.concurrency)))
        return samples, time.perf_counter() - started


def run_config(
    name: str, replicas: int, router: str, prompts: list[str], args: argparse.Namespace
) -> ConfigResult:
    key = "bench-" + secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory() as home:
        running = start(Path(home), key, replicas, router, args)
        try:
            before = resource.getrusage(resource.RUSAGE_SELF)
            samples, wall = asyncio.run(knowledge_base_load(running.base_url, key, prompts, args))
            after = resource.getrusage(resource.RUSAGE_SELF)
        finally:
            running.stop()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    prompt = sum(s.prompt_tokens for s in samples)
    cached = sum(s.cached_tokens for s in samples)
    ttfts = [s.ttft_s for s in samples]
    return ConfigResult(
        name=name,
        replicas=replicas,
        router=router,
        requests=len(samples),
        tokens_per_s=sum(s.completion_tokens for s in samples) / wall,
        ttft_p50_s=percentile(ttfts, 50),
        ttft_p95_s=percentile(ttfts, 95),
        prompt_tokens=prompt,
        cached_tokens=cached,
        hit_rate=cached / prompt if prompt else 0.0,
        client_cpu_share=cpu / wall / (os.cpu_count() or 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8, help="distinct system prompts")
    parser.add_argument("--prompt-words", type=int, default=450, help="~600 tokens each")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--parallel", type=int, default=4, help="slots per replica")
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/replicas.json"))
    parser.add_argument("--logs", type=Path, default=Path("bench/results/logs"))
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)
    console = Console(width=120)
    prompts = system_prompts(args.prompts, args.prompt_words)
    results = []
    for name, replicas, router in CONFIGS:
        console.print(f"{name}…")
        results.append(run_config(name, replicas, router, prompts, args))
    table = Table(title=f"Knowledge-base load: {args.prompts} system prompts, {args.requests} "
                  f"questions, {args.concurrency} at once, {MODEL_ID}")  # fmt: skip
    for column in ("configuration", "tok/s", "vs 1 replica", "TTFT p50", "TTFT p95",
                   "cache hit rate", "client CPU"):  # fmt: skip
        table.add_column(column, justify="right")
    one = results[0]
    for r in results:
        table.add_row(
            r.name,
            f"{r.tokens_per_s:.1f}",
            f"{r.tokens_per_s / one.tokens_per_s:.2f}x",
            f"{r.ttft_p50_s:.3f} s",
            f"{r.ttft_p95_s:.3f} s",
            f"{r.hit_rate:.1%}",
            f"{r.client_cpu_share:.1%}",
        )
    console.print(table)
    by_name = {r.name: r for r in results}
    prefix, default = by_name[CONFIGS[2][0]], by_name[CONFIGS[1][0]]
    ratios: dict[str, dict[str, float | None]] = {
        "prefix_router_over_ray_router": {
            "tokens_per_s": prefix.tokens_per_s / default.tokens_per_s,
            "hit_rate": prefix.hit_rate / default.hit_rate if default.hit_rate else None,
            "ttft_p50": prefix.ttft_p50_s / default.ttft_p50_s,
        },
        "over_one_replica": {r.name: r.tokens_per_s / one.tokens_per_s for r in results},
    }
    console.print(
        f"prefix router vs Ray's: hit rate {prefix.hit_rate:.1%} vs {default.hit_rate:.1%}, "
        f"tok/s {ratios['prefix_router_over_ray_router']['tokens_per_s']:.2f}x, "
        f"TTFT p50 {ratios['prefix_router_over_ray_router']['ttft_p50']:.2f}x"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "results": [asdict(r) for r in results],
                "ratios": ratios,
            },  # fmt: skip
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
