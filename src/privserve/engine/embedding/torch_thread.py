"""One thread for all torch work in the process: loading and every forward pass.

torch's OpenMP runtime keeps a team of threads per calling thread, and once the teams
outnumber the cores it stops spinning between parallel regions, so every operator pays a
thread wake-up: a one-text pass took twice as long on a worker thread as on the thread
that loaded the model. With one thread calling torch there is one team.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TorchThread:
    def __init__(self, threads: int | None = None) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="torch"
        )
        if threads:
            # OpenMP's thread count is per calling thread: set it on the thread that runs.
            self.call(_set_torch_threads, threads)

    def call(self, fn: Callable[..., T], *args: object) -> T:
        """Runs `fn` on the torch thread and waits (for loading, off the event loop)."""
        return self._executor.submit(fn, *args).result()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Runs `fn` on the torch thread without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def _set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
