"""Chat serving benchmark: privserve against llama-cpp-python's own server, in one run.

Both serve the bundled model with the same threads and context; each is driven in turn
(never both at once, so they do not share the CPU) by 1, 4 and 16 concurrent streaming
clients with a bounded number of requests. Prints a table and writes JSON with aggregate
completion tokens/s, time to first token and latency percentiles, and privserve/reference
ratios.

    python bench/chat.py [--levels 1 4 16] [--max-tokens 64] [--out bench/results/chat.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

MODEL_ID = "gemma3-270m"
PROMPTS = [
    "Write a long story about a lighthouse keeper and a storm.",
    "Explain in detail how bread is made, step by step.",
    "Describe a journey across a desert, day by day.",
    "Write a letter to a friend about a summer at the sea.",
]


@dataclass
class LevelResult:
    server: str
    concurrency: int
    requests: int
    completion_tokens: int
    wall_s: float
    tokens_per_s: float
    ttft_p50_s: float
    ttft_p95_s: float
    latency_p50_s: float
    latency_p95_s: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


def start_privserve(
    home: Path, key: str, threads: int, ctx: int
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PRIVSERVE_HOME": str(home), "PRIVSERVE_API_KEY": key}
    cmd = [
        sys.executable,
        "-m",
        "privserve",
        "serve",
        "--port",
        str(port),
        "--threads",
        str(threads),
        "--ctx-size",
        str(ctx),
    ]
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/health", process)
    return process, f"http://127.0.0.1:{port}"


def start_reference(
    model_path: Path, threads: int, ctx: int
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    # A fair setup: its defaults use one thread, a wrong chat template, logits for every
    # prompt token (slow prefill) and cut concurrent streams short.
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--model_alias",
        MODEL_ID,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
        "--n_ctx",
        str(ctx),
        "--chat_format",
        "gemma",
        "--logits_all",
        "False",
        "--interrupt_requests",
        "False",
    ]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/v1/models", process)
    return process, f"http://127.0.0.1:{port}"


async def one_request(
    http: httpx.AsyncClient, prompt: str, max_tokens: int
) -> tuple[float, float, int]:
    """Returns (time to first token, latency, completion tokens) for one streamed chat."""
    payload = {
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first: float | None = None
    content_chunks = 0
    usage_tokens: int | None = None
    async with http.stream("POST", "/v1/chat/completions", json=payload) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage_tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices") or []:
                if choice.get("delta", {}).get("content"):
                    content_chunks += 1
                    if first is None:
                        first = time.perf_counter() - started
    latency = time.perf_counter() - started
    return (first if first is not None else latency), latency, usage_tokens or content_chunks


async def drive(
    base_url: str, key: str, server: str, concurrency: int, requests: int, max_tokens: int
) -> LevelResult:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    samples: list[tuple[float, float, int]] = []
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=600, limits=limits
    ) as http:

        async def client() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                samples.append(await one_request(http, PROMPTS[i % len(PROMPTS)], max_tokens))

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    ttfts = [s[0] for s in samples]
    latencies = [s[1] for s in samples]
    tokens = sum(s[2] for s in samples)
    return LevelResult(
        server,
        concurrency,
        requests,
        tokens,
        wall,
        tokens / wall,
        percentile(ttfts, 50),
        percentile(ttfts, 95),
        percentile(latencies, 50),
        percentile(latencies, 95),
    )


def bench_server(
    name: str,
    process: subprocess.Popen[bytes],
    base_url: str,
    key: str,
    levels: list[int],
    max_tokens: int,
) -> list[LevelResult]:
    try:
        asyncio.run(drive(base_url, key, name, 1, 1, 8))  # warm-up
        return [asyncio.run(drive(base_url, key, name, c, max(4, c), max_tokens)) for c in levels]
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--out", type=Path, default=Path("bench/results/chat.json"))
    args = parser.parse_args()
    console = Console()
    key = "bench-" + secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        process, url = start_privserve(home, key, args.threads, args.ctx)
        console.print(f"privserve at {url}")
        ours = bench_server("privserve", process, url, key, args.levels, args.max_tokens)
        [model_path] = (home / "models").glob("*.gguf")
        process, url = start_reference(model_path, args.threads, args.ctx)
        console.print(f"llama_cpp.server at {url}")
        theirs = bench_server("llama_cpp.server", process, url, key, args.levels, args.max_tokens)

    table = Table(title=f"chat, {args.max_tokens} tokens per request, {args.threads} threads")
    for column in ("server", "clients", "tok/s", "TTFT p50", "TTFT p95", "lat p50", "lat p95"):
        table.add_column(column, justify="right")
    ratios = []
    for mine, ref in zip(ours, theirs, strict=True):
        for r in (mine, ref):
            table.add_row(
                r.server,
                str(r.concurrency),
                f"{r.tokens_per_s:.1f}",
                f"{r.ttft_p50_s:.3f}",
                f"{r.ttft_p95_s:.3f}",
                f"{r.latency_p50_s:.2f}",
                f"{r.latency_p95_s:.2f}",
            )
        ratio = {
            "concurrency": mine.concurrency,
            "tokens_per_s": mine.tokens_per_s / ref.tokens_per_s,
            "ttft_p50": mine.ttft_p50_s / ref.ttft_p50_s,
            "ttft_p95": mine.ttft_p95_s / ref.ttft_p95_s,
            "latency_p50": mine.latency_p50_s / ref.latency_p50_s,
            "latency_p95": mine.latency_p95_s / ref.latency_p95_s,
        }
        ratios.append(ratio)
        table.add_row(
            "ratio",
            str(mine.concurrency),
            f"{ratio['tokens_per_s']:.2f}x",
            f"{ratio['ttft_p50']:.2f}x",
            f"{ratio['ttft_p95']:.2f}x",
            f"{ratio['latency_p50']:.2f}x",
            f"{ratio['latency_p95']:.2f}x",
            end_section=True,
        )
    console.print(table)
    console.print("ratio = privserve / llama_cpp.server (tok/s: higher is better; times: lower)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "reference": "llama_cpp.server (llama-cpp-python)",
                "model": MODEL_ID,
                "max_tokens": args.max_tokens,
                "threads": args.threads,
                "results": [asdict(r) for r in ours + theirs],
                "ratios": ratios,
            },
            indent=2,
        )
    )
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
