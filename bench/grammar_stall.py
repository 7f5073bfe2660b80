"""Does one request's large output grammar slow everyone else's answers?

A request whose `response_format` is a 1,000-value enum of random strings (the most a schema
may ask for) makes the grammar's pass over the whole vocabulary slow: seconds per token the
model's own pick does not fit. Beside it, a plain 8-token chat is sent again and again. The
table gives the plain chat's latency alone and beside the constrained one, and their ratio,
for privserve and for llama.cpp's llama-server when built (bench/build_llama_server.sh);
the goal is a ratio near 1. The load client's CPU share is reported. JSON goes to
bench/results/grammar_stall.json.

    python bench/grammar_stall.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import string
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from servers import (
    MODEL_ID,
    Running,
    find_llama_server,
    start_llama_server,
    start_privserve,
)

RESULTS = Path(__file__).parent / "results"
KEY = "sk-bench-grammar"
PLAIN = {
    "model": MODEL_ID,
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 8,
    "temperature": 0,
}


def constrained(values: list[str]) -> dict[str, Any]:
    schema = {"enum": values}
    return {
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "Pick one."}],
        "max_tokens": 6,
        "temperature": 1.0,
        "seed": 3,
        "response_format": {"type": "json_schema", "json_schema": {"name": "e", "schema": schema}},
    }


def plain_latency(http: httpx.Client) -> float:
    started = time.perf_counter()
    response = http.post("/v1/chat/completions", json=PLAIN)
    response.raise_for_status()
    return time.perf_counter() - started


def measure(server: Running, rounds: int, values: list[str]) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=600) as http:
        plain_latency(http)  # warm-up
        alone = [plain_latency(http) for _ in range(rounds)]
        beside: list[float] = []
        constrained_s: list[float] = []
        for _ in range(rounds):
            done = threading.Event()

            def run_constrained(done: threading.Event = done) -> None:
                started = time.perf_counter()
                with httpx.Client(base_url=server.base_url, headers=headers, timeout=600) as c:
                    c.post("/v1/chat/completions", json=constrained(values)).raise_for_status()
                constrained_s.append(time.perf_counter() - started)
                done.set()

            worker = threading.Thread(target=run_constrained)
            worker.start()
            time.sleep(0.3)  # the constrained request is admitted and choosing
            while not done.is_set():
                beside.append(plain_latency(http))
            worker.join()
    return {
        "alone_p50_s": statistics.median(alone),
        "beside_p50_s": statistics.median(beside),
        "beside_max_s": max(beside),
        "ratio_p50": statistics.median(beside) / statistics.median(alone),
        "constrained_p50_s": statistics.median(constrained_s),
        "plain_requests_beside": len(beside),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    rng = random.Random(7)
    values = ["".join(rng.choices(string.ascii_letters, k=20)) for _ in range(1000)]
    threads = os.cpu_count() or 1
    results: dict[str, dict[str, float]] = {}
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    wall_before = time.monotonic()
    with tempfile.TemporaryDirectory() as home:
        server = start_privserve(Path(home), KEY, threads, 1024, 4, RESULTS / "grammar-stall.log")
        try:
            results["privserve"] = measure(server, args.rounds, values)
            model_path = next((Path(home) / "models").glob("*.gguf"))
        finally:
            server.stop()
        binary = find_llama_server()
        if binary is None:
            print("llama-server not built (make bench-reference): privserve only")
        else:
            peer = start_llama_server(
                binary, model_path, threads, 1024, 4, RESULTS / "grammar-stall-llama.log"
            )
            try:
                results["llama-server"] = measure(peer, args.rounds, values)
            finally:
                peer.stop()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic() - wall_before
    client_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
        cpu_after.ru_stime - cpu_before.ru_stime
    )
    print(
        f"{'server':<14} {'alone p50':>10} {'beside p50':>11} {'beside max':>11} "
        f"{'ratio':>6} {'enum req p50':>13}"
    )
    for name, r in results.items():
        print(
            f"{name:<14} {r['alone_p50_s']:9.2f}s {r['beside_p50_s']:10.2f}s "
            f"{r['beside_max_s']:10.2f}s {r['ratio_p50']:6.2f} {r['constrained_p50_s']:12.2f}s"
        )
    share = client_cpu / wall / threads
    print(f"load client CPU: {100 * share:.1f}% of the machine")
    summary = {"results": results, "client_cpu_share": share, "enum_values": len(values)}
    (RESULTS / "grammar_stall.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
