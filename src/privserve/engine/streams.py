"""The bridge from an engine thread to the event loop: one stream per request."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

from privserve.engine.base import GenerationRequest, TokenEvent

T = TypeVar("T")


class ThreadToLoopQueue(Generic[T]):
    """Items put from any thread arrive in an asyncio.Queue on the request's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._queue: asyncio.Queue[T | BaseException] = asyncio.Queue()

    def put(self, item: T | BaseException) -> None:
        # A closed loop means nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def put_in_loop(self, item: T | BaseException) -> None:
        """`put` for code already running on the queue's loop."""
        self._queue.put_nowait(item)

    async def get(self) -> T:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item


class _Cancelled(Exception):
    """Put in a cancelled stream's queue: the engine sends nothing more, so this wakes a
    reader still waiting on it."""


class GenerationStream(AsyncIterator[TokenEvent]):
    """A submitted request as seen by the event loop; `cancel` frees its work in the engine
    and ends the stream for whoever reads it."""

    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.events: ThreadToLoopQueue[TokenEvent] = ThreadToLoopQueue(loop)
        self._cancelled = threading.Event()
        self._finished = False

    def is_cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        if not self._cancelled.is_set():
            self._cancelled.set()
            self.events.put(_Cancelled())

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> TokenEvent:
        if self._finished:
            raise StopAsyncIteration
        try:
            event = await self.events.get()
        except _Cancelled:
            self._finished = True
            raise StopAsyncIteration from None
        except BaseException:
            self.cancel()
            raise
        if event.finish_reason is not None:
            self._finished = True
        return event

    async def aclose(self) -> None:
        if not self._finished:
            self.cancel()
        self._finished = True


_Item = tuple[GenerationStream, TokenEvent | BaseException]


class Outbox:
    """Events of one engine step, handed to each event loop in a single wake-up.

    Waking the loop once per step instead of once per token keeps the engine thread and the
    HTTP side from fighting over the GIL at high concurrency."""

    def __init__(self) -> None:
        self._items: list[_Item] = []

    def put(self, stream: GenerationStream, item: TokenEvent | BaseException) -> None:
        self._items.append((stream, item))

    def flush(self) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        for stream, item in self._items:
            by_loop.setdefault(stream.events.loop, []).append((stream, item))
        self._items = []
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens
                loop.call_soon_threadsafe(_deliver, items)


def _deliver(items: list[_Item]) -> None:
    for stream, item in items:
        stream.events.put_in_loop(item)
