"""Requests waiting for a slot: bounded, each with its deadline, interactive ones first.

When slots are scarce, requests of `interactive` keys are offered them before those of
`batch` keys (an indexing job must not slow the people chatting), but a batch request that
has waited `batch_max_wait_s` takes its turn in arrival order: slowed, never starved.

This is the only state the event loop and the engine thread share. Its lock is held just to
add to the list or take it whole, so a request handler never waits on engine work (copying
cache cells, building samplers) to queue a request.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from privserve.engine.base import goes_first
from privserve.engine.streams import GenerationStream
from privserve.errors import Overloaded, ShuttingDown


@dataclass(frozen=True)
class Waiting:
    stream: GenerationStream
    deadline: float | None  # time.monotonic() past which the request is dropped
    queued_at: float = 0.0

    def has_expired(self, now: float) -> bool:
        return self.deadline is not None and now > self.deadline


class WaitingList:
    def __init__(
        self,
        capacity: int,
        model_id: str,
        timeout_s: float | None,
        batch_max_wait_s: float = 10.0,
    ) -> None:
        self._capacity = capacity
        self._batch_max_wait_s = batch_max_wait_s
        self._model_id = model_id
        self._timeout_s = timeout_s
        self._items: collections.deque[Waiting] = collections.deque()
        self._changed = threading.Condition()
        self._closing = False

    def __len__(self) -> int:
        return len(self._items)

    def submit(self, stream: GenerationStream) -> None:
        """Queues a request; Overloaded when the list is full, ShuttingDown once closed."""
        now = time.monotonic()
        deadline = None if self._timeout_s is None else now + self._timeout_s
        with self._changed:
            if self._closing:
                raise ShuttingDown("the server is shutting down; retry on another replica")
            if len(self._items) >= self._capacity:
                raise Overloaded(
                    f"{self._model_id} has {len(self._items)} requests waiting; retry shortly"
                )
            self._items.append(Waiting(stream, deadline, now))
            self._changed.notify()

    def take_all(self) -> list[Waiting]:
        """Everything waiting, in the order slots should go to them."""
        with self._changed:
            items = list(self._items)
            self._items.clear()
        now = time.monotonic()

        def later(item: Waiting) -> bool:
            waited = now - item.queued_at
            return not goes_first(item.stream.request.priority, waited, self._batch_max_wait_s)

        return sorted(items, key=later)  # stable: arrival order within each group

    def put_back(self, items: Iterable[Waiting]) -> None:
        """Returns requests that found no slot to the front, in their order."""
        with self._changed:
            self._items.extendleft(reversed(list(items)))

    def wait_for_work(self, has_work: Callable[[], bool]) -> bool:
        """Blocks the engine thread until a request waits or `has_work()`; False once the
        list is closed."""
        with self._changed:
            while not (self._closing or self._items or has_work()):
                self._changed.wait()
            return not self._closing

    def wake(self) -> None:
        with self._changed:
            self._changed.notify()

    def close(self) -> None:
        """Refuses new requests from now on; those waiting stay for `take_all`."""
        with self._changed:
            self._closing = True
            self._changed.notify()
