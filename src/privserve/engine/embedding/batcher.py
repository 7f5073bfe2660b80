"""Dynamic batching: inputs from many requests encoded together in one forward pass.

Requests put their inputs (texts, or query-document pairs for a cross-encoder) on a queue in
chunks of at most `max_batch`, one chunk at a time. One task takes the first waiting chunk,
gathers more until `max_batch` inputs or the window has passed, and awaits one encode (which
runs off the event loop); each caller gets its own rows back. While a pass runs, the next
batch gathers, so under load the window costs nothing.

Interactive requests' chunks are taken before batch ones (a knowledge base being indexed
must not slow the people searching it), except that a batch chunk which has waited
`batch_max_wait_s` goes first: batch work is slowed, never starved.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from privserve.engine.base import Priority, goes_first
from privserve.errors import Overloaded

Item = TypeVar("Item")
Rows = npt.NDArray[np.float32]
Encoder = Callable[[list[Item]], Awaitable[Rows]]


@dataclass
class BatcherStats:
    forward_passes: int = 0
    texts: int = 0
    requests: int = 0
    queued_texts: int = 0
    last_batch_size: int = 0
    last_pass_ms: float = 0.0
    busy_s: float = 0.0  # all passes' time: over a wall-clock interval, the model's busy share


@dataclass
class _Chunk(Generic[Item]):
    texts: Sequence[Item]
    done: asyncio.Future[Rows]
    queued_at: float = 0.0


class DynamicBatcher(Generic[Item]):
    def __init__(
        self,
        encode: Encoder[Item],
        *,
        window_s: float,
        max_batch: int,
        max_queued_texts: int,
        batch_max_wait_s: float = 10.0,
    ) -> None:
        self._encode = encode
        self._window_s = window_s
        self._max_batch = max_batch
        self._max_queued = max_queued_texts
        self._batch_max_wait_s = batch_max_wait_s
        self._queues: dict[Priority, collections.deque[_Chunk[Item]]] = {
            "interactive": collections.deque(),
            "batch": collections.deque(),
        }
        self._arrived = asyncio.Event()
        self._carry: _Chunk[Item] | None = None  # taken from the queue but did not fit the batch
        self.stats = BatcherStats()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def embed(self, texts: Sequence[Item], priority: Priority = "interactive") -> Rows:
        """One row per input, in order; raises Overloaded when too many inputs wait."""
        if self.stats.queued_texts + len(texts) > self._max_queued:
            raise Overloaded(f"{self.stats.queued_texts} inputs are waiting to be encoded")
        loop = asyncio.get_running_loop()
        self.stats.requests += 1
        parts = []
        # One chunk at a time: a large request queues its next chunk behind whatever arrived
        # meanwhile, so it cannot hold the model while others wait.
        for i in range(0, len(texts), self._max_batch):
            chunk = _Chunk(texts[i : i + self._max_batch], loop.create_future(), time.monotonic())
            self.stats.queued_texts += len(chunk.texts)
            self._queues[priority].append(chunk)
            self._arrived.set()
            try:
                parts.append(await chunk.done)
            finally:
                chunk.done.cancel()  # a caller gone: its chunk, if still queued, is skipped
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _take(self) -> _Chunk[Item] | None:
        """The next chunk: interactive first, unless the oldest batch one waited too long."""
        interactive, batch = self._queues["interactive"], self._queues["batch"]
        if batch and (
            not interactive
            or goes_first("batch", time.monotonic() - batch[0].queued_at, self._batch_max_wait_s)
        ):
            return batch.popleft()
        return interactive.popleft() if interactive else None

    async def _get(self) -> _Chunk[Item]:
        while (chunk := self._take()) is None:
            self._arrived.clear()
            await self._arrived.wait()
        return chunk

    async def _next_batch(self) -> list[_Chunk[Item]]:
        first = self._carry or await self._get()
        self._carry = None
        batch, size = [first], len(first.texts)
        deadline = time.monotonic() + self._window_s
        while size < self._max_batch:
            chunk = self._take()
            if chunk is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    chunk = await asyncio.wait_for(self._get(), remaining)
                except TimeoutError:
                    break
            if size + len(chunk.texts) > self._max_batch:
                self._carry = chunk
                break
            batch.append(chunk)
            size += len(chunk.texts)
        return batch

    async def _run(self) -> None:
        while True:
            taken = await self._next_batch()
            self.stats.queued_texts -= sum(len(chunk.texts) for chunk in taken)
            batch = [chunk for chunk in taken if not chunk.done.done()]
            texts = [text for chunk in batch for text in chunk.texts]
            if not texts:
                continue
            started = time.perf_counter()
            try:
                vectors = await self._encode(texts)
            except Exception as exc:  # handed to every caller of this batch
                for chunk in batch:
                    if not chunk.done.done():
                        chunk.done.set_exception(exc)
                continue
            self.stats.forward_passes += 1
            self.stats.texts += len(texts)
            self.stats.last_batch_size = len(texts)
            took_s = time.perf_counter() - started
            self.stats.last_pass_ms = took_s * 1000
            self.stats.busy_s += took_s
            offset = 0
            for chunk in batch:
                rows = vectors[offset : offset + len(chunk.texts)]
                offset += len(chunk.texts)
                if not chunk.done.done():
                    chunk.done.set_result(rows)
