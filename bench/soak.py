"""Soak: 16 streaming clients for a bounded time, and whether the server's memory and open
files stay flat.

Each client streams a chat answer, and every fourth one leaves after its first chunks (a
client that disconnects), over and over, against one privserve server with the bundled
model. Every few seconds the server's RSS and open file descriptors are sampled; the table
gives them over time and the least-squares slope (MiB and descriptors per minute) over the
second half of the run, after warm-up. The goal is flat: a slope near zero. The load
client's own CPU share is reported too. Figures and samples go to bench/results/soak.json.

    python bench/soak.py                 # 10 minutes
    python bench/soak.py --minutes 2 --clients 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from load import NO_END, PROMPTS
from servers import MODEL_ID, start_privserve

RESULTS = Path(__file__).parent / "results"
KEY = "sk-bench-soak"


@dataclass
class Point:
    elapsed_s: float
    rss_mib: float
    open_fds: int
    completed: int
    dropped: int
    errors: int


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return 60 * sum((x - mean_x) * (y - mean_y) for x, y in points) / var


@dataclass
class Counts:
    completed: int = 0
    dropped: int = 0
    errors: int = 0


async def client(
    index: int, http: httpx.AsyncClient, until: float, counts: Counts, max_tokens: int
) -> None:
    turn = 0
    while time.monotonic() < until:
        turn += 1
        leaves = (index + turn) % 4 == 0
        payload = {
            "model": MODEL_ID,
            "messages": [{"role": "user", "content": PROMPTS[(index + turn) % len(PROMPTS)]}],
            "max_tokens": max_tokens,
            "temperature": 0.8,
            "seed": index * 1000 + turn,
            "logit_bias": NO_END,
            "stream": True,
        }
        try:
            async with http.stream("POST", "/v1/chat/completions", json=payload) as response:
                if response.status_code != 200:
                    counts.errors += 1
                    await asyncio.sleep(0.5)
                    continue
                chunks = 0
                async for line in response.aiter_lines():
                    chunks += line.startswith("data: ")
                    if leaves and chunks >= 3:
                        break
                counts.dropped += leaves
                counts.completed += not leaves
        except httpx.HTTPError:
            counts.errors += 1


async def soak(base_url: str, pid: int, args: argparse.Namespace) -> list[Point]:
    counts = Counts()
    started = time.monotonic()
    until = started + args.minutes * 60
    points: list[Point] = []
    limits = httpx.Limits(max_connections=args.clients)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=120, limits=limits
    ) as http:
        clients = [
            asyncio.create_task(client(i, http, until, counts, args.max_tokens))
            for i in range(args.clients)
        ]
        while time.monotonic() < until:
            points.append(
                Point(
                    round(time.monotonic() - started, 1),
                    round(rss_mib(pid), 1),
                    open_fds(pid),
                    counts.completed,
                    counts.dropped,
                    counts.errors,
                )
            )
            await asyncio.sleep(args.sample_s)
        await asyncio.gather(*clients)
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--sample-s", type=float, default=10.0)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    threads = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as home:
        server = start_privserve(
            Path(home), KEY, threads, 1024, args.clients, RESULTS / "soak-server.log"
        )
        try:
            cpu_before = resource.getrusage(resource.RUSAGE_SELF)
            wall_before = time.monotonic()
            points = asyncio.run(soak(server.base_url, server.process.pid, args))
            cpu_after = resource.getrusage(resource.RUSAGE_SELF)
            wall = time.monotonic() - wall_before
        finally:
            server.stop()
    client_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
        cpu_after.ru_stime - cpu_before.ru_stime
    )
    second_half = [p for p in points if p.elapsed_s >= points[-1].elapsed_s / 2]
    rss_slope = slope_per_minute([(p.elapsed_s, p.rss_mib) for p in second_half])
    fd_slope = slope_per_minute([(p.elapsed_s, p.open_fds) for p in second_half])
    print(f"{'t (s)':>7} {'RSS MiB':>9} {'fds':>5} {'done':>6} {'left':>6} {'errors':>6}")
    for p in points:
        print(
            f"{p.elapsed_s:7.0f} {p.rss_mib:9.1f} {p.open_fds:5d} {p.completed:6d} "
            f"{p.dropped:6d} {p.errors:6d}"
        )
    print(
        f"second-half slope: RSS {rss_slope:+.2f} MiB/min, open fds {fd_slope:+.2f}/min; "
        f"load client CPU {100 * client_cpu / wall / threads:.1f}% of the machine "
        f"({client_cpu:.1f} s over {wall:.0f} s)"
    )
    summary = {
        "minutes": args.minutes,
        "clients": args.clients,
        "max_tokens": args.max_tokens,
        "rss_slope_mib_per_min": rss_slope,
        "fd_slope_per_min": fd_slope,
        "rss_first_mib": points[0].rss_mib,
        "rss_last_mib": points[-1].rss_mib,
        "client_cpu_s": client_cpu,
        "client_cpu_share": client_cpu / wall / threads,
        "points": [asdict(p) for p in points],
    }
    (RESULTS / "soak.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
