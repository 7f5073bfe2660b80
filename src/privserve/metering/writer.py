"""Group commit: the ledger rows and quota changes of concurrent requests, committed together.

One task owns the writes. It takes everything queued, applies it in one transaction and
answers each request; whatever arrives meanwhile forms the next batch. A lone request waits
for one commit; at hundreds of requests per second, hundreds share it. A request that stops
waiting (its client left) does not take its change back: the change is queued, and is
committed with the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from privserve.errors import ShuttingDown
from privserve.storage.usage import LedgerChange, UsageRepo

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 10.0


@dataclass
class WriterStats:
    commits: int = 0
    changes: int = 0
    largest_batch: int = 0
    failures: int = 0


@dataclass
class _Queued:
    change: LedgerChange
    done: asyncio.Future[bool] = field(repr=False)


class LedgerWriter:
    def __init__(
        self, repo: UsageRepo, *, max_batch: int = 1024, sweep_every_s: float = 60.0
    ) -> None:
        self._repo = repo
        self._max_batch = max_batch
        self._sweep_every_s = sweep_every_s
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._stop_sweeping = asyncio.Event()
        self.stats = WriterStats()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._sweep())]

    async def close(self) -> None:
        """Commits what is queued, then stops; what comes later is refused at once."""
        self._closed = True
        if not self._tasks:
            return
        writer, sweeper = self._tasks
        # Stopped between sweeps, never cancelled inside one: a database call cancelled
        # half-way leaves the driver's connection closing on a thread that is gone.
        self._stop_sweeping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(sweeper), CLOSE_TIMEOUT_S)
        if not writer.done():
            # Every change queued or in a batch being committed, committed; a database
            # that does not answer does not hold the stop up for long.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), CLOSE_TIMEOUT_S)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while not self._queue.empty():  # the writer died before it took these
            _settle(self._queue.get_nowait().done, ShuttingDown("the usage ledger is closed"))

    async def apply(self, change: LedgerChange) -> bool:
        """Queues the change and waits for its commit; whether it was granted. Refused
        (ShuttingDown) once the writer is closed or gone, never left waiting."""
        if self._closed or not self._tasks or self._tasks[0].done():
            raise ShuttingDown("the usage ledger is closed; retry on another server")
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Queued(change, done))
        # Shielded: a caller cancelled while waiting still has its change committed.
        return await asyncio.shield(done)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit(batch)
            finally:
                for item in batch:
                    self._queue.task_done()
                    _settle(item.done, ShuttingDown("the usage ledger is closed"))

    async def _commit(self, batch: list[_Queued]) -> None:
        try:
            results = await self._repo.apply([item.change for item in batch])
        except Exception as exc:
            if len(batch) > 1:
                # One bad change must not cost the others theirs: each on its own.
                for item in batch:
                    await self._commit([item])
                return
            self.stats.failures += 1
            logger.error("could not write usage: %s", exc)
            _settle(batch[0].done, exc)
            return
        self.stats.commits += 1
        self.stats.changes += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for item, granted in zip(batch, results, strict=True):
            _settle(item.done, granted)

    async def _sweep(self) -> None:
        while not self._stop_sweeping.is_set():
            try:
                freed = await self._repo.sweep(datetime.now(UTC))
            except Exception as exc:
                logger.warning("could not free expired quota holds: %s", exc)
            else:
                if freed:
                    logger.info("freed %d quota holds their servers left behind", freed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_sweeping.wait(), self._sweep_every_s)


def _settle(done: asyncio.Future[bool], outcome: bool | BaseException) -> None:
    if done.done():
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)
