"""Where the CPU goes when one-sentence embedding requests are served, and the bound it sets.

bench/embed.py compares (a) 64 concurrent one-sentence requests with (c) the same
sentences encoded offline. On a machine whose cores are all busy in both, (a) can reach at
most the share of the CPU left to the model once each request's HTTP handling and the load
client are paid for:

    bound on (a)/(c) = model / (model + server + client)

in CPU milliseconds per sentence, where
  model:  the offline encode at batch 128, its process CPU time per sentence (reference);
  server: privserve's CPU per request with an encoder that answers at once (every step of a
          real request but the forward pass: HTTP, key check, validation, token count,
          batching, the JSON answer, the access log);
  client: the load client's (aiohttp, as bench/embed.py's) CPU per request.

    python bench/embed_budget.py [--requests 3072] [--clients 64]

Prints a table and writes JSON (bench/results/embed_budget.json).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from embed import EMBED_ID, _served, offline_model, sentences
from privserve.engine.base import Priority
from result_file import write_json
from servers import free_port, launch, wait_ready

# The id bench/embed.py sends, so its requests are sent unchanged.
MODEL_ID = EMBED_ID


class InstantEncoder:
    """An embedding engine whose vectors cost nothing: what is left is the serving."""

    model_id = MODEL_ID
    dimensions = 384
    max_input_tokens = 256
    shortenable = False
    vocab_size = 30522
    prompts: Mapping[str, str] = MappingProxyType({})
    default_prompt_name = None

    async def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) + 2 for text in texts]

    def detokenize(self, ids: Sequence[int]) -> str:
        return ""

    async def embed(
        self, texts: Sequence[str], priority: Priority = "interactive"
    ) -> npt.NDArray[np.float32]:
        return np.full((len(texts), self.dimensions), self.dimensions**-0.5, dtype=np.float32)

    def stats(self) -> dict[str, float]:
        return {}


def serve_instant(port: int) -> None:
    """The server process: privserve's app as `privserve serve` runs it (uvicorn's
    defaults, access log included), with the instant encoder."""
    import uvicorn

    from privserve.api.app import create_app
    from privserve.config import Settings

    settings = Settings()  # PRIVSERVE_HOME and PRIVSERVE_API_KEY from the environment
    app = create_app(settings, text_engines={}, embedding_engines={MODEL_ID: InstantEncoder()})
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="info")


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serving_cpu_ms(texts: list[str], clients: int, log: Path) -> tuple[float, float, float]:
    """(server, client) CPU ms per request, and requests per second, at `clients`."""
    key = "bench-" + secrets.token_urlsafe(12)
    port = free_port()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PRIVSERVE_HOME": home, "PRIVSERVE_API_KEY": key}
        server = launch([sys.executable, __file__, "--serve-instant", str(port)], log, env)
        try:
            wait_ready(f"http://127.0.0.1:{port}/health", server)
            base = f"http://127.0.0.1:{port}"
            asyncio.run(_served(base, key, texts[:256], 8, "/v1/embeddings"))  # warm-up
            server_before, client_before = process_cpu_s(server.pid), time.process_time()
            wall = asyncio.run(_served(base, key, texts, clients, "/v1/embeddings"))
            server_s = process_cpu_s(server.pid) - server_before
            client_s = time.process_time() - client_before
        finally:
            server.terminate()
            server.wait()
    n = len(texts)
    return 1000 * server_s / n, 1000 * client_s / n, n / wall


def model_cpu_ms(texts: list[str], batch: int) -> tuple[float, float]:
    """(CPU ms per sentence, sentences per second) of the offline encode."""
    model = offline_model()
    model.encode(texts[:batch], batch_size=batch)  # warm-up
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    model.encode(texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return 1000 * cpu_s / len(texts), len(texts) / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3072)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("bench/results/embed_budget.json"))
    parser.add_argument("--logs", type=Path, default=Path("bench/results/logs"))
    parser.add_argument("--serve-instant", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_instant:
        serve_instant(args.serve_instant)
        return
    args.logs.mkdir(parents=True, exist_ok=True)
    texts = sentences(args.requests)
    server_ms, client_ms, instant_rate = serving_cpu_ms(
        texts, args.clients, args.logs / "privserve-instant.log"
    )
    model_ms, offline_rate = model_cpu_ms(texts[:1024], args.batch)
    bound = model_ms / (model_ms + server_ms + client_ms)
    table = Table(title=f"CPU per one-sentence request, {os.cpu_count()} cores")
    table.add_column("where")
    table.add_column("CPU ms", justify="right")
    table.add_column("ratio to the model", justify="right")
    for where, ms in (
        ("model: offline encode per sentence (reference)", model_ms),
        ("server: privserve with an instant encoder", server_ms),
        ("client: aiohttp load client", client_ms),
    ):
        table.add_row(where, f"{ms:.3f}", f"{ms / model_ms:.2f}")
    console = Console(width=120)
    console.print(table)
    console.print(
        f"instant-encoder serving: {instant_rate:.0f} requests/s; offline encode: "
        f"{offline_rate:.0f} sentences/s; bound on bench/embed.py's (a)/(c): {bound:.2f}"
    )
    write_json(
        console,
        args.out,
        {
            "cpu_ms_per_request": {
                "model": model_ms,
                "server": server_ms,
                "client": client_ms,
            },
            "ratios_to_model": {"server": server_ms / model_ms, "client": client_ms / model_ms},
            "instant_requests_per_s": instant_rate,
            "offline_sentences_per_s": offline_rate,
            "bound_a_over_c": bound,
            "cores": os.cpu_count(),
        },
    )


if __name__ == "__main__":
    main()
