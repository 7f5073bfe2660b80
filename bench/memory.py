"""Memory at the same slots and context: privserve against llama.cpp's `llama-server`, one run.

For each model, each server is started in turn with the same slots, context per slot and
threads, privserve without an embedding model:

- idle RSS once one short request has loaded the model;
- peak RSS (VmHWM) after the RAG bench's requests (bench/rag_prompts.py) from `--users`
  clients, so every slot has held a 1-3k-token prompt;
- the KV cache's own size, as llama.cpp logs it when it creates the context.

The bundled Gemma 3 270M has sliding-window layers (15 of 18); SmolLM2 135M has none, so its
cache is the same size for any server. Prints a table with privserve / llama-server ratios
and writes JSON.

    python bench/memory.py [--models gemma3-270m smollm2-135m] [--parallel 16] [--ctx 4096]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from privserve.models.bundled import BUNDLED_MODELS, materialize
from rag import TEMPLATES, drive, payload, peak_rss_mb
from rag_prompts import requests as rag_requests
from result_file import write_json
from servers import Running, find_llama_server, start_llama_server, start_privserve

# llama.cpp logs each KV cache it makes, e.g. "llama_kv_cache: size = 1152.00 MiB (...)";
# a model with sliding windows gets two (the full layers' and the windowed layers').
_KV_SIZE = re.compile(r"llama_kv_cache: +size = +([\d.]+) MiB")


@dataclass
class MemoryResult:
    model: str
    server: str
    idle_rss_mb: float
    peak_rss_mb: float
    kv_cache_mib: float
    requests: int
    cached_prompt_tokens: int  # prompt tokens the server reported as reused


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def kv_cache_mib(log: Path) -> float:
    return sum(float(m) for m in _KV_SIZE.findall(log.read_text(errors="replace")))


def measure(
    running: Running, log: Path, model: str, key: str, users: int, bodies: list[bytes]
) -> MemoryResult:
    warmup = payload([{"role": "user", "content": "Hello"}], 0, model, 4)
    asyncio.run(drive(running, key, 1, [warmup]))
    idle = rss_mb(running.process.pid)
    samples, _, _ = asyncio.run(drive(running, key, users, bodies))
    return MemoryResult(
        model,
        running.name,
        idle,
        peak_rss_mb(running.process.pid),
        kv_cache_mib(log),
        len(samples),
        sum(s.cached_tokens for s in samples),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["gemma3-270m", "smollm2-135m"],
                        choices=sorted(BUNDLED_MODELS))  # fmt: skip
    parser.add_argument("--parallel", type=int, default=16, help="slots, every server")
    parser.add_argument("--ctx", type=int, default=4096, help="context per slot")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--servers", nargs="+", default=["privserve", "llama-server"])
    parser.add_argument("--out", type=Path, default=Path("bench/results/memory.json"))
    parser.add_argument("--logs", type=Path, default=Path("bench/results/logs"))
    args = parser.parse_args()
    console = Console(width=120)
    key = "bench-" + secrets.token_urlsafe(12)
    # English: SmolLM2's tokenizer spends so many tokens on Chinese that its prompts
    # outgrow a 4,096-token context.
    conversations = rag_requests(args.requests, quotes=6, chinese=False)
    args.logs.mkdir(parents=True, exist_ok=True)
    results: list[MemoryResult] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            bodies = [payload(c, i, model, args.max_tokens) for i, c in enumerate(conversations)]
            model_path = materialize(BUNDLED_MODELS[model], Path(tmp) / "models")
            for name in args.servers:
                log = args.logs / f"memory-{model}-{name}.log"
                if name == "privserve":
                    # llama.cpp's own log (its KV sizes) is at debug level.
                    settings = {
                        "PRIVSERVE_EMBEDDING__MODEL": "",
                        "PRIVSERVE_SERVER__LOG_LEVEL": "debug",
                        "PRIVSERVE_SERVER__ACCESS_LOG": "false",
                    }
                    running = start_privserve(
                        Path(tmp) / f"{model}-{name}", key, args.threads, args.ctx,
                        args.parallel, log, model=model, settings=settings,
                    )  # fmt: skip
                else:
                    binary = find_llama_server()
                    if binary is None or not binary.exists():
                        notes.append(f"{name}: not built; run bench/build_llama_server.sh")
                        continue
                    running = start_llama_server(
                        binary, model_path, args.threads, args.ctx, args.parallel, log,
                        model_id=model, chat_template=TEMPLATES.get(model),
                        # -lv 4: its KV cache sizes are logged at that verbosity.
                        extra=["--cache-reuse", "256", "-lv", "4"],
                    )  # fmt: skip
                try:
                    result = measure(running, log, model, key, args.users, bodies)
                finally:
                    running.stop()
                console.print(
                    f"  {model} {name}: idle {result.idle_rss_mb:.0f} MB, peak "
                    f"{result.peak_rss_mb:.0f} MB, KV {result.kv_cache_mib:.0f} MiB"
                )
                results.append(result)
    ratios = report(console, args, results, notes)
    write_json(
        console,
        args.out,
        {
            "parallel": args.parallel,
            "ctx_per_slot": args.ctx,
            "threads": args.threads,
            "users": args.users,
            "results": [asdict(r) for r in results],
            "ratios": ratios,
            "notes": notes,
        },
    )


def report(
    console: Console, args: argparse.Namespace, results: list[MemoryResult], notes: list[str]
) -> dict[str, dict[str, float]]:
    table = Table(
        title=f"Memory: {args.parallel} slots x {args.ctx} tokens, {args.requests} RAG "
        f"requests from {args.users} users"
    )
    for column in ("model", "server", "idle RSS MB", "peak RSS MB", "KV MiB", "reused prompt"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            r.model, r.server, f"{r.idle_rss_mb:.0f}", f"{r.peak_rss_mb:.0f}",
            f"{r.kv_cache_mib:.0f}", str(r.cached_prompt_tokens),
        )  # fmt: skip
    console.print(table)
    ratios: dict[str, dict[str, float]] = {}
    for model in args.models:
        ours = next((r for r in results if r.model == model and r.server == "privserve"), None)
        peer = next((r for r in results if r.model == model and r.server == "llama-server"), None)
        if ours is None or peer is None:
            continue
        ratios[model] = {
            "idle_rss": ours.idle_rss_mb / peer.idle_rss_mb,
            "peak_rss": ours.peak_rss_mb / peer.peak_rss_mb,
            "kv_cache": ours.kv_cache_mib / peer.kv_cache_mib if peer.kv_cache_mib else 0.0,
        }
        console.print(
            f"{model}: privserve / llama-server idle RSS {ratios[model]['idle_rss']:.2f}, "
            f"peak RSS {ratios[model]['peak_rss']:.2f} (target <= 1.15), KV cache "
            f"{ratios[model]['kv_cache']:.2f}"
        )
    for note in notes:
        console.print(note)
    return ratios


if __name__ == "__main__":
    main()
