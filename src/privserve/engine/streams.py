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
        self._loop = loop
        self._queue: asyncio.Queue[T | BaseException] = asyncio.Queue()

    def put(self, item: T | BaseException) -> None:
        # A closed loop means nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def get(self) -> T:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item


class GenerationStream(AsyncIterator[TokenEvent]):
    """A submitted request as seen by the event loop; `cancel` frees its work in the engine."""

    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.events: ThreadToLoopQueue[TokenEvent] = ThreadToLoopQueue(loop)
        self._cancelled = threading.Event()
        self._finished = False

    def is_cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> TokenEvent:
        if self._finished:
            raise StopAsyncIteration
        try:
            event = await self.events.get()
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
