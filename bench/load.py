"""Concurrent streaming chat clients against one OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass

import httpx

PROMPTS = [
    "Write a long story about a lighthouse keeper and a storm.",
    "Explain in detail how bread is made, step by step.",
    "Describe a journey across a desert, day by day.",
    "Write a letter to a friend about a summer at the sea.",
]
# The bundled model's end-of-generation tokens: banned, so every answer has max_tokens.
NO_END = {"1": -100, "106": -100, "212": -100}


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


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


@dataclass
class Sample:
    ttft_s: float
    latency_s: float
    completion_tokens: int
    prompt_tokens: int
    cached_tokens: int


async def stream_chat(
    http: httpx.AsyncClient, messages: list[dict[str, str]], max_tokens: int, model: str
) -> Sample:
    """Times one streamed chat completion; token counts from the server's own usage."""
    payload = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "logit_bias": NO_END,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first: float | None = None
    content_chunks = 0
    usage: dict[str, object] = {}
    async with http.stream("POST", "/v1/chat/completions", json=payload) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                if choice.get("delta", {}).get("content"):
                    content_chunks += 1
                    if first is None:
                        first = time.perf_counter() - started
    latency = time.perf_counter() - started
    details: dict[str, object] = usage.get("prompt_tokens_details") or {}  # type: ignore[assignment]
    return Sample(
        ttft_s=first if first is not None else latency,
        latency_s=latency,
        completion_tokens=int(usage.get("completion_tokens") or content_chunks),  # type: ignore[call-overload]
        prompt_tokens=int(usage.get("prompt_tokens") or 0),  # type: ignore[call-overload]
        cached_tokens=int(details.get("cached_tokens") or 0),  # type: ignore[call-overload]
    )


def client(base_url: str, key: str, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=900,
        # A new connection per request: llama-server drops idle keep-alive connections, and
        # a reused dead one fails the request. Connecting over loopback costs well under 1 ms.
        limits=httpx.Limits(max_connections=connections + 4, max_keepalive_connections=0),
    )


async def drive(
    base_url: str,
    key: str,
    server: str,
    concurrency: int,
    requests: int,
    max_tokens: int,
    model: str,
) -> LevelResult:
    """`concurrency` clients share `requests` requests; each sends its next when one ends."""
    pending = list(range(requests))
    samples: list[Sample] = []
    async with client(base_url, key, concurrency) as http:

        async def one_client() -> None:
            while pending:
                i = pending.pop()
                messages = [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]
                samples.append(await stream_chat(http, messages, max_tokens, model))

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    ttfts = [s.ttft_s for s in samples]
    latencies = [s.latency_s for s in samples]
    tokens = sum(s.completion_tokens for s in samples)
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
