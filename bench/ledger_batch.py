"""What one group commit of the usage ledger costs, without a server around it.

bench/ledger.py measures whole servers, whose throughput on a small machine drifts more
between rounds than the bookkeeping costs. This measures the bookkeeping alone: batches of
settlements (each a ledger row and its quota's settlement against a lease, as a running
server writes them) applied through `UsageRepo`, on SQLite through the writer thread (what
the server uses), on SQLite through the async driver (the server before the writer thread),
and on PostgreSQL, in one run. It prints the CPU time this process spent per batch and per
request, and each path's cost as a ratio of the async SQLite driver's. JSON goes to
bench/results/ledger_batch.json.

    python bench/ledger_batch.py [--batches 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ledger import POSTGRES, create_database, drop_database
from privserve.storage.db import open_database, open_sqlite_writer
from privserve.storage.usage import Reservation, Settlement, UsageEntry, UsageRepo

RESULTS = Path(__file__).parent / "results"
BATCH_SIZES = (1, 16, 64)


@dataclass
class Measured:
    path: str
    batch: int
    cpu_ms_per_batch: float
    cpu_ms_per_request: float
    wall_ms_per_batch: float


async def measure(path: str, url: str, threaded: bool, batches: int) -> list[Measured]:
    results = []
    async with AsyncExitStack() as stack:
        db = await stack.enter_async_context(open_database(url))
        writer = await stack.enter_async_context(open_sqlite_writer(url)) if threaded else None
        repo = UsageRepo(db, writer)
        now = datetime.now(UTC)
        lease = Reservation(
            uuid.uuid4().hex, 1, "2026-12", 10**12, 10**15, now + timedelta(hours=1)
        )
        assert await repo.apply([lease]) == [True]

        def settlement() -> Settlement:
            entry = UsageEntry(
                uuid.uuid4().hex, now, 1, "bench", "embeddings", 12, 0, 0, 200, None, None, 3.0
            )
            return Settlement(entry, lease.hold_id, 1, lease.period, 12, 12)

        for size in BATCH_SIZES:
            for _ in range(10):  # warm: statements compiled, connections open
                await repo.apply([settlement() for _ in range(size)])
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(batches):
                await repo.apply([settlement() for _ in range(size)])
            cpu_ms = (time.process_time() - cpu) / batches * 1000
            wall_ms = (time.perf_counter() - wall) / batches * 1000
            results.append(Measured(path, size, cpu_ms, cpu_ms / size, wall_ms))
    return results


async def run(batches: int) -> list[Measured]:
    measured = []
    with tempfile.TemporaryDirectory(prefix="privserve-ledger-batch-") as tmp:
        for path, threaded in (("sqlite, async driver", False), ("sqlite, writer thread", True)):
            url = f"sqlite+aiosqlite:///{Path(tmp) / (path.split(', ')[1] + '.db')}"
            measured += await measure(path, url, threaded, batches)
    database = "privserve_ledger_batch_" + secrets.token_hex(4)
    await create_database(database)
    try:
        measured += await measure("postgresql", f"{POSTGRES}/{database}", False, batches)
    finally:
        await drop_database(database)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=400)
    args = parser.parse_args()
    measured = asyncio.run(run(args.batches))
    baseline = {m.batch: m for m in measured if m.path == "sqlite, async driver"}
    print("| path | batch | CPU ms/batch | CPU ms/request | wall ms/batch | CPU vs async driver |")
    print("| --- | --- | --- | --- | --- | --- |")
    rows = []
    for m in measured:
        ratio = m.cpu_ms_per_batch / baseline[m.batch].cpu_ms_per_batch
        rows.append({**asdict(m), "cpu_vs_async_sqlite": ratio})
        print(
            f"| {m.path} | {m.batch} | {m.cpu_ms_per_batch:.2f} | {m.cpu_ms_per_request:.3f} "
            f"| {m.wall_ms_per_batch:.2f} | {ratio:.2f}x |"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "ledger_batch.json"
    out.write_text(json.dumps({"batches": args.batches, "results": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
